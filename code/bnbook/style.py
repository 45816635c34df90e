"""One figure style for the whole book: matplotlib settings, one name, label, colour
and line style per kind of network, and the book's usual plot of several seeds."""

import warnings
from typing import NamedTuple

import matplotlib as mpl
import numpy as np

__all__ = ["COLORS", "LINESTYLES", "VARIANTS", "Variant", "band", "use_book_style"]


class Variant(NamedTuple):
    """How one kind of network is drawn in every chapter."""

    label: str
    color: str
    marker: str
    linestyle: str


#: One entry per kind of network, used the same way in every chapter; the colours are
#: the Okabe-Ito palette's, which stay distinct under the common colour blindnesses.
VARIANTS = {
    "standard": Variant("without BN", "#D55E00", "o", "-"),  # vermillion
    "bn": Variant("with BN", "#0072B2", "s", "-"),  # blue
    "noisy_bn": Variant("noisy BN", "#56B4E9", "^", "--"),  # sky blue
    "standard_noise": Variant("standard + noise", "#E69F00", "v", ":"),  # orange
    "renorm": Variant("batch renorm", "#000000", "D", ":"),  # black
    "layer_norm": Variant("layer norm", "#009E73", "^", "-"),  # bluish green
    "group_norm": Variant("group norm", "#CC79A7", "v", "--"),  # reddish purple
    "residual_bn": Variant("residual, with BN", "#009E73", "d", "-"),  # bluish green
}

#: The colour of each variant; grey for theory, paper values and targets; and one for
#: a third line that is not a kind of network (a setting, a fix).
COLORS = {name: v.color for name, v in VARIANTS.items()}
COLORS |= {"reference": "#555555", "other": "#009E73"}

#: Line styles, in order, for the series of one figure that no marker tells apart
#: (learning rates, optimizers, or one line per seed, where markers would crowd), so
#: that no two series differ in colour alone. Dotted is left out: the book draws
#: theory, paper values and targets dotted.
LINESTYLES = ("-", "--", "-.")

# A figure is at most 10 inches wide: 1000 px at 100 dpi, shown shrunk to the book's
# column of about 720 px. A 12-point font (16.7 px) then shows 12 px tall, 9 points: the
# smallest text a figure may have. Every text size below is 12 points.
_RC = {
    "figure.figsize": (8.0, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.constrained_layout.use": True,
    "font.size": 12,
    "axes.titlesize": 12,
    "axes.labelsize": 12,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 12,
    "legend.title_fontsize": 12,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "image.cmap": "viridis",
}


def use_book_style():
    """Set matplotlib's parameters to the book's style (idempotent).

    In a notebook, figures are also drawn at twice the resolution they are shown at
    ("retina"), so that they stay sharp on high-density screens and when zoomed.
    """
    mpl.rcParams.update(_RC)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # no IPython: not in a notebook
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina")


def band(ax, x, runs, key, label=None, *, alpha=0.2, markers=None, **plot_kw):
    """The median of several runs as a line, and their range (min to max) as a band.

    Parameters
    ----------
    ax : a matplotlib Axes
    x : array (T,), the positions (steps, learning rates, ...)
    runs : array (runs, T), one row per seed; NaN (a diverged run) is left out
    key : a key of :data:`VARIANTS`, which gives the colour, line style and label
    label : the legend's text, if not the variant's label
    markers : draw the variant's marker at each point; by default when there are at
        most 12 points
    plot_kw : more arguments for ``ax.plot``
    """
    if key not in VARIANTS:
        raise ValueError(f"key must be one of {sorted(VARIANTS)}, got {key!r}")
    runs = np.asarray(runs, dtype=np.float64)
    if runs.ndim != 2 or runs.shape[1] != len(x):
        raise ValueError(
            f"runs must have shape (runs, {len(x)}), one row per run, got {runs.shape}"
        )
    variant = VARIANTS[key]
    markers = len(x) <= 12 if markers is None else markers
    line = {"color": variant.color, "label": variant.label if label is None else label}
    line |= {
        "linestyle": variant.linestyle,
        "marker": variant.marker if markers else "",
    }
    with warnings.catch_warnings():  # a point where every run diverged stays empty
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(runs, axis=0)
        low, high = np.nanmin(runs, axis=0), np.nanmax(runs, axis=0)
    lines = ax.plot(x, median, **line | plot_kw)
    ax.fill_between(x, low, high, color=variant.color, alpha=alpha)
    return lines
