"""Every notebook is committed executed, top to bottom, without errors or stderr.

nbval re-executes a notebook and compares outputs, but it passes a notebook whose
cells were never run (there is nothing stored to compare), so this check comes first.
"""

import json
import pathlib
import re

import pytest

from bnbook import _source

CHAPTERS = pathlib.Path(__file__).resolve().parents[2] / "chapters"
# The workbook's exercise notebooks are stored unexecuted (tests/notebooks/test_workbook.py).
NOTEBOOKS = sorted(p for p in CHAPTERS.glob("*.ipynb") if "_exercise" not in p.stem)


def code_cells(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [c for c in cells if c["cell_type"] == "code" and "".join(c["source"])]


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks found under {CHAPTERS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_executed_in_order_from_one(path):
    counts = [c["execution_count"] for c in code_cells(path)]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts {counts} are not 1..{len(counts)}; "
        "run `make execute` to re-run it top to bottom in a fresh kernel"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_error_or_stderr_output(path):
    for i, cell in enumerate(code_cells(path)):
        for out in cell["outputs"]:
            assert out["output_type"] != "error", f"{path.name}, code cell {i + 1}"
            assert out.get("name") != "stderr", (
                f"{path.name}, code cell {i + 1} writes to stderr: "
                + "".join(out["text"])[:200]
            )


SHOW = re.compile(r"^show\(([\w.]+)\)$")


def shown_sources(path):
    """(expression, stored source) for each cell that shows one object's source with
    ``show(name)``, and the namespace of the notebook's ``bnbook`` imports."""
    cells = code_cells(path)
    namespace = {}
    for cell in cells:
        source = "".join(cell["source"])
        pattern = r"^from bnbook[\w.]* import (?:\([^)]*\)|[^\n]*)"
        imports = re.findall(pattern, source, re.MULTILINE)
        for statement in imports:
            exec(statement, namespace)
    for cell in cells:
        lines = "".join(cell["source"]).strip().splitlines()
        for line, output in zip(lines, cell["outputs"], strict=False):
            match = SHOW.match(line)
            if match and len(lines) == len(cell["outputs"]):
                yield match.group(1), "".join(output["data"]["text/plain"]), namespace


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_shown_code_is_the_current_code(path):
    # A chapter shows the package's code with bnbook.show; a change to that code needs
    # the chapter re-executed (`make execute NB=...`), which nbval finds only later.
    for expression, stored, namespace in shown_sources(path):
        current = _source(eval(expression, namespace))
        assert current == stored, (
            f"{path.name} shows {expression} as it was: run `make execute NB={path}`"
        )
