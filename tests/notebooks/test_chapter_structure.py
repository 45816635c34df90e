"""Every chapter has the book's shape: learning goals, a summary, and 2 to 4 exercises
whose solutions are hidden in a dropdown and hold executed code."""

import json
import pathlib
import re

import pytest

CHAPTERS = pathlib.Path(__file__).resolve().parents[2] / "chapters"
# The workbook's pages have a shape of their own (tests/notebooks/test_workbook.py).
NOTEBOOKS = sorted(CHAPTERS.glob("[0-9]*.ipynb"))
WORKBOOK = sorted(CHAPTERS.glob("workbook_*.ipynb"))


def cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def text(cell):
    return "".join(cell["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_opens_with_a_title_and_learning_goals(path):
    first = cells(path)[0]
    assert first["cell_type"] == "markdown" and text(first).startswith("# ")
    assert ":::{admonition} Learning goals" in text(first), "no learning goals"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_has_a_summary_before_the_exercises(path):
    markdown = "\n".join(text(c) for c in cells(path) if c["cell_type"] == "markdown")
    summary, exercises = markdown.find("\n## Summary"), markdown.find("\n## Exercises")
    assert summary >= 0, "no '## Summary' section"
    assert exercises > summary, "no '## Exercises' section after the summary"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_have_hidden_executed_solutions(path):
    nb = cells(path)
    labels = [
        m.group(1)
        for c in nb
        if c["cell_type"] == "markdown"
        for m in re.finditer(r":::\{exercise\}\s*\n:label: (\S+)", text(c))
    ]
    assert 2 <= len(labels) <= 4, f"{len(labels)} exercises, expected 2 to 4"
    for label in labels:
        start = next(
            (
                i
                for i, c in enumerate(nb)
                if text(c).startswith(f":::{{solution-start}} {label}\n")
            ),
            None,
        )
        assert start is not None, f"exercise {label} has no solution"
        assert ":class: dropdown" in text(nb[start]), f"solution {label} not hidden"
        end = next(
            i
            for i in range(start, len(nb))
            if text(nb[i]).startswith(":::{solution-end}")
        )
        code = [c for c in nb[start:end] if c["cell_type"] == "code"]
        assert code, f"solution {label} has no code"
        assert all(c["execution_count"] for c in code), f"solution {label} not executed"


PAGES = sorted(CHAPTERS.glob("*.md"))


def prose(path):
    """The markdown a reader sees: a notebook's markdown cells, or a page."""
    if path.suffix == ".md":
        return path.read_text(encoding="utf-8")
    return "\n".join(text(c) for c in cells(path) if c["cell_type"] == "markdown")


@pytest.mark.parametrize("path", NOTEBOOKS + WORKBOOK + PAGES, ids=lambda p: p.name)
def test_exercises_are_named_by_label_not_number(path):
    # sphinx-exercise numbers the exercises across the whole book, so "exercise 2" in
    # the prose is rarely the exercise shown as 2: refer with {ref}`label`.
    typed = re.findall(r"\b[Ee]xercises? \d+", prose(path))
    assert not typed, f"typed exercise numbers: {typed}"


@pytest.mark.parametrize("path", NOTEBOOKS + WORKBOOK, ids=lambda p: p.name)
def test_shown_code_has_no_test_harness_comments(path):
    # nbval reads cell tags (nbval-ignore-output); a comment would only show the
    # machinery to the reader.
    for i, c in enumerate(cells(path)):
        if c["cell_type"] == "code":
            assert "NBVAL" not in text(c).upper(), f"cell {i} shows an nbval marker"


@pytest.mark.parametrize("path", NOTEBOOKS + WORKBOOK, ids=lambda p: p.name)
def test_figures_are_at_most_10_inches_wide(path):
    # bnbook.style's 12-point text shows at 9 points or more only in a figure at most
    # 10 inches wide (shrunk to the column of about 720 px)
    for i, c in enumerate(cells(path)):
        for width in re.findall(r"figsize=\(\s*([\d.]+)\s*,", text(c)):
            assert float(width) <= 10, f"cell {i}: a figure {width} inches wide"
