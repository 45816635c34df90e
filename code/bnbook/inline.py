"""Numbers and citations in a notebook's prose, alike in the HTML book and in JupyterLab.

The Markdown quotes a number that the notebook glues with :func:`bnbook.glue_number`,
and a work of ``references.bib``, as inline expressions of MyST's ``{eval}`` role::

    {eval}`glued["speedup"]`          the glued number as stored
    {eval}`glued["error:.1%"]`        formatted with a format spec
    {eval}`cite.t("ioffe2015batch")`  Ioffe and Szegedy [2015]
    {eval}`cite.p("a2019,b2017")`     [A et al., 2019, B, 2017]

Three readers see them:

- the HTML book: tools/inlineroles.py, a Sphinx role, reads each expression with
  :func:`parse` and writes myst-nb's glued text or sphinxcontrib-bibtex's citation;
- JupyterLab with jupyterlab-myst, on opening: it shows each expression's result as
  stored in its cell's metadata (``user_expressions``), which tools/execute.py writes
  after every run (:func:`store`);
- JupyterLab, when a Markdown cell runs: it evaluates the expressions in the kernel,
  where ``glued`` and ``cite`` are the objects of this module that the notebook imports.

This module imports only the standard library at its top, so that the Sphinx build,
which does not install bnbook, can load it as a file.
"""

import pathlib
import re

# {eval}`expression` in Markdown.
_EVAL_ROLE = re.compile(r"\{eval\}`([^`]+)`")
_GLUED = re.compile(r'glued\["(?P<name>[A-Za-z_]\w*)(?::(?P<spec>[^"]*))?"\]')
_CITE = re.compile(r'cite\.(?P<kind>[tp])\("(?P<keys>[\w\-]+(?:,[\w\-]+)*)"\)')
_RECORD = "application/papermill.record/text/plain"
_BIB = pathlib.Path(__file__).resolve().parents[2] / "references.bib"


class InlineError(ValueError):
    """An inline expression that the book cannot show."""


def parse(expression):
    """``("glued", name, spec)`` or ``("cite", "t" or "p", [key, ...])``.

    ``spec`` is the format spec after the colon, or "" for none. Anything else raises
    :class:`InlineError`: the book's prose evaluates nothing but these two forms.
    """
    if not isinstance(expression, str):
        raise TypeError(f"expression must be a str, got {type(expression).__name__}")
    glued_match = _GLUED.fullmatch(expression)
    if glued_match:
        return "glued", glued_match["name"], glued_match["spec"] or ""
    cite_match = _CITE.fullmatch(expression)
    if cite_match:
        return "cite", cite_match["kind"], cite_match["keys"].split(",")
    raise InlineError(
        f'the inline expression {expression!r} is neither glued["name"], '
        f'glued["name:spec"], cite.t("key") nor cite.p("key,...")'
    )


def expressions(markdown):
    """The expressions of the ``{eval}`` roles of ``markdown``, in order, once each."""
    return list(dict.fromkeys(_EVAL_ROLE.findall(markdown)))


def format_glued(text, spec):
    """The glued value whose stored text is ``text``, as myst-nb's glue role writes it
    with the format spec ``spec`` (the HTML book's own function, so both agree)."""
    from myst_nb.core.variables import format_plain_text

    return format_plain_text(text, spec)


class Shown(str):
    """Text that a Jupyter kernel shows as itself, without the quotes of a str's repr."""

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))


class Glued:
    """The numbers glued so far in this kernel: ``glued["name"]``, ``glued["name:.2f"]``.

    :func:`bnbook.glue_number` records each number here too. A name not glued yet (a
    cell above not run, or an exercise not done) reads as a note, not an error, since
    JupyterLab shows it in the middle of a sentence.
    """

    def __init__(self):
        self.values = {}

    def __getitem__(self, key):
        _, name, spec = parse(f'glued["{key}"]')
        if name not in self.values:
            return Shown(f"[{name}: run the code above]")
        return Shown(format_glued(repr(self.values[name]), spec))


def _names(entry):
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [" ".join(person.prelast_names + person.last_names) for person in people]
    return f"{names[0]} et al." if len(names) > 2 else " and ".join(names)


class Cite:
    """Citations as the HTML book writes them: ``cite.t("key")`` gives
    "Ioffe and Szegedy [2015]", ``cite.p("key1,key2")`` "[Ioffe and Szegedy, 2015, ...]".
    The works are read from ``bib`` (the book's references.bib) when first cited."""

    def __init__(self, bib=_BIB):
        self.bib = pathlib.Path(bib)
        self._entries = None

    def _entry(self, key):
        if self._entries is None:
            from pybtex.database import parse_file

            self._entries = parse_file(str(self.bib)).entries
        if key not in self._entries:
            raise InlineError(f"{key!r} is not a key of {self.bib}")
        return self._entries[key]

    def _year(self, key):
        return self._entry(key).fields.get("year", "n.d.")

    def t(self, keys):
        return Shown(
            ", ".join(
                f"{_names(self._entry(k))} [{self._year(k)}]" for k in keys.split(",")
            )
        )

    def p(self, keys):
        return Shown(
            "["
            + ", ".join(
                f"{_names(self._entry(k))}, {self._year(k)}" for k in keys.split(",")
            )
            + "]"
        )


