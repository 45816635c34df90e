"""bnbook.inline: the prose's numbers and citations as {eval} expressions, their stored
results for JupyterLab, and the solutions folded there."""

import pathlib

import pytest
from IPython.lib.pretty import pretty

from bnbook import glue_number, glued
from bnbook.inline import (
    Cite,
    Glued,
    InlineError,
    expressions,
    fold,
    glued_texts,
    parse,
    render,
    store,
    user_expressions,
)

BIB = pathlib.Path(__file__).resolve().parents[2] / "references.bib"


def test_parse_reads_the_two_forms_and_nothing_else():
    assert parse('glued["acc"]') == ("glued", "acc", "")
    assert parse('glued["error_1e3:.1%"]') == ("glued", "error_1e3", ".1%")
    assert parse('cite.t("ioffe2015batch")') == ("cite", "t", ["ioffe2015batch"])
    assert parse('cite.p("a-b,c")') == ("cite", "p", ["a-b", "c"])
    for bad in (
        "acc",
        "glued['acc']",
        'glued["1acc"]',
        'cite.x("a")',
        'cite.t("a, b")',
    ):
        with pytest.raises(InlineError, match="is neither"):
            parse(bad)
    with pytest.raises(TypeError, match="^expression must be a str, got int"):
        parse(3)


def test_expressions_in_order_once_each():
    text = 'a {eval}`glued["x"]`, {eval}`cite.t("k")` and {eval}`glued["x"]` {glue}`y`'
    assert expressions(text) == ['glued["x"]', 'cite.t("k")']


def test_glued_formats_as_the_glue_role_and_notes_a_name_not_glued_yet():
    numbers = Glued()
    numbers.values.update(acc=0.5123, steps=44)
    assert numbers["acc"] == "0.5123" and numbers["steps"] == "44"
    assert numbers["acc:.1%"] == "51.2%" and numbers["steps:.1f"] == "44.0"
    assert numbers["missing"] == "[missing: run the code above]"
    assert pretty(numbers["acc"]) == "0.5123"  # the kernel shows it without quotes
    with pytest.raises(InlineError):
        numbers["acc]"]


def test_glue_number_keeps_the_rounded_number_for_the_kernel():
    glue_number("test_inline_value", 0.123456, 3)
    assert glued.values["test_inline_value"] == 0.123
    assert glued["test_inline_value:.1%"] == "12.3%"
    glue_number("test_inline_count", 44.4, 0)
    assert glued["test_inline_count"] == "44"


def test_citations_as_the_html_book_writes_them():
    cite = Cite(BIB)
    assert cite.t("ioffe2015batch") == "Ioffe and Szegedy [2015]"
    assert cite.t("santurkar2018how") == "Santurkar et al. [2018]"
    assert cite.p("ioffe2017batch") == "[Ioffe, 2017]"
    assert (
        cite.p("arora2019theoretical,vanlaarhoven2017l2")
        == "[Arora et al., 2019, van Laarhoven, 2017]"
    )
    with pytest.raises(InlineError, match="'nobody2099' is not a key of"):
        cite.t("nobody2099")


def glue_output(name, text):
    return {
        "output_type": "display_data",
        "metadata": {"scrapbook": {"name": name}},
        "data": {"application/papermill.record/text/plain": text},
    }


def notebook(*cells):
    return {"cells": list(cells)}


def markdown(text, **metadata):
    return {"cell_type": "markdown", "source": text, "metadata": metadata}


def code(outputs=(), **metadata):
    return {
        "cell_type": "code",
        "source": "x",
        "outputs": list(outputs),
        "metadata": metadata,
    }


def test_store_writes_each_cells_results_as_jupyterlab_myst_does():
    nb = notebook(
        code([glue_output("acc", "0.5123"), glue_output("n", "44")]),
        markdown('Accuracy {eval}`glued["acc:.2f"]` in {eval}`glued["n"]` steps.'),
        markdown("No expression.", user_expressions=[{"stale": 1}]),
        markdown(['As {eval}`cite.t("ioffe2015', 'batch")` showed.']),
    )
    assert glued_texts(nb) == {"acc": "0.5123", "n": "44"}
    assert store(nb, citations=Cite(BIB)) == 2
    first = nb["cells"][1]["metadata"]["user_expressions"]
    assert first == [
        {
            "expression": 'glued["acc:.2f"]',
            "result": {"status": "ok", "data": {"text/plain": "0.51"}, "metadata": {}},
        },
        {
            "expression": 'glued["n"]',
            "result": {"status": "ok", "data": {"text/plain": "44"}, "metadata": {}},
        },
    ]
    assert "user_expressions" not in nb["cells"][2]["metadata"]
    (only,) = nb["cells"][3]["metadata"]["user_expressions"]
    assert only["result"]["data"]["text/plain"] == "Ioffe and Szegedy [2015]"


def test_a_number_the_notebook_does_not_glue_is_named():
    with pytest.raises(InlineError, match=r"ch\.ipynb, cell 0: the prose quotes 'acc'"):
        store(notebook(markdown('{eval}`glued["acc"]`')), where="ch.ipynb")
    assert render('glued["acc"]', {"acc": "0.5"}) == "0.5"
    assert user_expressions("plain text", {}) == []


def test_fold_hides_solutions_and_what_the_book_folds():
    nb = notebook(
        markdown(":::{exercise}\n:label: ex\nDo it.\n:::"),
        markdown(":::{solution-start} ex\n:class: dropdown\n:::"),
        code([glue_output("a", "1")]),
        markdown("Because."),
        markdown(":::{solution-end}\n:::"),
        code(),
        code(tags=["hide-input"]),
        code(tags=["hide-output"]),
        code(tags=["hide-cell", "other"]),
        markdown("Folded prose.", tags=["hide-input"]),
        code(tags=["nbval-ignore-output"]),
    )
    checks = code(tags=["hide-input"])
    checks["source"] = "# The checks behind this section: the shape\nassert True"
    nb["cells"].append(checks)
    assert fold(nb) == 7
    assert checks["metadata"]["mystnb"] == {
        "code_prompt_show": "Show the checks behind this section",
        "code_prompt_hide": "Hide the checks",
    }
    assert "mystnb" not in nb["cells"][6]["metadata"]  # folded, but not checks
    nb["cells"].pop()
    hidden = [c["metadata"].get("jupyter") for c in nb["cells"]]
    both = {"source_hidden": True, "outputs_hidden": True}
    assert hidden == [
        None,
        None,
        both,
        {"source_hidden": True},
        None,
        None,
        {"source_hidden": True},
        {"outputs_hidden": True},
        both,
        {"source_hidden": True},
        None,
    ]
    with pytest.raises(InlineError, match="without its"):
        fold(notebook(markdown(":::{solution-start} ex\n:::"), code()))
