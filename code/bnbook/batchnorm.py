"""Batch normalization in NumPy, written to be read next to the derivation.

For each feature (channel) ``c`` of an input ``x`` and the ``m`` values it takes over
the batch (and, for images, over height and width):

    mu    = mean(x)                         batch mean
    var   = mean((x - mu)**2)               batch variance, biased, in two passes
    x_hat = (x - mu) / sqrt(var + epsilon)  normalized input
    y     = gamma * x_hat + beta            scaled and shifted output

``axis`` names the feature axis; statistics are taken over every other axis, so
``(N, C)`` dense inputs, ``(N, H, W, C)`` images with ``axis=-1`` and ``(N, C, H, W)``
images with ``axis=1`` all work. Defaults follow ``keras.layers.BatchNormalization``.

dtypes: float32 in gives float32 out and float64 gives float64; integer input is
promoted to float64. ``gamma``, ``beta`` and the moving statistics are cast to the
dtype of ``x``.
"""

from typing import NamedTuple

import numpy as np

__all__ = [
    "BatchNorm",
    "BatchNormCache",
    "batch_norm_backward",
    "batch_norm_backward_staged",
    "batch_norm_forward",
    "batch_norm_inference",
]


# ---------------------------------------------------------------------------------
# Argument checks. Every message names the argument and says what was expected.
# ---------------------------------------------------------------------------------


def _as_float_array(a, name):
    """``a`` as a floating array; integers are promoted to float64."""
    a = np.asarray(a)
    if a.dtype == bool or not (
        np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
    ):
        raise TypeError(f"{name} must be an array of real numbers, got dtype {a.dtype}")
    return a.astype(np.float64) if np.issubdtype(a.dtype, np.integer) else a


def _feature_axis(axis, ndim, name="x"):
    """The feature axis as a non-negative int, checked against ``name``'s ``ndim``."""
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
        raise TypeError(f"axis must be an int, got {type(axis).__name__}")
    if ndim < 2:
        raise ValueError(
            f"{name} must have at least 2 dimensions (batch and features), got {ndim}"
        )
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"axis {axis} is out of range for {name} with {ndim} dimensions"
        )
    return int(axis) % ndim


def _per_feature(p, name, n_features, dtype):
    """A per-feature parameter of shape ``(n_features,)``, cast to ``dtype``."""
    p = _as_float_array(p, name)
    if p.shape != (n_features,):
        raise ValueError(
            f"{name} must have shape ({n_features},), one value per feature, "
            f"got shape {p.shape}"
        )
    return p.astype(dtype, copy=False)


def _check_epsilon(epsilon):
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float | np.number):
        raise TypeError(f"epsilon must be a real number, got {type(epsilon).__name__}")
    if not epsilon >= 0:  # also rejects NaN
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    return float(epsilon)


def _check_momentum(momentum):
    if isinstance(momentum, bool) or not isinstance(momentum, int | float | np.number):
        raise TypeError(
            f"momentum must be a real number, got {type(momentum).__name__}"
        )
    if not 0 <= momentum <= 1:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    return float(momentum)


def _as_column(v, ndim, axis):
    """Reshape a ``(C,)`` vector so that it broadcasts along ``axis`` of an array."""
    shape = [1] * ndim
    shape[axis] = -1
    return np.reshape(v, shape)


# ---------------------------------------------------------------------------------
# Training mode: forward and backward
# ---------------------------------------------------------------------------------


class BatchNormCache(NamedTuple):
    """What the forward pass keeps for the backward pass (one node of the graph each).

    Arrays shaped like ``x``: ``x_centered`` (x - mu) and ``x_hat``. Arrays shaped
    like ``x`` but of size 1 on every reduced axis: ``mu``, ``var``, ``inv_std``
    (1 / sqrt(var + epsilon)) and ``gamma``.
    """

    x_centered: np.ndarray
    x_hat: np.ndarray
    mu: np.ndarray
    var: np.ndarray
    inv_std: np.ndarray
    gamma: np.ndarray
    epsilon: float
    axis: int
    reduce_axes: tuple


