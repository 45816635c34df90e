"""Batch norm's relatives: group norm, layer norm, batch renormalization, l_p batch norm.

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

l_p batch normalization (Santurkar et al., 2018, section 3.3) keeps batch norm's
centering but divides by another measure of spread. In the paper's words, the schemes
"fix the first order moment of the activations, as BatchNorm does, and then normalizes
them by the average of their l_p-norm (before shifting the mean), for p = 1, 2, inf".
For each feature and its ``m`` values over the batch:

    mu    = mean(x)
    z     = x - mu                        (x itself with before_centering=True)
    s     = mean(|z|**p) ** (1/p)         for p = 1, 2;  max(|z|) for p = inf
    x_hat = (x - mu) / sqrt(s**2 + epsilon)
    y     = gamma * x_hat + beta

``s`` is the l_p norm of ``z`` divided by ``m**(1/p)``. By default ``z`` is centered:
``s`` is the mean absolute deviation for p = 1, the standard deviation for p = 2 (so
p = 2 *is* batch norm, ``epsilon`` included) and the largest absolute deviation for
p = inf, and ``x_hat`` does not change when ``x`` becomes ``a * x + b`` (a > 0, up to
epsilon). The paper's "(before shifting the mean)" can also be read as taking the norm
of the uncentered ``x``, which ``before_centering=True`` does; then p = 2 divides by
sqrt(var + mu**2 + epsilon) and differs from batch norm, as the paper's listing of
p = 2 beside batch norm suggests. The paper gives no epsilon; ours is added to ``s**2``
as batch norm adds it to the variance.
"""

from typing import NamedTuple

import numpy as np

from bnbook.batchnorm import (
    BatchNorm,
    BatchNormCache,
    batch_norm_backward,
    batch_norm_forward,
    batch_norm_inference,
)
from bnbook.checks import (
    as_float_array,
    check_bool,
    check_dy,
    check_epsilon,
    check_int,
    check_momentum,
    feature_axis,
    per_feature,
    reduce_axes,
)
from bnbook.layers import Layer

