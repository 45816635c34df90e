"""The package's top level: ``seeds``, ``show`` and ``glue_number``, which every
chapter uses."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook import glue_number, seeds, show


def test_show_displays_the_source_as_a_python_code_block(monkeypatch):
    class Recorder:
        def method(self):
            """``x`` in double backticks, and a run of three: ```"""
            return 1

    shown = []
    monkeypatch.setattr(
        "IPython.display.display", lambda data, raw: shown.append((data, raw))
    )
    show(Recorder.method)
    ((data, raw),) = shown
    source = data["text/plain"]
    assert raw and set(data) == {"text/markdown", "text/plain"}
    assert source.startswith("def method(self):\n") and source.endswith("return 1\n")
    assert data["text/markdown"] == f"````python\n{source}````\n"  # 4: longer than 3

    def plain(x):
        return x

    show(plain)  # no backticks at all: the usual fence of 3
    assert (
        shown[-1][0]["text/markdown"] == "```python\ndef plain(x):\n    return x\n```\n"
    )
    with pytest.raises(TypeError, match="obj must be a function or a class"):
        show(42)


def test_show_leaves_out_mutation_testings_markers(monkeypatch):
    def marked(x, training=False):  # pragma: no mutate (training unused)
        return x  # a comment that stays

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda data, raw: shown.append(data))
    show(marked)
    assert shown[0]["text/plain"] == (
        "def marked(x, training=False):\n    return x  # a comment that stays\n"
    )


def test_seeds_start_at_the_offset_from_the_environment(monkeypatch):
    monkeypatch.delenv("BNBOOK_SEED_OFFSET", raising=False)
    assert seeds(3) == range(0, 3)
    monkeypatch.setenv("BNBOOK_SEED_OFFSET", "1000")
    assert seeds(5) == range(1000, 1005)
    assert seeds(1)[0] == 1000


@pytest.mark.parametrize(
    "offset, message", [("x", "whole number"), ("1.5", "whole number"), ("-1", ">= 0")]
)
def test_seeds_reject_a_bad_offset_naming_the_variable(monkeypatch, offset, message):
    monkeypatch.setenv("BNBOOK_SEED_OFFSET", offset)
    with pytest.raises(ValueError, match=f"BNBOOK_SEED_OFFSET.*{message}"):
        seeds(2)


def test_seeds_reject_a_bad_count(monkeypatch):
    monkeypatch.delenv("BNBOOK_SEED_OFFSET", raising=False)
    with raises_naming(TypeError, "n"):
        seeds(2.0)
    with raises_naming(ValueError, "n"):
        seeds(0)


def test_glue_number_glues_the_rounded_value_as_a_plain_number(monkeypatch):
    glued = []
    monkeypatch.setattr("bnbook._glue", lambda name, value: glued.append((name, value)))
    # nothing returned: a call that ends a cell shows no stray number in the book
    assert glue_number("ratio", np.float64(1.4567), 1) is None
    glue_number("steps", np.int64(775), 0)
    glue_number("big", 12345.6, -2)
    assert glued == [("ratio", 1.5), ("steps", 775), ("big", 12300)]
    assert all(type(v) in (float, int) for _, v in glued)
    assert type(glued[0][1]) is float and type(glued[1][1]) is int


def _displayed(monkeypatch, glue):
    """The display calls that ``glue()`` makes, as (data, metadata, raw)."""
    import IPython.display

    calls = []

    def display(obj, raw=False, metadata=None):
        calls.append((obj, metadata, raw))

    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setattr("myst_nb.ext.glue.ipy_display", display)
    glue()
    return calls


@pytest.mark.parametrize("value", [1.5, 775, 0.001, 12300])
def test_glue_writes_what_myst_nb_glue_writes(monkeypatch, value):
    from myst_nb import glue as myst_glue

    from bnbook import _glue

    ours = _displayed(monkeypatch, lambda: _glue("name", value))
    theirs = _displayed(monkeypatch, lambda: myst_glue("name", value, display=False))
    assert ours == theirs and len(ours) == 1


def test_glue_number_rejects_bad_input():
    with raises_naming(TypeError, "name"):
        glue_number("", 1.0, 1)
    with raises_naming(TypeError, "digits"):
        glue_number("x", 1.0, 1.5)
    with raises_naming(ValueError, "value"):
        glue_number("x", np.nan, 1)
    with raises_naming(TypeError, "value"):
        glue_number("x", "1.5", 1)
