"""bnbook.figuretext: captions and alt texts rendered from a notebook's glued numbers."""

import pytest

from bnbook.figuretext import (
    FigureTextError,
    fields,
    glued_values,
    render,
    render_figure_text,
)

RECORD = "application/papermill.record/text/plain"


def glue_output(name, text):
    """A display output as myst-nb's ``glue(name, value, display=False)`` stores it."""
    return {
        "output_type": "display_data",
        "data": {RECORD: text},
        "metadata": {"scrapbook": {"name": name, "mime_prefix": RECORD[:-10]}},
    }


def figure_cell(caption=None, alt=None):
    templates = {k: v for k, v in (("caption", caption), ("alt", alt)) if v is not None}
    return {
        "cell_type": "code",
        "source": "plt.show()",
        "outputs": [
            {"output_type": "display_data", "data": {"text/plain": "<Figure>"}}
        ],
        "metadata": {
            "mystnb": {
                "figure": {"name": "fig-x", "caption": "stale"},
                "image": {"alt": "stale"},
            },
            "bnbook": templates,
        },
    }


def notebook(*cells):
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def computing_cell(*outputs):
    return {"cell_type": "code", "source": "", "outputs": list(outputs), "metadata": {}}


def test_glued_values_are_read_back_as_python_literals():
    nb = notebook(
        computing_cell(glue_output("acc", "0.51"), glue_output("n", "5")),
        computing_cell({"output_type": "stream", "name": "stdout", "text": "hi"}),
        {"cell_type": "markdown", "source": "text", "metadata": {}},
    )
    assert glued_values(nb) == {"acc": 0.51, "n": 5}


def test_a_glued_value_that_is_not_a_literal_is_named():
    nb = notebook(computing_cell(glue_output("fig", "<Figure size 640x480>")))
    with pytest.raises(FigureTextError, match="'fig'.*not a Python literal"):
        glued_values(nb, "ch.ipynb")


def test_a_glued_value_without_its_text_is_named():
    output = glue_output("acc", "0.5")
    output["data"] = {"image/png": "..."}
    with pytest.raises(FigureTextError, match="ch.ipynb: the glued value 'acc'"):
        glued_values(notebook(computing_cell(output)), "ch.ipynb")


def test_fields_are_the_names_in_order():
    assert fields("near {a:.2f} at {n} and {a}, {{literal}}") == ["a", "n", "a"]
    assert fields("no fields") == []


def test_render_formats_with_the_specs():
    values = {"acc": 0.5123, "n": 5}
    assert render("{n} seeds, near {acc:.2f}", values) == "5 seeds, near 0.51"
    assert render("{{cite:t}}`x`", {}) == "{cite:t}`x`"


def test_an_unknown_field_names_the_field_and_the_notebook():
    with pytest.raises(FigureTextError, match=r"ch\.ipynb, fig.*'accc'.*glued: acc"):
        render("near {accc:.2f}", {"acc": 0.5}, "ch.ipynb, fig")


def test_a_missing_value_is_named():
    with pytest.raises(FigureTextError, match="ch.ipynb: the glued value 'acc' is"):
        render("near {acc}", {"acc": None}, "ch.ipynb")


@pytest.mark.parametrize("template", ["{}", "{0}", "{acc.real}", "{acc[0]}"])
def test_a_field_must_be_a_plain_name(template):
    with pytest.raises(FigureTextError, match="ch.ipynb: the template field"):
        render(template, {"acc": 0.5}, "ch.ipynb")


def test_a_bad_format_spec_names_the_template():
    with pytest.raises(FigureTextError, match="ch.ipynb: the template '{acc:d}'"):
        render("{acc:d}", {"acc": 0.5}, "ch.ipynb")


def test_render_figure_text_writes_caption_and_alt_from_the_glued_values():
    cell = figure_cell(caption="mean of {n} seeds", alt="starts near {acc:.2f}")
    nb = notebook(
        computing_cell(glue_output("acc", "0.51"), glue_output("n", "3")), cell
    )
    assert render_figure_text(nb, "ch.ipynb") == 2
    assert cell["metadata"]["mystnb"]["figure"] == {
        "name": "fig-x",
        "caption": "mean of 3 seeds",
    }
    assert cell["metadata"]["mystnb"]["image"] == {"alt": "starts near 0.51"}


def test_render_figure_text_leaves_cells_without_templates_alone():
    cell = figure_cell(alt="near {acc}")
    del cell["metadata"]["bnbook"]
    nb = notebook(computing_cell(glue_output("acc", "0.5")), cell)
    assert render_figure_text(nb) == 0
    assert cell["metadata"]["mystnb"]["image"]["alt"] == "stale"


def test_render_figure_text_creates_the_alt_text_if_absent():
    cell = figure_cell(alt="near {acc}")
    del cell["metadata"]["mystnb"]["image"]
    nb = notebook(computing_cell(glue_output("acc", "0.5")), cell)
    render_figure_text(nb)
    assert cell["metadata"]["mystnb"]["image"] == {"alt": "near 0.5"}


def test_render_figure_text_names_notebook_figure_and_field():
    nb = notebook(figure_cell(alt="near {acc}"))
    with pytest.raises(FigureTextError, match=r"ch\.ipynb, figure fig-x, alt.*'acc'"):
        render_figure_text(nb, "ch.ipynb")


def test_an_unknown_metadata_key_is_named():
    cell = figure_cell(alt="x")
    cell["metadata"]["bnbook"]["captions"] = "typo"
    with pytest.raises(FigureTextError, match="captions"):
        render_figure_text(notebook(cell))