__all__ = [
    "BatchRenorm",
    "GhostBatchNorm",
    "GroupNorm",
    "GroupNormCache",
    "LayerNorm",
    "LpBatchNorm",
    "LpNormCache",
    "group_norm_backward",
    "group_norm_forward",
    "lp_norm_backward",
    "lp_norm_forward",
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


# ---------------------------------------------------------------------------------
# l_p batch normalization (Santurkar et al., 2018)
# ---------------------------------------------------------------------------------


class LpNormCache(NamedTuple):
    """What :func:`lp_norm_forward` keeps. Shaped like ``x``: ``x_hat`` and ``z`` (the
    values whose l_p scale divides). Of size 1 on every reduced axis: ``mu``,
    ``scale`` (s), ``sigma`` (sqrt(s**2 + epsilon)) and ``gamma``."""

    x_hat: np.ndarray
    z: np.ndarray
    mu: np.ndarray
    scale: np.ndarray
    sigma: np.ndarray
    gamma: np.ndarray
    p: float
    before_centering: bool
    epsilon: float
    axis: int
    reduce_axes: tuple


def _check_p(p):
    """``p`` as 1, 2 or ``np.inf``."""
    if isinstance(p, bool) or not isinstance(p, int | float | np.integer | np.floating):
        raise TypeError(f"p must be 1, 2 or np.inf, got {type(p).__name__}")
    if p not in (1, 2, np.inf):
        raise ValueError(f"p must be 1, 2 or np.inf, got {p}")
    return np.inf if p == np.inf else int(p)


def _lp_scale(z, p, axes):
    """s = mean(|z|**p) ** (1/p) over ``axes``, or max(|z|) for p = inf."""
    a = np.abs(z)
    if p == np.inf:
        return a.max(axis=axes, keepdims=True)
    return (a**p).mean(axis=axes, keepdims=True) ** (1 / p)


def _squared_scale_gradient(z, s, p, axes):
    """d(s**2) / dz for s = :func:`_lp_scale` (z, p, axes).

    Written without dividing by ``s``, so that a constant feature (s = 0) has a finite
    gradient, as in batch norm.
    """
    m = z.size // s.size
    if p == 2:
        return 2 * z / m  # s**2 = mean(z**2)
    sign = np.sign(z)
    if p == 1:
        return 2 * s * sign / m
    # p = inf: only the largest |z| moves s; a tie shares the subgradient
    top = np.abs(z) == s
    return 2 * s * sign * top / top.sum(axis=axes, keepdims=True, dtype=z.dtype)


def lp_norm_forward(
    x, gamma, beta, *, p, axis=-1, epsilon=1e-3, before_centering=False
):
    """l_p batch normalization in training mode, with the batch's own statistics.

    Parameters
    ----------
    x : array, shape (N, C), or any layout with the features on ``axis``
    gamma, beta : arrays of shape (C,), C = ``x.shape[axis]``
    p : 1, 2 or np.inf, the norm whose average over the batch divides
    axis : int, the feature axis; statistics are taken over all the others
    epsilon : float >= 0, added to ``s**2``
    before_centering : bool, take ``s`` of ``x`` itself instead of ``x - mu``

    Returns
    -------
    y : array shaped like ``x``
    cache : LpNormCache, for :func:`lp_norm_backward`
    """
    p = _check_p(p)
    before_centering = check_bool(before_centering, "before_centering")
    x = as_float_array(x, "x")
    axis = feature_axis(axis, x.ndim)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    gamma = per_feature(gamma, "gamma", x.shape[axis], x.dtype).reshape(shape)
    beta = per_feature(beta, "beta", x.shape[axis], x.dtype).reshape(shape)
    epsilon = check_epsilon(epsilon)
    m = x.size // x.shape[axis] if x.shape[axis] else 0
    if m < 2:
        raise ValueError(
            f"x of shape {x.shape} gives m={m} value(s) per feature on axis {axis}: "
            "training mode needs at least 2, because one value has no spread"
        )
    axes = reduce_axes(x.ndim, axis)

    mu = x.mean(axis=axes, keepdims=True)
    x_centered = x - mu
    z = x if before_centering else x_centered
    s = _lp_scale(z, p, axes)
    sigma = np.sqrt(s**2 + x.dtype.type(epsilon))
    x_hat = x_centered / sigma
    y = gamma * x_hat + beta

    cache = LpNormCache(
        x_hat, z, mu, s, sigma, gamma, p, before_centering, epsilon, axis, axes
    )
    return y, cache


def lp_norm_backward(dy, cache):
    """Gradients ``(dx, dgamma, dbeta)`` of :func:`lp_norm_forward`, node by node.

    The chain is mu -> x_centered -> s**2 -> sigma -> x_hat -> y (``s**2`` fed by ``x``
    itself with ``before_centering``). For p = 2, ``s**2`` is the variance and these
    are batch norm's gradients.
    """
    dy = check_dy(dy, cache, LpNormCache, "lp_norm_forward")
    axes, x_hat = cache.reduce_axes, cache.x_hat
    s, sigma = cache.scale, cache.sigma

    # y = gamma * x_hat + beta
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * x_hat).sum(axis=axes)
    dx_hat = dy * cache.gamma
    # x_hat = x_centered / sigma
    dsigma = -(dx_hat * x_hat).sum(axis=axes, keepdims=True) / sigma
    # sigma = sqrt(s**2 + epsilon)
    dsquare = dsigma / (2 * sigma)
    # s**2 = mean(|z|**p) ** (2/p), z = x_centered or x
    dz = dsquare * _squared_scale_gradient(cache.z, s, cache.p, axes)
    # x_centered = x - mu feeds x_hat, and z unless z is x itself
    dxc = dx_hat / sigma
    if cache.before_centering:
        return dxc - dxc.mean(axis=axes, keepdims=True) + dz, dgamma, dbeta
    dxc = dxc + dz
    return dxc - dxc.mean(axis=axes, keepdims=True), dgamma, dbeta


