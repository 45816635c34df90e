"""Batch norm's relatives: group norm, layer norm and batch renormalization.

Group norm (Wu & He, 2018) normalizes each *example* over groups of its features
instead of each feature over the batch. For an input ``x`` of shape (N, C) split into
``groups`` groups of ``C // groups`` features, example ``n`` and group ``g`` get

    mu, var = mean and variance of x[n, features of g]
    x_hat   = (x - mu) / sqrt(var + epsilon)
    y       = gamma * x_hat + beta            (gamma, beta per feature, shape (C,))

Layer norm (Ba et al., 2016) is group norm with one group. Neither depends on the
other examples of the batch, so training and inference compute the same thing.

The code does not repeat batch norm's: reshaped so that each (example, group) pair is
a column whose rows are the group's features, group norm *is* batch norm with
gamma = 1 and beta = 0, followed by the per-feature scale and shift.

Batch renormalization (Ioffe, 2017), as in ``keras.layers.BatchNormalization(
renorm=True)``, normalizes with the batch statistics but corrects the result towards
moving statistics: ``x_hat * r + d`` with ``r = sigma_B / sigma_renorm`` and
``d = (mu_B - mu_renorm) / sigma_renorm``, both treated as constants in the backward
pass (and optionally clipped).
"""

from typing import NamedTuple

import numpy as np

from bnbook.batchnorm import (
    BatchNorm,
    BatchNormCache,
    batch_norm_backward,
    batch_norm_forward,
)
from bnbook.checks import (
    as_float_array,
    check_dy,
    check_epsilon,
    check_int,
    check_momentum,
    per_feature,
)
from bnbook.layers import Layer

__all__ = [
    "BatchRenorm",
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
    if groups < 1 or n_features % groups or n_features // groups < 2:
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
    one, zero = np.ones(columns, x.dtype), np.zeros(columns, x.dtype)
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

    def __call__(self, x, training=False):
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


class BatchRenorm(BatchNorm):
    """Batch renormalization, with the semantics of Keras 3's ``renorm=True``.

    In training mode, with ``sigma_B = sqrt(var_B + epsilon)``::

        r = clip(sigma_B / renorm_stddev, rmin, rmax)
        d = clip((mu_B - renorm_mean) / renorm_stddev, -dmax, dmax)
        y = gamma * (x_hat * r + d) + beta

    ``r`` and ``d`` are constants for the backward pass. ``renorm_mean`` and
    ``renorm_stddev`` follow the batch with ``renorm_momentum``; ``moving_mean`` and a
    moving standard deviation follow it with ``momentum``, and inference uses them as
    :class:`~bnbook.batchnorm.BatchNorm` does. ``None`` means no clipping.
    """

    def __init__(
        self,
        momentum=0.99,
        epsilon=1e-3,
        renorm_momentum=0.99,
        rmin=None,
        rmax=None,
        dmax=None,
    ):
        super().__init__(momentum=momentum, epsilon=epsilon)
        self.renorm_momentum = check_momentum(renorm_momentum)
        if rmin is not None and rmax is not None and not rmax >= rmin:
            raise ValueError(f"rmax must be >= rmin, got rmin={rmin}, rmax={rmax}")
        if dmax is not None and not dmax >= 0:
            raise ValueError(f"dmax must be >= 0, got {dmax}")
        self.rmin, self.rmax, self.dmax = rmin, rmax, dmax
        self._rd = None

    def build(self, n_features, dtype=np.float32):
        super().build(n_features, dtype)
        self.moving_stddev = np.sqrt(self.moving_variance)
        self.renorm_mean = np.zeros(n_features, dtype)
        self.renorm_stddev = np.sqrt(self.moving_variance)

    def _correction(self, mu, sigma):
        floor = np.sqrt(sigma.dtype.type(self.epsilon))
        renorm_stddev = np.maximum(self.renorm_stddev, floor)  # as Keras, early on
        r = sigma / renorm_stddev
        d = (mu - self.renorm_mean) / renorm_stddev
        if self.rmin is not None:
            r = np.maximum(r, self.rmin)
        if self.rmax is not None:
            r = np.minimum(r, self.rmax)
        if self.dmax is not None:
            d = np.clip(d, -self.dmax, self.dmax)
        return r, d

    def __call__(self, x, training=False):
        if not training:
            return super().__call__(x, training=False)
        x = as_float_array(x, "x")
        if x.ndim != 2:
            raise ValueError(f"x must have shape (N, C), got {x.ndim} dimension(s)")
        if self.moving_mean is None:
            self.build(x.shape[-1], x.dtype)
        mu, var = x.mean(axis=0), x.var(axis=0)
        sigma = np.sqrt(var + x.dtype.type(self.epsilon))
        r, d = self._correction(mu, sigma)
        y, self._cache = batch_norm_forward(
            x, self.gamma * r, self.gamma * d + self.beta, epsilon=self.epsilon
        )
        self._rd = r, d
        self._follow(mu, sigma)
        return y

    def state(self):
        return super().state() | {
            "moving_stddev": self.moving_stddev,
            "renorm_mean": self.renorm_mean,
            "renorm_stddev": self.renorm_stddev,
        }

    def set_state(self, state):
        super().set_state(state)
        self.moving_stddev = state["moving_stddev"]
        self.renorm_mean = state["renorm_mean"]
        self.renorm_stddev = state["renorm_stddev"]

    def set_moving_statistics(self, mean, variance):
        """Replace the moving statistics; the moving standard deviation follows."""
        moving = {"moving_mean": mean, "moving_variance": variance}
        moving["moving_stddev"] = np.sqrt(variance + self.epsilon)
        self.set_state(self.state() | moving)

    def _follow(self, mu, sigma):
        a, b = self.renorm_momentum, self.momentum
        self.renorm_mean = a * self.renorm_mean + (1 - a) * mu
        self.renorm_stddev = a * self.renorm_stddev + (1 - a) * sigma
        self.moving_mean = b * self.moving_mean + (1 - b) * mu
        self.moving_stddev = b * self.moving_stddev + (1 - b) * sigma
        self.moving_variance = np.maximum(self.moving_stddev**2 - self.epsilon, 0)

    def backward(self, dy):
        """``dx``; sets ``dgamma`` and ``dbeta`` (``r`` and ``d`` held constant)."""
        if self._cache is None:
            raise RuntimeError("backward needs a preceding call with training=True")
        dx, dgamma_eff, dbeta = batch_norm_backward(dy, self._cache)
        r, d = self._rd
        # y = (gamma r) x_hat + (gamma d + beta): gamma enters through both terms.
        self.dgamma, self.dbeta = dgamma_eff * r + dbeta * d, dbeta
        return dx

    def __repr__(self):
        return (
            f"BatchRenorm(momentum={self.momentum}, epsilon={self.epsilon}, "
            f"renorm_momentum={self.renorm_momentum}, rmin={self.rmin}, "
            f"rmax={self.rmax}, dmax={self.dmax})"
        )
