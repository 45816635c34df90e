"""Figure captions and alt text written from a notebook's glued numbers.

A caption or an alt text lives in a figure cell's metadata (``mystnb.figure.caption``,
``mystnb.image.alt``), where no ``{glue:text}`` role can reach. So a figure cell that
quotes a measured number holds a template instead, in ``bnbook.caption`` or
``bnbook.alt``: a ``str.format`` string whose fields name numbers the notebook glues
with :func:`bnbook.glue_number` (``"starts near {warmup_acc_10:.2f} at step 10"``).
tools/execute.py renders every template after a notebook has run, so the stored text,
the HTML book and a screen reader all quote what the stored outputs computed.
"""

import ast
import string

# bnbook's key in a figure cell's metadata -> the key path of the text it renders.
TARGETS = {
    "caption": ("mystnb", "figure", "caption"),
    "alt": ("mystnb", "image", "alt"),
}
_RECORD = "application/papermill.record/text/plain"


class FigureTextError(ValueError):
    """A template that cannot be rendered with the notebook's glued values."""


def glued_values(nb, where="the notebook"):
    """{name: value} of every number glued in the executed notebook ``nb`` (a dict).

    myst-nb's ``glue`` stores a value as a display output whose metadata
    ``scrapbook.name`` is the name and whose ``application/papermill.record/text/plain``
    is its repr, which is read back with ``ast.literal_eval``.
    """
    values = {}
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is None:
                continue
            text = output.get("data", {}).get(_RECORD)
            if text is None:
                raise FigureTextError(
                    f"{where}: the glued value {name!r} has no {_RECORD} text"
                )
            text = "".join(text)
            try:
                values[name] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise FigureTextError(
                    f"{where}: the glued value {name!r} is {text!r}, not a Python literal"
                ) from None
    return values


def fields(template):
    """The names of the fields of the ``str.format`` string ``template``, in order."""
    return [
        name for _, name, _, _ in string.Formatter().parse(template) if name is not None
    ]


def render(template, values, where="the notebook"):
    """``template`` formatted with ``values``; an error names the field and ``where``.

    Every field must be a plain name of a glued value: ``{name}`` or ``{name:spec}``,
    not ``{}``, ``{0}``, ``{name.attr}`` or ``{name[0]}``.
    """
    for name in fields(template):
        if not name.isidentifier():
            raise FigureTextError(
                f"{where}: the template field {{{name}}} is not the name of a glued value"
            )
        if name not in values:
            known = ", ".join(sorted(values)) or "none"
            raise FigureTextError(
                f"{where}: the template names {name!r}, which the notebook does not "
                f"glue (glued: {known}); call glue_number({name!r}, ...) in the cell "
                "that computes it, and re-execute"
            )
        if values[name] is None:
            raise FigureTextError(
                f"{where}: the glued value {name!r} is missing (None)"
            )
    try:
        return template.format(**values)
    except (ValueError, TypeError) as error:
        raise FigureTextError(f"{where}: the template {template!r}: {error}") from None


def templates(cell):
    """{"caption" or "alt": template} of a cell (empty for a cell without any)."""
    held = cell.get("metadata", {}).get("bnbook", {})
    unknown = set(held) - set(TARGETS)
    if unknown:
        raise FigureTextError(
            f"unknown key(s) {sorted(unknown)} in a cell's bnbook metadata; "
            f"templates go in {sorted(TARGETS)}"
        )
    return dict(held)


def figure_name(cell):
    return cell.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("name", "?")


def rendered(nb, values, notebook="the notebook"):
    """[(cell index, key, text)] for every template of ``nb`` rendered with ``values``."""
    texts = []
    for index, cell in enumerate(nb["cells"]):
        for key, template in templates(cell).items():
            where = f"{notebook}, figure {figure_name(cell)}, {key} template"
            texts.append((index, key, render(template, values, where)))
    return texts


def render_figure_text(nb, notebook="the notebook"):
    """Write every template of the executed notebook ``nb`` (a dict, changed in place)
    with its glued values into the caption or alt text it stands for. Returns the
    number of texts written; raises :class:`FigureTextError` naming ``notebook`` for a
    template that cannot be rendered."""
    texts = rendered(nb, glued_values(nb, notebook), notebook)
    for index, key, text in texts:
        node = nb["cells"][index].setdefault("metadata", {})
        *path, last = TARGETS[key]
        for part in path:
            node = node.setdefault(part, {})
        node[last] = text
    return len(texts)