class LpBatchNorm(BatchNorm):
    """Batch norm dividing by the batch's average l_p norm, p in {1, 2, np.inf}.

    ``layer(x, training=True)`` normalizes with the batch's ``mu`` and l_p scale
    ``s`` (:func:`lp_norm_forward`) and moves the moving statistics towards them::

        moving_mean  = momentum * moving_mean  + (1 - momentum) * mu
        moving_scale = momentum * moving_scale + (1 - momentum) * s

    ``layer(x)`` or ``training=False`` computes
    ``gamma * (x - moving_mean) / sqrt(moving_scale**2 + epsilon) + beta``. Its state
    is ``moving_mean`` and ``moving_scale`` (created as 0 and 1); it has no
    ``moving_variance``. ``before_centering=True`` takes ``s`` of the uncentered input.
    The other arguments are :class:`~bnbook.batchnorm.BatchNorm`'s (``scale`` is
    Keras's switch for ``gamma``, not ``s``). With p = 2 it trains as batch norm does;
    its ``moving_scale`` then averages the standard deviation where batch norm
    averages the variance.

    :func:`bnbook.mlp.build_mlp` calls ``norm()`` without arguments, so a chapter
    passes ``p`` with ``norm=functools.partial(LpBatchNorm, p=1)`` (or a lambda).
    """

    _backward = staticmethod(lp_norm_backward)

    def __init__(
        self,
        p,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        before_centering=False,
    ):
        super().__init__(axis, momentum, epsilon, center, scale)
        self.p = _check_p(p)
        self.before_centering = check_bool(before_centering, "before_centering")
        del self.moving_variance
        self.moving_scale = None

    def build(self, n_features, dtype=np.float32):
        """Create the parameters for ``n_features`` features."""
        self.gamma = np.ones(n_features, dtype) if self.scale else None
        self.beta = np.zeros(n_features, dtype) if self.center else None
        self.moving_mean = np.zeros(n_features, dtype)
        self.moving_scale = np.ones(n_features, dtype)

    def __call__(self, x, training=False):
        x, gamma, beta, options = self._prepare(x, training)
        if not training:
            if np.any(self.moving_scale < 0):
                raise ValueError("moving_scale must be >= 0 everywhere")
            variance = self.moving_scale**2  # so that sqrt(variance + epsilon) is sigma
            return batch_norm_inference(
                x, gamma, beta, self.moving_mean, variance, **options
            )
        y, self._cache = lp_norm_forward(
            x, gamma, beta, p=self.p, before_centering=self.before_centering, **options
        )
        self._follow(self._cache.mu.ravel(), self._cache.scale.ravel())
        return y

    def _follow(self, mu, s):
        alpha, dtype = self.momentum, self.moving_mean.dtype
        self.moving_mean = (alpha * self.moving_mean + (1 - alpha) * mu).astype(dtype)
        self.moving_scale = (alpha * self.moving_scale + (1 - alpha) * s).astype(dtype)

    def state(self):
        return {"moving_mean": self.moving_mean, "moving_scale": self.moving_scale}

    def set_state(self, state):
        self.moving_mean = state["moving_mean"]
        self.moving_scale = state["moving_scale"]

    def set_moving_statistics(self, mean, scale):
        """Replace the moving statistics, e.g. by population statistics."""
        self.set_state({"moving_mean": mean, "moving_scale": scale})

    def calibrate(self, x):
        """The moving statistics become the mean and l_p scale of ``x`` over every
        axis but the feature axis; returns the inference output. For p = inf the scale
        is the largest deviation in all of ``x``, which grows with the size of ``x``:
        it is the scale training uses only for ``x`` of the training batch size."""
        x = as_float_array(x, "x")
        axis = feature_axis(self.axis, x.ndim)
        if self.moving_mean is None:
            self.build(x.shape[axis], x.dtype)
        axes = reduce_axes(x.ndim, axis)
        mu = x.mean(axis=axes, keepdims=True)
        s = _lp_scale(x if self.before_centering else x - mu, self.p, axes)
        self.set_moving_statistics(mu.ravel(), s.ravel())
        return self(x, training=False)

    def affine(self):
        """In inference mode, for features on the last axis: ``x @ diag(a) + b`` with
        ``a = gamma / sqrt(moving_scale**2 + epsilon)``, ``b = beta - a * moving_mean``."""
        if self.axis != -1 or self.moving_mean is None:
            return None
        n = len(self.moving_mean)
        gamma, beta = self._gamma_beta(n, self.moving_mean.dtype)
        a = gamma / np.sqrt(self.moving_scale**2 + self.epsilon)
        return np.diag(a), beta - a * self.moving_mean

    def __repr__(self):
        return (
            f"LpBatchNorm(p={self.p}, axis={self.axis}, momentum={self.momentum}, "
            f"epsilon={self.epsilon}, center={self.center}, scale={self.scale}, "
            f"before_centering={self.before_centering})"
        )


