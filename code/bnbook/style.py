"""One figure style for the whole book."""

import matplotlib as mpl

__all__ = ["COLORS", "use_book_style"]

#: One colour per model family, used the same way in every chapter
#: (colour-blind safe, from the Okabe-Ito palette).
COLORS = {
    "standard": "#D55E00",  # vermillion: no normalization
    "bn": "#0072B2",  # blue: batch norm
    "other": "#009E73",  # green: a third variant (noise, LayerNorm, ...)
    "reference": "#555555",  # grey: theory, paper values, targets
}

_RC = {
    "figure.figsize": (8.0, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.constrained_layout.use": True,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "image.cmap": "viridis",
}


def use_book_style():
    """Set matplotlib's parameters to the book's style (idempotent)."""
    mpl.rcParams.update(_RC)
