"""The book's figure style."""

import matplotlib as mpl
import matplotlib.colors as mcolors

from bnbook.style import COLORS, use_book_style


def test_style_sets_the_book_parameters():
    mpl.rcdefaults()
    use_book_style()
    assert mpl.rcParams["axes.grid"] is True
    assert mpl.rcParams["axes.spines.top"] is False
    assert tuple(mpl.rcParams["figure.figsize"]) == (8.0, 3.6)
    mpl.rcdefaults()


def test_colors_are_valid_and_distinct():
    assert {"standard", "bn"} <= set(COLORS)
    assert all(mcolors.is_color_like(c) for c in COLORS.values())
    assert len(set(COLORS.values())) == len(COLORS)