def batch_norm_forward(x, gamma, beta, *, axis=-1, epsilon=1e-3):
    """Batch normalization in training mode, with the batch's own statistics.

    Parameters
    ----------
    x : array, shape (N, C) or (N, ..., C) with ``axis=-1``, any layout with ``axis``
    gamma, beta : arrays of shape (C,), C = ``x.shape[axis]``
    axis : int, the feature axis; statistics are taken over all the others
    epsilon : float >= 0, added to the variance

    Returns
    -------
    y : array shaped like ``x``
    cache : BatchNormCache, for :func:`batch_norm_backward`
    """
    x = _as_float_array(x, "x")
    axis = _feature_axis(axis, x.ndim)
    n_features = x.shape[axis]
    gamma = _per_feature(gamma, "gamma", n_features, x.dtype)
    beta = _per_feature(beta, "beta", n_features, x.dtype)
    epsilon = _check_epsilon(epsilon)
    reduce_axes = tuple(i for i in range(x.ndim) if i != axis)
    m = x.size // n_features if n_features else 0
    if m < 2:
        raise ValueError(
            f"x of shape {x.shape} gives m={m} value(s) per feature on axis {axis}: "
            "training mode needs at least 2, because the variance of one value is 0 "
            "and every output would be beta"
        )

    mu = x.mean(axis=reduce_axes, keepdims=True)
    x_centered = x - mu
    var = (x_centered**2).mean(axis=reduce_axes, keepdims=True)  # not E[x²] - E[x]²
    inv_std = 1 / np.sqrt(var + x.dtype.type(epsilon))
    x_hat = x_centered * inv_std
    g = _as_column(gamma, x.ndim, axis)
    y = g * x_hat + _as_column(beta, x.ndim, axis)

    cache = BatchNormCache(
        x_centered, x_hat, mu, var, inv_std, g, epsilon, axis, reduce_axes
    )
    return y, cache


def _check_backward_args(dy, cache, kind=None, forward="batch_norm_forward"):
    """``dy`` as an array like ``cache.x_hat``; ``cache`` must be a ``kind``."""
    kind = kind or BatchNormCache
    if not isinstance(cache, kind):
        raise TypeError(
            f"cache must be the {kind.__name__} returned by {forward}, "
            f"got {type(cache).__name__}"
        )
    dy = _as_float_array(dy, "dy")
    if dy.shape != cache.x_hat.shape:
        raise ValueError(
            f"dy must have the shape of x, {cache.x_hat.shape}, got {dy.shape}"
        )
    return dy.astype(cache.x_hat.dtype, copy=False)


def batch_norm_backward(dy, cache):
    """Gradients of the loss with respect to ``x``, ``gamma`` and ``beta``.

    The compact formula, with means over the reduced axes:

        dx = gamma / sqrt(var + eps) * (dy - mean(dy) - x_hat * mean(dy * x_hat))

    Parameters
    ----------
    dy : array shaped like ``x``, the gradient of the loss with respect to ``y``
    cache : BatchNormCache from :func:`batch_norm_forward`

    Returns
    -------
    dx : array shaped like ``x``; dgamma, dbeta : arrays of shape (C,)
    """
    dy = _check_backward_args(dy, cache)
    axes, x_hat = cache.reduce_axes, cache.x_hat
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * x_hat).sum(axis=axes)
    mean_dy = dy.mean(axis=axes, keepdims=True)
    mean_dy_x_hat = (dy * x_hat).mean(axis=axes, keepdims=True)
    dx = cache.gamma * cache.inv_std * (dy - mean_dy - x_hat * mean_dy_x_hat)
    return dx, dgamma, dbeta


def batch_norm_backward_staged(dy, cache, *, return_nodes=False):
    """The same gradients as :func:`batch_norm_backward`, node by node.

    The forward pass is the chain mu -> x_centered -> var -> inv_std -> x_hat -> y;
    this walks it backwards, applying the chain rule at each node. ``m`` is the
    number of values per feature. With ``return_nodes=True`` it also returns a dict
    of the loss's gradient with respect to every node, for checking each step.
    """
    dy = _check_backward_args(dy, cache)
    axes = cache.reduce_axes
    xc, inv_std, x_hat = cache.x_centered, cache.inv_std, cache.x_hat
    m = x_hat.size // inv_std.size

    # y = gamma * x_hat + beta
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * x_hat).sum(axis=axes)
    dx_hat = dy * cache.gamma
    # x_hat = x_centered * inv_std
    dinv_std = (dx_hat * xc).sum(axis=axes, keepdims=True)
    # inv_std = (var + eps) ** -1/2
    dvar = dinv_std * -0.5 * inv_std**3
    # x_centered feeds x_hat directly, and var = mean(x_centered ** 2)
    dxc = dx_hat * inv_std + dvar * 2 * xc / m
    # x_centered = x - mu: x feeds x_centered directly, and mu = mean(x)
    dmu = -dxc.sum(axis=axes, keepdims=True)
    dx = dxc + dmu / m
    if not return_nodes:
        return dx, dgamma, dbeta
    nodes = {"x_hat": dx_hat, "inv_std": dinv_std, "var": dvar}
    nodes |= {"x_centered": dxc, "mu": dmu, "x": dx}
    return dx, dgamma, dbeta, nodes


# ---------------------------------------------------------------------------------
# Inference mode
# ---------------------------------------------------------------------------------


