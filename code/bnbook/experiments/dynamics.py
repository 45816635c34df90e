"""How the weights before batch norm move: scale invariance and the angular update.

A unit's weight vector ``w`` (a column of a dense layer's ``W``) that feeds a batch
norm only matters through its direction: the loss is the same for ``c * w``. So
training is better described by the angle ``w`` turns per step than by the step's
length (Wan et al., 2021, "spherical motion dynamics").
"""

import numpy as np

__all__ = ["angular_update", "column_norms"]


def column_norms(W):
    """The norm of each column of ``W`` (n_in, n_out): one per unit, shape (n_out,)."""
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2:
        raise ValueError(f"W must have shape (n_in, n_out), got {W.shape}")
    return np.sqrt((W**2).sum(axis=0))


def angular_update(before, after):
    """The angle in radians between each column of ``before`` and of ``after``.

    ``before`` and ``after`` are a dense layer's weights (n_in, n_out) before and after
    a training step; the result, shape (n_out,), is the angle each unit's weight vector
    turned. Computed as ``2 * arcsin(|u - v| / 2)`` for the unit vectors ``u`` and
    ``v``, accurate for small angles too (``arccos`` of the dot product is not).
    """
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape:
        raise ValueError(
            f"before and after must have the same shape, got {before.shape} and "
            f"{after.shape}"
        )
    norms = column_norms(before), column_norms(after)
    if np.any(norms[0] == 0) or np.any(norms[1] == 0):
        raise ValueError("every column must be non-zero: a zero vector has no angle")
    chord = np.sqrt(((before / norms[0] - after / norms[1]) ** 2).sum(axis=0))
    return 2 * np.arcsin(np.minimum(chord / 2, 1.0))
