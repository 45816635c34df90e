"""A Sphinx extension: the prose's inline expressions, ``{eval}`glued["name"]``` and
``{eval}`cite.t("key")```, written as myst-nb's glued text and sphinxcontrib-bibtex's
citations.

The notebooks write numbers and citations as MyST ``{eval}`` roles so that JupyterLab
(jupyterlab-myst) renders them too (see code/bnbook/inline.py). myst-nb's own ``eval``
role needs a kernel at build time; the book builds from stored outputs, so this role,
which replaces it, reads each expression with ``bnbook.inline.parse`` and hands it to
the role that the HTML book always used: ``glue:text`` or ``cite:t`` / ``cite:p``.

_config.yml loads it (``sphinx.local_extensions``) after myst-nb, whose role it
overrides. The book's build does not install bnbook, so ``inline.py`` is loaded as a
file (it imports only the standard library).
"""

import importlib.util
import pathlib

from myst_nb.ext.glue.roles import PasteTextRole

_INLINE = pathlib.Path(__file__).resolve().parents[1] / "code" / "bnbook" / "inline.py"
_spec = importlib.util.spec_from_file_location("bnbook_inline", _INLINE)
inline = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(inline)


def eval_role(name, rawtext, text, lineno, inliner, options=None, content=()):
    try:
        kind, first, second = inline.parse(text)
    except inline.InlineError as error:
        return [], [inliner.reporter.error(str(error), line=lineno)]
    if kind == "glued":
        key = f"{first}:{second}" if second else first
        return PasteTextRole()("glue:text", rawtext, key, lineno, inliner, {}, [])
    cite = inliner.document.settings.env.get_domain("cite").role(first)
    return cite(f"cite:{first}", rawtext, ",".join(second), lineno, inliner, {}, [])


def setup(app):
    app.add_role("eval", eval_role, override=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
