"""Generate the workbook's exercise notebooks from their solutions: `make workbook`.

Usage: python tools/make_exercises.py [--check]

The solution notebooks (chapters/workbook_*.ipynb) are the source of truth. In each,
a code cell tagged ``solution`` holds the reader's function or class as solved, and
the code cell tagged ``blank`` before it shows what the reader starts from: the same
signatures and docstrings, each body replaced by ``raise NotImplementedError``. This
script writes every ``blank`` cell from its solution, and writes the exercise
notebook (the solution's name with ``_exercise``): the solution notebook without its
cells tagged ``solution`` (the solution's code, and the sentence that introduces the
check's output inside the solution's dropdown) and the ``solution-start`` and
``solution-end`` markers, unexecuted. In the book the check cell sits inside the
solution's dropdown, with its output on the solution; in the exercise notebook it
follows the hints, for the reader's own function. With ``--check`` it writes nothing and fails if any file would change:
tests/notebooks/test_workbook.py runs it so, and the two cannot drift apart.
"""

import ast
import pathlib
import sys

import nbformat

from bnbook import inline

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
BODY = "raise NotImplementedError  # your code here"


def solutions():
    """The solution notebooks, in the workbook's order."""
    paths = CHAPTERS.glob("workbook_*.ipynb")
    return sorted(p for p in paths if not p.stem.endswith("_exercise"))


def exercise_path(solution):
    return solution.with_name(f"{solution.stem}_exercise.ipynb")


def blank_of(source):
    """``source`` with the body of every function and method after its docstring
    replaced by ``raise NotImplementedError``; everything else kept."""
    lines = source.splitlines()
    tree = ast.parse(source)
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            functions += [n for n in node.body if isinstance(n, ast.FunctionDef)]
    for node in sorted(functions, key=lambda n: n.lineno, reverse=True):
        body = node.body
        kept = body[:1] if ast.get_docstring(node) is not None else []
        start = kept[0].end_lineno if kept else body[0].lineno - 1
        indent = " " * body[0].col_offset
        lines[start : node.end_lineno] = [indent + BODY]
    return "\n".join(lines)


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def with_blanks(nb):
    """``nb`` with each ``blank`` cell written from the next ``solution`` cell."""
    nb = nbformat.from_dict(nb)
    for i, cell in enumerate(nb.cells):
        if "blank" in tags(cell):
            solution = next(
                c
                for c in nb.cells[i:]
                if c.cell_type == "code" and "solution" in tags(c)
            )
            cell.source = blank_of(solution.source)
    return nb


def is_solution(cell):
    text = cell.source
    markers = (":::{solution-start}", ":::{solution-end}")
    return "solution" in tags(cell) or (
        cell.cell_type == "markdown" and text.startswith(markers)
    )


def exercise_of(nb, name):
    """The exercise notebook: ``nb`` without its solutions, unexecuted, with a note
    saying where it comes from."""
    exercise = nbformat.from_dict(nb)
    exercise.cells = [c for c in exercise.cells if not is_solution(c)]
    for cell in exercise.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("jupyter", None)  # folded as the solution page: fold again
    inline.fold(exercise)  # the check cells, in a solution there, are the reader's here
    note = nbformat.v4.new_markdown_cell(
        f"*The exercise notebook of `{name}`, generated from it by `make workbook`: "
        "write each function that raises `NotImplementedError`, then run the check "
        "below it. The hints open with a click in the book; the solutions are in "
        f"`{name}`.*"
    )
    note.id = "exercise-note"
    exercise.cells.insert(1, note)
    return exercise


def generated():
    """{path: text} for every file the workbook consists of."""
    files = {}
    for path in solutions():
        nb = with_blanks(nbformat.read(path, as_version=4))
        files[path] = nbformat.writes(nb) + "\n"
        files[exercise_path(path)] = nbformat.writes(exercise_of(nb, path.name)) + "\n"
    return files


def main(argv):
    stale = [
        path
        for path, text in generated().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    if argv == ["--check"]:
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)} (run `make workbook`)")
        return 1 if stale else 0
    for path, text in generated().items():
        if path in stale:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