def batch_norm_inference(
    x, gamma, beta, moving_mean, moving_variance, *, axis=-1, epsilon=1e-3
):
    """Batch normalization in inference mode, with fixed (moving) statistics.

    y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta,
    an affine map of each feature that does not depend on the rest of the batch.
    ``gamma``, ``beta``, ``moving_mean`` and ``moving_variance`` have shape (C,).
    """
    x = _as_float_array(x, "x")
    axis = _feature_axis(axis, x.ndim)
    n = x.shape[axis]
    gamma = _per_feature(gamma, "gamma", n, x.dtype)
    beta = _per_feature(beta, "beta", n, x.dtype)
    moving_mean = _per_feature(moving_mean, "moving_mean", n, x.dtype)
    moving_variance = _per_feature(moving_variance, "moving_variance", n, x.dtype)
    if np.any(moving_variance < 0):
        raise ValueError("moving_variance must be >= 0 everywhere")
    epsilon = _check_epsilon(epsilon)

    scale = gamma / np.sqrt(moving_variance + x.dtype.type(epsilon))
    shift = beta - scale * moving_mean
    return _as_column(scale, x.ndim, axis) * x + _as_column(shift, x.ndim, axis)


# ---------------------------------------------------------------------------------
# A layer with Keras's semantics
# ---------------------------------------------------------------------------------


class BatchNorm:
    """A batch-normalization layer with the semantics and defaults of Keras 3.

    ``layer(x, training=True)`` normalizes with the batch's statistics and moves the
    moving statistics towards them::

        moving_mean     = momentum * moving_mean     + (1 - momentum) * mu
        moving_variance = momentum * moving_variance + (1 - momentum) * var

    (``var`` is the biased batch variance, as in Keras). ``layer(x)`` or
    ``training=False`` normalizes with the moving statistics. ``layer.backward(dy)``
    returns ``dx`` for the last training call and sets ``dgamma`` and ``dbeta``.

    The parameters are created at the first call, from the size of the feature axis:
    ``gamma`` = 1, ``beta`` = 0, ``moving_mean`` = 0, ``moving_variance`` = 1.
    ``center=False`` drops ``beta`` (it stays None, and so does ``dbeta``);
    ``scale=False`` drops ``gamma`` likewise.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True):
        if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
            raise TypeError(f"axis must be an int, got {type(axis).__name__}")
        for name, flag in (("center", center), ("scale", scale)):
            if not isinstance(flag, bool | np.bool_):
                raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
        self.axis = int(axis)
        self.momentum = _check_momentum(momentum)
        self.epsilon = _check_epsilon(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None
        self.dgamma = self.dbeta = None
        self._cache = None

    def build(self, n_features, dtype=np.float32):
        """Create the parameters for ``n_features`` features."""
        self.gamma = np.ones(n_features, dtype) if self.scale else None
        self.beta = np.zeros(n_features, dtype) if self.center else None
        self.moving_mean = np.zeros(n_features, dtype)
        self.moving_variance = np.ones(n_features, dtype)

    def _gamma_beta(self, n_features, dtype):
        one, zero = np.ones(n_features, dtype), np.zeros(n_features, dtype)
        gamma = one if self.gamma is None else self.gamma
        beta = zero if self.beta is None else self.beta
        return gamma, beta

    def __call__(self, x, training=False):
        if not isinstance(training, bool | np.bool_):
            raise TypeError(f"training must be a bool, got {type(training).__name__}")
        x = _as_float_array(x, "x")
        axis = _feature_axis(self.axis, x.ndim)
        if self.moving_mean is None:
            self.build(x.shape[axis], x.dtype)
        gamma, beta = self._gamma_beta(x.shape[axis], x.dtype)
        if not training:
            return batch_norm_inference(
                x,
                gamma,
                beta,
                self.moving_mean,
                self.moving_variance,
                axis=axis,
                epsilon=self.epsilon,
            )
        y, self._cache = batch_norm_forward(
            x, gamma, beta, axis=axis, epsilon=self.epsilon
        )
        a = self.momentum
        mu, var = self._cache.mu.ravel(), self._cache.var.ravel()
        dtype = self.moving_mean.dtype
        self.moving_mean = (a * self.moving_mean + (1 - a) * mu).astype(dtype)
        self.moving_variance = (a * self.moving_variance + (1 - a) * var).astype(dtype)
        return y

    def set_moving_statistics(self, mean, variance):
        """Replace the moving statistics, e.g. by population statistics."""
        self.moving_mean, self.moving_variance = mean, variance

    @property
    def cache(self):
        """The :class:`BatchNormCache` of the last training-mode call (None before)."""
        return self._cache

    def backward(self, dy):
        """``dx`` for the last training-mode call; sets ``dgamma`` and ``dbeta``."""
        if self._cache is None:
            raise RuntimeError("backward needs a preceding call with training=True")
        dx, dgamma, dbeta = batch_norm_backward(dy, self._cache)
        self.dgamma = dgamma if self.scale else None
        self.dbeta = dbeta if self.center else None
        return dx

    def __repr__(self):
        return (
            f"BatchNorm(axis={self.axis}, momentum={self.momentum}, "
            f"epsilon={self.epsilon}, center={self.center}, scale={self.scale})"
        )
