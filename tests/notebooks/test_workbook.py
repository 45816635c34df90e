"""The workbook: exercise notebooks in sync with their solutions, blanks that the checks
call "not implemented yet", and pages with the workbook's shape."""

import importlib.util
import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHAPTERS = ROOT / "chapters"
SOLUTIONS = sorted(
    p for p in CHAPTERS.glob("workbook_*.ipynb") if "_exercise" not in p.stem
)
EXERCISES = sorted(CHAPTERS.glob("workbook_*_exercise.ipynb"))


def generator():
    spec = importlib.util.spec_from_file_location(
        "make_exercises", ROOT / "tools/make_exercises.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def text(cell):
    return "".join(cell["source"])


def tags(cell):
    return cell["metadata"].get("tags", [])


def test_five_pages_each_with_its_exercise_notebook():
    assert len(SOLUTIONS) == 5
    assert [p.name for p in EXERCISES] == [
        f"{p.stem}_exercise.ipynb" for p in SOLUTIONS
    ]


def test_exercise_notebooks_are_in_sync_with_their_solutions(capsys):
    # `make workbook` writes them; a hand edit to either side, or a solution changed
    # without regenerating, fails here
    assert generator().main(["--check"]) == 0, capsys.readouterr().out


def test_the_blank_is_made_from_the_solution():
    blank = generator().blank_of(
        'def f(x):\n    """Doc."""\n    y = x + 1\n    return y\n\n\n'
        "class L:\n    def __init__(self, n):\n        self.n = n\n"
    )
    assert blank == (
        'def f(x):\n    """Doc."""\n    raise NotImplementedError  # your code here\n\n\n'
        "class L:\n    def __init__(self, n):\n"
        "        raise NotImplementedError  # your code here"
    )


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_exercise_notebooks_hold_no_solution_and_no_output(path):
    for cell in cells(path):
        assert "solution" not in tags(cell)
        assert not text(cell).startswith(":::{solution-start}")
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def _check_cells(path):
    """The indices of the page's check cells, in order."""
    return [
        k
        for k, cell in enumerate(cells(path))
        if cell["cell_type"] == "code" and re.match(r"check_\w+\(", text(cell))
    ]


@pytest.mark.parametrize(
    ("path", "k"),
    [(p, k) for p in SOLUTIONS for k in range(len(_check_cells(p)))],
    ids=lambda v: v.name if isinstance(v, pathlib.Path) else f"check {v + 1}",
)
def test_each_check_calls_the_blank_not_implemented_yet(path, k):
    """A reader who has solved the exercises before check ``k`` and left its own
    function blank: the check must fail with "is not implemented yet". The page is run
    from its solution, with the solution cells of exercise ``k`` on left out."""
    from bnbook.workbook import CheckFailed

    nb, check = cells(path), _check_cells(path)[k]
    previous = _check_cells(path)[k - 1] if k else -1
    namespace = {}
    for index, cell in enumerate(nb[:check]):
        if cell["cell_type"] != "code" or index in _check_cells(path):
            continue  # the earlier checks pass on the solutions (strict nbval runs them)
        if "solution" in tags(cell) and index > previous:
            continue
        exec(compile(text(cell), path.name, "exec"), namespace)
    with pytest.raises(CheckFailed, match="is not implemented yet"):
        exec(compile(text(nb[check]), path.name, "exec"), namespace)


def test_every_page_has_its_checks():
    assert [len(_check_cells(p)) for p in SOLUTIONS] == [1, 3, 1, 1, 1]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_a_page_has_the_workbooks_shape(path):
    nb = cells(path)
    first = text(nb[0])
    assert first.startswith("# Workbook: ")
    assert ":::{admonition} What you will write" in first
    prose = "\n".join(text(c) for c in nb if c["cell_type"] == "markdown")
    assert re.search(r"\]\(#derivation-", prose), "no link to chapter 2's math"
    assert f"{path.stem}_exercise.ipynb" in prose, "the exercise notebook is not named"
    assert ":::{dropdown} Hint" in prose, "no hints"
    labels = re.findall(r":::\{exercise\}.*\n:label: (\S+)", prose)
    assert labels, "no exercise"
    for label in labels:
        start = next(
            i
            for i, c in enumerate(nb)
            if text(c).startswith(f":::{{solution-start}} {label}\n")
        )
        assert ":class: dropdown" in text(nb[start]), f"{label}: solution not hidden"
        assert "blank" in tags(nb[start - 2]), f"{label}: no blank before the hints"
        # inside the dropdown: the solution, a sentence that says the check's output
        # below is the solution's (left out of the exercise notebook), and the check,
        # so that the page never shows a blank followed by "passed"
        solution, said, check, end = nb[start + 1 : start + 5]
        assert solution["cell_type"] == "code", f"{label}: no solution cell"
        assert "solution" in tags(solution), f"{label}: no solution cell"
        assert said["cell_type"] == "markdown" and "solution" in tags(said)
        assert "run on the solution above" in text(said), f"{label}: {text(said)!r}"
        assert re.match(r"check_\w+\(", text(check)), f"{label}: no check"
        assert check["outputs"][0]["text"][0].startswith("check_")
        assert text(end).startswith(":::{solution-end}"), f"{label}: check outside"