class GhostBatchNorm(BatchNorm):
    """Ghost batch normalization (Hoffer, Hubara and Soudry, 2017).

    In training mode a batch of shape (N, C) is cut, in order, into N / ``ghost_size``
    ghost batches, and each is normalized with its own mean and variance, as a batch
    norm would normalize it alone. The moving statistics move once per call, towards
    the average over the ghost batches of their means and variances. In inference mode
    it is :class:`~bnbook.batchnorm.BatchNorm`. With ``ghost_size`` equal to the batch
    size it computes exactly what ``BatchNorm`` computes. N must be a multiple of
    ``ghost_size``.
    """

    def __init__(self, ghost_size, momentum=0.99, epsilon=1e-3):
        super().__init__(momentum=momentum, epsilon=epsilon)
        self.ghost_size = check_int(ghost_size, "ghost_size", minimum=2)

    def __call__(self, x, training=False):
        if not training:
            return super().__call__(x, training=False)
        x, gamma, beta, options = self._prepare(x, training)
        if x.ndim != 2 or options["axis"] != 1:
            raise ValueError(f"GhostBatchNorm takes x of shape (N, C), got {x.shape}")
        if len(x) % self.ghost_size:
            raise ValueError(
                f"the batch size must be a multiple of ghost_size={self.ghost_size}, "
                f"got a batch of {len(x)}"
            )
        ghosts = x.reshape(-1, self.ghost_size, x.shape[1])  # (k, ghost_size, C)
        mu = ghosts.mean(axis=1, keepdims=True)
        x_centered = ghosts - mu
        var = (x_centered**2).mean(axis=1, keepdims=True)
        inv_std = 1 / np.sqrt(var + x.dtype.type(self.epsilon))
        x_hat = x_centered * inv_std
        # the cache of batch_norm_forward, with statistics over axis 1 of each ghost
        self._cache = BatchNormCache(
            x_centered, x_hat, mu, var, inv_std, gamma, self.epsilon, 2, (1,)
        )
        self._update(mu.mean(axis=0).ravel(), var.mean(axis=0).ravel())
        return (gamma * x_hat + beta).reshape(x.shape)

    def backward(self, dy):
        """``dx`` for the last training-mode call; sets ``dgamma`` and ``dbeta``."""
        if self._cache is None:
            raise RuntimeError("backward needs a preceding call with training=True")
        shape = self._cache.x_hat.shape  # (ghosts, ghost_size, C)
        dy = np.asarray(dy)
        if dy.size != np.prod(shape):
            raise ValueError(
                f"dy must have the shape {(-1, shape[2])} of the last batch, "
                f"{shape[0] * shape[1]} rows, got {dy.shape}"
            )
        dx, dgamma, dbeta = batch_norm_backward(dy.reshape(shape), self._cache)
        self.dgamma, self.dbeta = dgamma.sum(axis=0), dbeta.sum(axis=0)
        return dx.reshape(-1, shape[2])

    def __repr__(self):
        return (
            f"GhostBatchNorm(ghost_size={self.ghost_size}, momentum={self.momentum}, "
            f"epsilon={self.epsilon})"
        )
