"""Group norm (Wu & He, 2018) and layer norm (Ba et al., 2016).

Group norm normalizes each *example* over groups of its features instead of each
feature over the batch. For an input ``x`` of shape (N, C) split into ``groups`` groups
of ``C // groups`` features, example ``n`` and group ``g`` get

    mu, var = mean and variance of x[n, features of g]
    x_hat   = (x - mu) / sqrt(var + epsilon)
    y       = gamma * x_hat + beta            (gamma, beta per feature, shape (C,))

Layer norm is group norm with one group. Neither depends on the other examples of the
batch, so training and inference compute the same thing.

The code does not repeat batch norm's: reshaped so that each (example, group) pair is
a column whose rows are the group's features, group norm *is* batch norm with
gamma = 1 and beta = 0, followed by the per-feature scale and shift.
"""

from typing import NamedTuple

import numpy as np

from bnbook.batchnorm import BatchNormCache, batch_norm_backward, batch_norm_forward
from bnbook.checks import (
    as_float_array,
    check_dy,
    check_epsilon,
    check_int,
    per_feature,
)
from bnbook.layers import Layer

__all__ = [
    "GroupNorm",
    "GroupNormCache",
    "LayerNorm",
    "group_norm_backward",
    "group_norm_forward",
]


class GroupNormCache(NamedTuple):
    """What :func:`group_norm_forward` keeps: the inner batch-norm cache of the
    reshaped input, ``x_hat`` of shape (N, C), ``gamma`` (C,) and ``groups``."""

    inner: BatchNormCache
    x_hat: np.ndarray
    gamma: np.ndarray
    groups: int


def _check_groups(groups, n_features):
    groups = check_int(groups, "groups")
    if groups < 1 or n_features % groups or n_features < 2 * groups:
        raise ValueError(
            f"groups must divide the {n_features} features into groups of at least "
            f"2, got groups={groups}"
        )
    return int(groups)


def _columns(a, groups):
    """(N, C) -> (C // groups, N * groups): one column per (example, group)."""
    n, c = a.shape
    return a.reshape(n * groups, c // groups).T


def _uncolumns(a, shape):
    """The inverse of :func:`_columns`."""
    return a.T.reshape(shape)


def group_norm_forward(x, gamma, beta, *, groups, epsilon=1e-3):
    """Group normalization of ``x`` (N, C); ``groups=1`` is layer normalization.

    Returns ``(y, cache)``, ``y`` of shape (N, C), for :func:`group_norm_backward`.
    """
    x = as_float_array(x, "x")
    if x.ndim != 2:
        raise ValueError(f"x must have shape (N, C), got {x.ndim} dimension(s)")
    n, c = x.shape
    groups = _check_groups(groups, c)
    gamma = per_feature(gamma, "gamma", c, x.dtype)
    beta = per_feature(beta, "beta", c, x.dtype)
    epsilon = check_epsilon(epsilon)
    columns = n * groups
    one, zero = np.ones(columns), np.zeros(columns)  # cast to x's dtype there
    z_hat, inner = batch_norm_forward(_columns(x, groups), one, zero, epsilon=epsilon)
    x_hat = _uncolumns(z_hat, x.shape)
    return gamma * x_hat + beta, GroupNormCache(inner, x_hat, gamma, groups)


def group_norm_backward(dy, cache):
    """Gradients ``(dx, dgamma, dbeta)`` of group normalization."""
    dy = check_dy(dy, cache, GroupNormCache, "group_norm_forward")
    dgamma = (dy * cache.x_hat).sum(axis=0)
    dbeta = dy.sum(axis=0)
    dz, _, _ = batch_norm_backward(
        _columns(dy * cache.gamma, cache.groups), cache.inner
    )
    return _uncolumns(dz, dy.shape), dgamma, dbeta


class GroupNorm(Layer):
    """A group-normalization layer for (N, C) inputs, with Keras's defaults.

    The same in training and inference mode. ``gamma`` = 1 and ``beta`` = 0 are
    created at the first call; ``backward(dy)`` returns ``dx`` and sets ``dgamma``
    and ``dbeta``.
    """

    def __init__(self, groups=32, epsilon=1e-3):
        self.groups = check_int(groups, "groups")
        self.epsilon = check_epsilon(epsilon)
        self.gamma = self.beta = self.dgamma = self.dbeta = None
        self._cache = None

    def build(self, n_features, dtype=np.float32):
        _check_groups(self.groups, n_features)
        self.gamma = np.ones(n_features, dtype)
        self.beta = np.zeros(n_features, dtype)

    def __call__(self, x, training=False):  # pragma: no mutate (training unused)
        x = as_float_array(x, "x")
        if self.gamma is None:
            self.build(x.shape[-1], x.dtype)
        y, self._cache = group_norm_forward(
            x, self.gamma, self.beta, groups=self.groups, epsilon=self.epsilon
        )
        return y

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError("backward needs a preceding call")
        dx, self.dgamma, self.dbeta = group_norm_backward(dy, self._cache)
        return dx

    def params(self):
        return [(self.gamma, self.dgamma), (self.beta, self.dbeta)]

    def __repr__(self):
        return f"GroupNorm(groups={self.groups}, epsilon={self.epsilon})"


class LayerNorm(GroupNorm):
    """Layer normalization: every example normalized over all its features."""

    def __init__(self, epsilon=1e-3):
        super().__init__(groups=1, epsilon=epsilon)

    def __repr__(self):
        return f"LayerNorm(epsilon={self.epsilon})"