glued = Glued()
cite = Cite()


def glued_texts(nb):
    """{name: stored text} of every number glued in the executed notebook ``nb``."""
    texts = {}
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is not None and _RECORD in output.get("data", {}):
                texts[name] = "".join(output["data"][_RECORD])
    return texts


def render(expression, texts, citations=cite, where="the notebook"):
    """The text of ``expression`` with the glued texts ``texts`` ({name: text})."""
    kind, first, second = parse(expression)
    if kind == "cite":
        return str(getattr(citations, first)(",".join(second)))
    if first not in texts:
        known = ", ".join(sorted(texts)) or "none"
        raise InlineError(
            f"{where}: the prose quotes {first!r}, which the notebook does not glue "
            f"(glued: {known}); call glue_number({first!r}, ...) and re-execute"
        )
    return format_glued(texts[first], second)


def user_expressions(markdown, texts, citations=cite, where="the notebook"):
    """The ``user_expressions`` metadata of a Markdown cell, as jupyterlab-myst stores
    the results of its expressions: one entry per expression, its text as text/plain."""
    return [
        {
            "expression": expression,
            "result": {
                "status": "ok",
                "data": {"text/plain": render(expression, texts, citations, where)},
                "metadata": {},
            },
        }
        for expression in expressions(markdown)
    ]


def store(nb, texts=None, citations=cite, where="the notebook"):
    """Write the ``user_expressions`` of every Markdown cell of ``nb`` (changed in place)
    from ``texts`` (default: the notebook's own glued texts). Returns how many cells
    have expressions; a cell without any has none stored."""
    texts = glued_texts(nb) if texts is None else texts
    count = 0
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        stored = user_expressions(
            _text(cell), texts, citations, f"{where}, cell {index}"
        )
        if stored:
            cell.setdefault("metadata", {})["user_expressions"] = stored
            count += 1
        else:
            cell.get("metadata", {}).pop("user_expressions", None)
    return count


def _text(cell):
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


# The book's cell tags that fold a cell in the HTML, and what each hides in JupyterLab.
FOLDING_TAGS = {
    "hide-input": ("source_hidden",),
    "hide-output": ("outputs_hidden",),
    "hide-cell": ("source_hidden", "outputs_hidden"),
}


# A folded cell of a chapter's asserts starts with this comment; the book's toggle says so.
CHECKS = "# The checks behind this section"
CHECKS_PROMPTS = {
    "code_prompt_show": "Show the checks behind this section",
    "code_prompt_hide": "Hide the checks",
}


def _hide(cell, *parts):
    jupyter = cell.setdefault("metadata", {}).setdefault("jupyter", {})
    for part in parts:
        if part == "source_hidden" or cell["cell_type"] == "code":
            jupyter[part] = True


def fold(nb):
    """Fold in JupyterLab (``metadata.jupyter``) what the HTML book folds, in ``nb``
    (changed in place): every cell between a ``{solution-start}`` and its
    ``{solution-end}``, input and output (JupyterLab shows the start marker, "Start of
    Solution to Exercise 1", above them), and every cell tagged ``hide-input``,
    ``hide-output`` or ``hide-cell``, that part. Each opens with a click. A folded cell
    of checks (its first line :data:`CHECKS`) gets its own toggle text in the HTML
    book. Returns how many cells are folded."""
    folded, inside = 0, False
    for cell in nb["cells"]:
        text = _text(cell).lstrip()
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] == "markdown" and text.startswith(":::{solution-start}"):
            inside = True
        elif cell["cell_type"] == "markdown" and text.startswith(":::{solution-end}"):
            inside = False
        elif inside:
            _hide(cell, "source_hidden", "outputs_hidden")
            folded += 1
        elif hidden := [part for tag in tags for part in FOLDING_TAGS.get(tag, ())]:
            _hide(cell, *hidden)
            folded += 1
            if cell["cell_type"] == "code" and text.startswith(CHECKS):
                cell["metadata"].setdefault("mystnb", {}).update(CHECKS_PROMPTS)
    if inside:
        raise InlineError("a {solution-start} without its {solution-end}")
    return folded


__all__ = [
    "Cite",
    "Glued",
    "InlineError",
    "Shown",
    "cite",
    "fold",
    "glued",
    "parse",
    "store",
]
