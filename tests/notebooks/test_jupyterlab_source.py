"""The notebooks' Markdown is written so that JupyterLab (jupyterlab-myst) renders it as
the HTML book does (bnbook.inline): numbers and citations as ``{eval}`` expressions
whose results are stored, links as Markdown links, solutions folded. Checked on the
stored notebooks, without a browser (tests/browser/test_jupyterlab.py opens them)."""

import copy
import json
import pathlib
import re

import pytest

from bnbook import inline

CHAPTERS = pathlib.Path(__file__).resolve().parents[2] / "chapters"
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb"))
# Roles that only Sphinx resolves: JupyterLab shows their bare text or "Not Found".
SPHINX_ONLY = re.compile(r"\{(glue[:a-z]*|cite[:a-z]*|doc|numref)\}`")
REF = re.compile(r"\{ref\}`(?:[^`<]*<)?([\w-]+)>?`")


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell):
    return "".join(cell["source"])


def solution_of(path):
    return path.with_name(path.name.replace("_exercise", ""))


def labels(nb):
    found = set()
    for cell in nb["cells"]:
        text = source(cell)
        found |= set(re.findall(r"^\(([\w-]+)\)=", text, re.M))
        found |= set(re.findall(r":label:\s*([\w-]+)", text))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_role_that_only_sphinx_resolves(path):
    nb = load(path)
    own = labels(nb)
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = source(cell)
        where = f"{path.name}, cell {index}"
        found = SPHINX_ONLY.search(text)
        assert not found, (
            f"{where}: {found.group()} renders raw in JupyterLab; write "
            '{eval}`glued["name"]`, {eval}`cite.t("key")` or [text](file.ipynb)'
        )
        for label in REF.findall(text):
            assert label in own, (
                f"{where}: {{ref}} to {label!r}, a label of another notebook, which "
                f"JupyterLab cannot find; write [text](#{label})"
            )
        for expression in inline.expressions(text):
            inline.parse(expression)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_results_are_the_prose_rendered(path):
    """What JupyterLab shows on opening is what the HTML book shows: each Markdown
    cell's ``user_expressions`` rendered from the glued numbers (an exercise notebook's
    from its solution's). A prose edit without `make execute` fails here."""
    nb = load(path)
    texts = inline.glued_texts(load(solution_of(path)))
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        where = f"{path.name}, cell {index}"
        expected = inline.user_expressions(source(cell), texts, where=where)
        stored = cell["metadata"].get("user_expressions", [])
        assert stored == expected, f"{where}: stored results out of date (make execute)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_prose_quotes_only_what_the_kernel_has_when_it_runs(path):
    """Running a Markdown cell in JupyterLab evaluates its expressions in the kernel,
    so a reader who runs the cells in order must have what each names: ``cite`` or
    ``glued`` imported from bnbook in a code cell above it (never in the learning
    goals, above every code cell), and a number glued in a cell above it (but in an
    exercise notebook, whose numbers come when the reader's code runs)."""
    nb = load(path)
    imported, glued_above = set(), set()
    for index, cell in enumerate(nb["cells"]):
        text = source(cell)
        if cell["cell_type"] == "code":
            for names in re.findall(r"^from bnbook import ([^\n(]*)$", text, re.M):
                imported |= {name.strip() for name in names.split(",")}
            for output in cell.get("outputs", []):
                glued_above.add(
                    output.get("metadata", {}).get("scrapbook", {}).get("name")
                )
            continue
        for expression in inline.expressions(text):
            kind, name, _ = inline.parse(expression)
            where = f"{path.name}, cell {index}: {expression}"
            assert kind in imported, f"{where} before `from bnbook import {kind}`"
            if kind == "glued" and "_exercise" not in path.name:
                assert name in glued_above, f"{where} above the cell that glues it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_what_the_book_folds_is_folded_in_jupyterlab(path):
    nb = load(path)
    folded = copy.deepcopy(nb)
    inline.fold(folded)
    assert folded == nb, (
        f"{path.name}: a solution's cell or a cell tagged hide-* is not folded for "
        "JupyterLab (make execute)"
    )
