"""tools/sweep.py reads an executed notebook: which asserting cells held, which failed and
on what line, and the glued numbers. Checked on notebooks built here, without a kernel."""

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sweep():
    spec = importlib.util.spec_from_file_location("sweep", ROOT / "tools/sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code(source, outputs=(), tags=()):
    metadata = {"tags": list(tags)} if tags else {}
    return {
        "cell_type": "code",
        "source": source,
        "metadata": metadata,
        "outputs": list(outputs),
    }


def error(line, ename="AssertionError", evalue=""):
    frame = f"\x1b[32m---> \x1b[39m\x1b[32m12\x1b[39m {line}"
    return {
        "output_type": "error",
        "ename": ename,
        "evalue": evalue,
        "traceback": ["Traceback", frame, f"{ename}: {evalue}"],
    }


def glued(name, text):
    return {
        "output_type": "display_data",
        "data": {"application/papermill.record/text/plain": text},
        "metadata": {"scrapbook": {"name": name, "mime_prefix": ""}},
    }


NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "source": "assert in prose is not code"},
        code("x = 1"),  # 1: no assert
        code("assert x == 1", [glued("x_value", "1.5")]),  # 2: held
        code("y = 2\nassert y < 0, y", [error("assert y < 0, y", evalue="2")]),  # 3
        code("np.testing.assert_allclose(1, 1)"),  # 4: held
        code("# asserted in the text\nz = 3"),  # 5: a comment, not an assert
        code(
            "raise ValueError",
            [error("raise ValueError", "ValueError")],
            ["raises-exception"],
        ),
        code("w = v", [error("w = v", "NameError", "name 'v' is not defined")]),  # 7
    ]
}


def test_cells_that_held_failed_or_raised(sweep):
    cells, numbers = sweep.summarize(NOTEBOOK)
    assert cells[2] is None and cells[4] is None
    assert cells[3].startswith("assert y < 0, y") and "AssertionError: 2" in cells[3]
    assert "NameError" in cells[7]
    assert 1 not in cells and 5 not in cells and 6 not in cells  # tagged: expected
    assert numbers == {"x_value": 1.5}


def test_the_report_counts_offsets_and_failures(sweep, tmp_path, capsys):
    import json

    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(NOTEBOOK))
    held = sweep.summarize(NOTEBOOK)
    passing = ({2: None, 3: None, 4: None}, {"x_value": 0.5}, 1.0)
    failures = sweep.report(path, [7, 8], [(*held, 2.0), passing])
    out = capsys.readouterr().out
    assert failures == 2  # cell 3 at offset 7, cell 7 at offset 7
    assert "offset 7: assert y < 0, y" in out
    assert " 1/2 " in out and " 2/2 " in out
    assert "x_value" in out and "0.5" in out and "1.5" in out
