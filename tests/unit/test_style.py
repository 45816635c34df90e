"""The book's figure style."""

import matplotlib as mpl
import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pytest
from naming import raises_naming

from bnbook.style import COLORS, LINESTYLES, VARIANTS, band, use_book_style


def test_style_sets_the_book_parameters():
    with mpl.rc_context():  # restores the parameters even when an assert fails
        mpl.rcdefaults()
        use_book_style()
        assert mpl.rcParams["axes.grid"] is True
        assert mpl.rcParams["axes.spines.top"] is False
        assert tuple(mpl.rcParams["figure.figsize"]) == (8.0, 3.6)


def test_every_text_of_a_figure_is_at_least_12_points():
    # 12 points in a figure 10 inches wide, shown in a column of about 720 px, is 9 points
    from matplotlib.font_manager import FontProperties

    with mpl.rc_context():
        mpl.rcdefaults()
        use_book_style()
        for key in (
            "font.size",
            "axes.titlesize",
            "axes.labelsize",
            "xtick.labelsize",
            "ytick.labelsize",
            "legend.fontsize",
            "figure.titlesize",
        ):
            size = FontProperties(size=mpl.rcParams[key]).get_size_in_points()
            assert size >= 12, (key, size)


def test_every_variant_is_drawn_its_own_way():
    assert all(mcolors.is_color_like(c) for c in COLORS.values())
    drawn = {(v.color, v.marker, v.linestyle) for v in VARIANTS.values()}
    assert len(drawn) == len(VARIANTS)
    assert len({v.label for v in VARIANTS.values()}) == len(VARIANTS)
    # Variants that share a figure (chapter 5's four, chapter 7's five) differ in colour.
    for group in (
        ("standard", "bn", "noisy_bn", "standard_noise"),
        ("standard", "bn", "renorm", "layer_norm", "group_norm"),
        ("standard", "bn", "residual_bn"),
    ):
        assert len({VARIANTS[k].color for k in group}) == len(group), group
    assert COLORS["reference"] not in {v.color for v in VARIANTS.values()}


def test_band_draws_the_median_and_the_range_and_skips_diverged_runs():
    fig, ax = plt.subplots()
    runs = np.array([[1.0, 2.0, 3.0], [3.0, np.nan, 5.0], [2.0, 4.0, 4.0]])
    (line,) = band(ax, [0, 1, 2], runs, "bn")
    np.testing.assert_array_equal(line.get_ydata(), [2.0, 3.0, 4.0])
    assert line.get_label() == VARIANTS["bn"].label
    assert line.get_color() == VARIANTS["bn"].color
    assert line.get_marker() == VARIANTS["bn"].marker  # 3 points: markers drawn
    (poly,) = ax.collections
    vertices = poly.get_paths()[0].vertices
    assert vertices[:, 1].min() == 1.0 and vertices[:, 1].max() == 5.0
    (other,) = band(ax, [0, 1, 2], runs, "standard", label="plain", markers=False)
    assert other.get_label() == "plain" and other.get_marker() in ("", "None")
    plt.close(fig)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"key": "batchnorm"}, ValueError, "key"),
        ({"runs": np.ones(3)}, ValueError, "runs"),
        ({"runs": np.ones((2, 4))}, ValueError, "runs"),
    ],
)
def test_band_refuses_bad_input(kwargs, error, name):
    fig, ax = plt.subplots()
    args = {"x": [0, 1, 2], "runs": np.ones((2, 3)), "key": "bn"} | kwargs
    with raises_naming(error, name):
        band(ax, **args)
    plt.close(fig)


def test_line_styles_are_distinct_valid_and_never_dotted():
    from matplotlib.lines import lineStyles

    assert LINESTYLES[0] == "-"  # the first series drawn as lines usually are
    assert len(set(LINESTYLES)) == len(LINESTYLES) >= 3
    assert all(s in lineStyles and s not in ("", " ", "None") for s in LINESTYLES)
    assert ":" not in LINESTYLES  # dotted: theory, paper values and targets
