"""A Sphinx extension: each inline script of a page once.

Sphinx 7.4 puts an inline script (a ``<script>`` with a body and no file) that an
extension adds after the builder started into a page twice: once as added (file name
``None``) and again, when it copies the registered scripts before writing, with the
file name ``""``, which it does not recognise as the same script. sphinx-thebe's
``const THEBE_JS_URL = ...`` is one, and the browser stops the second copy with
"Identifier 'THEBE_JS_URL' has already been declared"; sphinx-togglebutton's selector
is another. This handler keeps the first of equal inline scripts.

_config.yml loads it (``sphinx.local_extensions``).
"""


def _key(script):
    return (script.filename or "", tuple(sorted(script.attributes.items())))


def inline_scripts_once(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files", [])
    seen, kept = set(), []
    for script in scripts:
        if not script.filename:
            if _key(script) in seen:
                continue
            seen.add(_key(script))
        kept.append(script)
    scripts[:] = kept  # the builder's own list, which it restores after each page


def setup(app):
    app.connect("html-page-context", inline_scripts_once, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
