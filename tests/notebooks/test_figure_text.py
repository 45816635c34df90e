"""Figure captions and alt texts quote what the stored outputs computed.

A measured number reaches a caption or an alt text only through a template
(``bnbook.caption``, ``bnbook.alt`` in the figure cell's metadata) that tools/execute.py
renders with the notebook's glued values (bnbook.figuretext). Here: every stored text
is its template rendered with the stored glued values (a template edited without
re-executing fails), and no text types a decimal fraction or a seed count outside a
template, but for the protocol settings allowed below.
"""

import json
import pathlib
import re

import pytest

from bnbook.figuretext import TARGETS, glued_values, rendered, templates

CHAPTERS = pathlib.Path(__file__).resolve().parents[2] / "chapters"
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb"))

# Typed numbers that are not measurements: (figure, the phrase, why it may be typed).
ALLOWED = [
    ("fig-warmup", "momentum 0.99", "protocol: Keras's default momentum"),
    ("fig-warmup", "momentum 0.9", "protocol: the lower momentum tried"),
    (
        "fig-noisy-bn-training",
        "rates 0.1 (left) and 1.0",
        "protocol: the rates trained at",
    ),
    ("fig-noisy-bn-training", "At 0.1", "protocol: a rate trained at"),
    ("fig-noisy-bn-training", "at 1.0", "protocol: a rate trained at"),
    ("fig-noisy-bn-training", "learning rate 0.1", "protocol: a rate trained at"),
    ("fig-noisy-bn-training", "learning rate 1.0", "protocol: a rate trained at"),
    (
        "fig-noisy-bn-distributions",
        "learning rate 0.1",
        "protocol: the rate trained at",
    ),
    ("fig-ics", "Definition 2.1", "quoted: Santurkar et al.'s definition"),
    ("fig-landscape", "learning rate 0.1", "protocol: the rate trained at"),
    ("fig-landscape", "0.25 to 2 %", "protocol: the step sizes probed"),
    ("fig-lr-sweep", "loss of 0.1", "protocol: the target loss"),
    ("fig-lr-sweep", "from 0.01 to 10", "protocol: the range of rates swept"),
    ("fig-init-scale", "learning rate 0.1", "protocol: the rate trained at"),
    ("fig-init-scale", "from 0.1 to 10", "protocol: the range of scales tried"),
    ("fig-deep-training", "learning rate 0.01", "protocol: the rate trained at"),
    ("fig-conv-statistics", "0.99 to the power 300", "protocol: momentum and steps"),
    ("fig-depth-reached", "above 0.5 at", "protocol: the threshold for training"),
    ("fig-depth-reached", "below 0.5 at", "protocol: the threshold for training"),
    ("fig-depth-reached", "from 0.75 to 1", "protocol: the range of the axis"),
    ("fig-depth-reached", "above 0.75 at", "protocol: the threshold asserted"),
    ("fig-effective-lr", "rates 0.1, 1 and 10", "protocol: the rates trained at"),
    ("fig-effective-lr", "for 0.1 and 1", "protocol: the rates trained at"),
    ("fig-angular-update", "momentum 0.9", "protocol: the momentum tried"),
    ("fig-fixup-rates", "at 0.03 and close to it at 0.1 and 0.3", "protocol: rates"),
    ("fig-fixup-rates", "learning rate 0.03 to 3", "protocol: the rates swept"),
    (
        "fig-fixup-rates",
        "above it at 0.03, close to it at 0.1 and 0.3",
        "protocol: rates",
    ),
    ("fig-precise-statistics", "0.01, 0.1 and 0.5", "protocol: the rates trained at"),
    ("fig-precise-statistics", "rate 0.01", "protocol: a rate trained at"),
    ("fig-precise-statistics", "rate 0.1", "protocol: a rate trained at"),
    ("fig-precise-statistics", "rate 0.5", "protocol: a rate trained at"),
    ("fig-precise-statistics", "at 0.01", "protocol: a rate trained at"),
]
DECIMAL = re.compile(r"\d\.\d")
SEED_COUNT = re.compile(r"\b\d+ seeds\b")


def figure_cells(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    return nb, [c for c in nb["cells"] if "figure" in c["metadata"].get("mystnb", {})]


def stored(cell, key):
    node = cell["metadata"]
    for part in TARGETS[key]:
        node = node.get(part, {})
    return node or None


def values_of(path):
    """The glued values a notebook's templates are rendered with: an exercise
    notebook is stored unexecuted, and its figure texts are its solution's."""
    solution = path.with_name(path.name.replace("_exercise", ""))
    return glued_values(json.loads(solution.read_text(encoding="utf-8")), path.name)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_figure_texts_are_their_templates_rendered(path):
    nb, _ = figure_cells(path)
    for index, key, text in rendered(nb, values_of(path), path.name):
        cell = nb["cells"][index]
        assert stored(cell, key) == text, (
            f"{path.name}, figure {cell['metadata']['mystnb']['figure'].get('name')}: "
            f"the stored {key} is not its template rendered with the stored glued "
            "values; run `make execute` on the notebook"
        )


def typed_text(cell, key):
    """The text of ``key`` as typed: its template without the fields, or the text."""
    template = templates(cell).get(key)
    if template is None:
        return stored(cell, key) or ""
    return re.sub(r"\{[^{}]*\}", "", template.replace("{{", "").replace("}}", ""))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_typed_measurement_in_figure_texts(path):
    _, cells = figure_cells(path)
    for cell in cells:
        name = cell["metadata"]["mystnb"]["figure"].get("name")
        for key in TARGETS:
            text = typed_text(cell, key)
            for figure, phrase, _ in ALLOWED:
                if figure == name:
                    text = text.replace(phrase, "")
            for pattern in (DECIMAL, SEED_COUNT):
                found = pattern.search(text)
                assert found is None, (
                    f"{path.name}, figure {name}: the {key} types "
                    f"{text[max(found.start() - 30, 0) : found.end() + 30]!r}. A measured "
                    "number goes into a template field (bnbook.caption, bnbook.alt) fed "
                    "by glue_number; a protocol setting into this test's ALLOWED"
                )


def test_every_allowed_phrase_is_in_use():
    texts = {}
    for path in NOTEBOOKS:
        for cell in figure_cells(path)[1]:
            name = cell["metadata"]["mystnb"]["figure"].get("name")
            texts[name] = texts.get(name, "") + "".join(
                typed_text(cell, key) for key in TARGETS
            )
    for figure, phrase, _ in ALLOWED:
        assert phrase in texts.get(figure, ""), f"ALLOWED: {figure}: {phrase!r} unused"
