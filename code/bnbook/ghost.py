"""Ghost batch normalization (Hoffer, Hubara and Soudry, 2017).

In training mode a batch is cut, in order, into ghost batches of ``ghost_size``
examples, and each is normalized with its own mean and variance, as a batch norm would
normalize it alone. The code does not repeat batch norm's: with the ``k`` ghost
batches laid side by side, feature ``c`` of ghost ``j`` becomes feature ``j * C + c``
of a batch of ``ghost_size`` examples and ``k * C`` features, which
:func:`~bnbook.batchnorm.batch_norm_forward` normalizes, with ``gamma`` and ``beta``
repeated ``k`` times.
"""

from typing import NamedTuple

import numpy as np

from bnbook.batchnorm import (
    BatchNorm,
    BatchNormCache,
    batch_norm_backward,
    batch_norm_forward,
)
from bnbook.checks import as_float_array, check_int, feature_axis, per_feature

__all__ = ["GhostBatchNorm", "GhostCache"]


class GhostCache(NamedTuple):
    """What the ghost forward pass keeps: the batch-norm cache of the ghosts side by
    side, the shape of ``x`` (features moved last), and ``mu`` and ``var`` (C,), the
    averages over the ghost batches of their statistics."""

    inner: BatchNormCache
    shape: tuple
    axis: int
    mu: np.ndarray
    var: np.ndarray


def _side_by_side(x, ghost_size):
    """(N, ..., C) -> (ghost_size, ..., k * C), k = N // ghost_size ghost batches."""
    k = len(x) // ghost_size
    ghosts = x.reshape(k, ghost_size, *x.shape[1:])  # (k, ghost_size, ..., C)
    ghosts = np.moveaxis(ghosts, 0, -2)  # (ghost_size, ..., k, C)
    return ghosts.reshape(*ghosts.shape[:-2], k * x.shape[-1])


def _one_after_another(a, shape):
    """The inverse of :func:`_side_by_side`, back to ``shape`` (N, ..., C)."""
    k = shape[0] // a.shape[0]
    ghosts = a.reshape(*a.shape[:-1], k, shape[-1])  # (ghost_size, ..., k, C)
    return np.moveaxis(ghosts, -2, 0).reshape(shape)


def _per_ghost(a, n_features):
    """(k * C,) -> (k, C): one row per ghost batch."""
    return a.reshape(a.size // n_features, n_features)


def ghost_batch_norm_forward(x, gamma, beta, *, ghost_size, axis=-1, epsilon=1e-3):
    """Batch norm of each ghost batch of ``ghost_size`` consecutive examples.

    ``x`` has the batch on axis 0 and the C features on ``axis``; N must be a
    multiple of ``ghost_size``. Returns ``y`` shaped like ``x`` and a
    :class:`GhostCache` for :func:`ghost_batch_norm_backward`.
    """
    x = as_float_array(x, "x")
    axis = feature_axis(axis, x.ndim)
    if axis == 0:
        raise ValueError(
            "axis must not be 0: ghost batches are cut along axis 0, the batch axis"
        )
    ghost_size = check_int(ghost_size, "ghost_size", minimum=2)
    if len(x) % ghost_size:
        raise ValueError(
            f"the batch size must be a multiple of ghost_size={ghost_size}, "
            f"got a batch of {len(x)}"
        )
    x = np.moveaxis(x, axis, -1)
    k, c = len(x) // ghost_size, x.shape[-1]
    gamma = per_feature(gamma, "gamma", c, x.dtype)
    beta = per_feature(beta, "beta", c, x.dtype)
    y, inner = batch_norm_forward(
        _side_by_side(x, ghost_size),
        np.tile(gamma, k),
        np.tile(beta, k),
        epsilon=epsilon,
    )
    mu = _per_ghost(inner.mu, c).mean(axis=0)
    var = _per_ghost(inner.var, c).mean(axis=0)
    cache = GhostCache(inner, x.shape, axis, mu, var)
    return np.moveaxis(_one_after_another(y, x.shape), -1, axis), cache


def ghost_batch_norm_backward(dy, cache):
    """Gradients ``(dx, dgamma, dbeta)`` of :func:`ghost_batch_norm_forward`."""
    dy = np.moveaxis(as_float_array(dy, "dy"), cache.axis, -1)
    if dy.shape != cache.shape:
        raise ValueError(
            f"dy must have the shape of the last batch, {cache.shape[0]} rows and "
            f"{cache.shape[-1]} features, got {dy.shape}"
        )
    ghost_size = cache.inner.x_hat.shape[0]
    dx, dgamma, dbeta = batch_norm_backward(_side_by_side(dy, ghost_size), cache.inner)
    c = cache.shape[-1]
    dx = np.moveaxis(_one_after_another(dx, cache.shape), -1, cache.axis)
    return dx, _per_ghost(dgamma, c).sum(axis=0), _per_ghost(dbeta, c).sum(axis=0)


class GhostBatchNorm(BatchNorm):
    """Ghost batch normalization, a :class:`~bnbook.batchnorm.BatchNorm` whose
    training mode normalizes each ghost batch alone.

    The moving statistics move once per call, towards the average over the ghost
    batches of their means and variances. In inference mode it is ``BatchNorm``.
    With ``ghost_size`` equal to the batch size it computes exactly what
    ``BatchNorm`` computes. The batch size must be a multiple of ``ghost_size``.
    """

    _backward = staticmethod(ghost_batch_norm_backward)

    def __init__(self, ghost_size, axis=-1, momentum=0.99, epsilon=1e-3):
        super().__init__(axis=axis, momentum=momentum, epsilon=epsilon)
        self.ghost_size = check_int(ghost_size, "ghost_size", minimum=2)

    def _forward(self, x, gamma, beta, *, axis, epsilon):
        return ghost_batch_norm_forward(
            x, gamma, beta, ghost_size=self.ghost_size, axis=axis, epsilon=epsilon
        )

    def __repr__(self):
        return (
            f"GhostBatchNorm(ghost_size={self.ghost_size}, axis={self.axis}, "
            f"momentum={self.momentum}, epsilon={self.epsilon})"
        )
