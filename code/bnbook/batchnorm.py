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
    "BatchNorm",
    "BatchNormCache",
    "batch_norm_backward",
    "batch_norm_backward_staged",
    "batch_norm_forward",
    "batch_norm_inference",
]


def _sigma(var, epsilon):
    """sqrt(var + epsilon) in the dtype of ``var``: what batch norm divides by.

    Every layer of the package (and folding) adds epsilon here and nowhere else, so
    that a change in how epsilon enters is a change of this one function.
    """
    var = np.asarray(var)
    return np.sqrt(var + var.dtype.type(epsilon))


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
    x, axis, epsilon, gamma, beta = _checked(x, axis, epsilon, gamma=gamma, beta=beta)
    axes = _batch_axes(x, axis)

    mu = x.mean(axis=axes, keepdims=True)
    x_centered = x - mu
    var = (x_centered**2).mean(axis=axes, keepdims=True)  # not E[x²] - E[x]²
    inv_std = 1 / _sigma(var, epsilon)
    x_hat = x_centered * inv_std
    y = gamma * x_hat + beta

    cache = BatchNormCache(
        x_centered, x_hat, mu, var, inv_std, gamma, epsilon, axis, axes
    )
    return y, cache


def _checked(x, axis, epsilon, **vectors):
    """Check the arguments: ``x`` as a float array, ``axis`` as a non-negative int,
    ``epsilon`` as a float, then each per-feature vector of ``vectors`` (C,) in the
    dtype of ``x`` and shaped to broadcast along ``axis``."""
    x = as_float_array(x, "x")
    axis = feature_axis(axis, x.ndim)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    columns = [
        per_feature(v, name, x.shape[axis], x.dtype).reshape(shape)
        for name, v in vectors.items()
    ]
    return x, axis, check_epsilon(epsilon), *columns


def _batch_axes(x, axis):
    """The axes the batch statistics are taken over, once they can be taken."""
    m = x.size // x.shape[axis] if x.shape[axis] else 0
    if m < 2:
        raise ValueError(
            f"x of shape {x.shape} gives m={m} value(s) per feature on axis {axis}: "
            "training mode needs at least 2, because the variance of one value is 0 "
            "and every output would be beta"
        )
    return reduce_axes(x.ndim, axis)


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
    dy = check_dy(dy, cache, BatchNormCache, "batch_norm_forward")
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
    dy = check_dy(dy, cache, BatchNormCache, "batch_norm_forward")
    axes = cache.reduce_axes
    xc, inv_std, x_hat = cache.x_centered, cache.inv_std, cache.x_hat
    m = x_hat.size / inv_std.size

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
    x, _, epsilon, gamma, beta, mean, variance = _checked(
        x,
        axis,
        epsilon,
        gamma=gamma,
        beta=beta,
        moving_mean=moving_mean,
        moving_variance=moving_variance,
    )
    if np.any(variance < 0):
        raise ValueError("moving_variance must be >= 0 everywhere")

    scale = gamma / _sigma(variance, epsilon)
    shift = beta - scale * mean
    return scale * x + shift


# ---------------------------------------------------------------------------------
# A layer with Keras's semantics
# ---------------------------------------------------------------------------------


class BatchNorm(Layer):
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
    ``scale=False`` drops ``gamma`` likewise. It follows the interface of
    :class:`bnbook.layers.Layer`; its state is the moving statistics.
    """

    cancels_bias = True
    # How a training batch is normalized: a variant (l_p, ghost) swaps in its own pair;
    # its cache has the batch's ``mu`` and ``var``, which the moving statistics follow.
    _forward = staticmethod(batch_norm_forward)
    _backward = staticmethod(batch_norm_backward)

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True):
        self.axis = check_int(axis, "axis")
        self.momentum = check_momentum(momentum)
        self.epsilon = check_epsilon(epsilon)
        self.center, self.scale = (
            check_bool(center, "center"),
            check_bool(scale, "scale"),
        )
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None
        self.dgamma = self.dbeta = None
        self._cache = None

    def build(self, n_features, dtype=np.float32):
        """Create the parameters for ``n_features`` features."""
        self.gamma = np.ones(n_features, dtype) if self.scale else None
        self.beta = np.zeros(n_features, dtype) if self.center else None
        self.moving_mean = np.zeros(n_features, dtype)
        self.moving_variance = np.ones(n_features, dtype)

    def _gamma_beta(self, n_features):  # cast to x's dtype by the functions
        gamma = np.ones(n_features) if self.gamma is None else self.gamma
        beta = np.zeros(n_features) if self.beta is None else self.beta
        return gamma, beta

    def _prepare(self, x, training):
        """The arguments of a call checked, the parameters built at the first one:
        ``x`` as a float array, gamma, beta, and the options of the functions."""
        check_bool(training, "training")
        x = as_float_array(x, "x")
        axis = feature_axis(self.axis, x.ndim)
        if self.moving_mean is None:
            self.build(x.shape[axis], x.dtype)
        gamma, beta = self._gamma_beta(x.shape[axis])
        return x, gamma, beta, {"axis": axis, "epsilon": self.epsilon}

    def __call__(self, x, training=False):
        x, gamma, beta, options = self._prepare(x, training)
        if not training:
            return batch_norm_inference(
                x, gamma, beta, self.moving_mean, self.moving_variance, **options
            )
        y, self._cache = self._forward(x, gamma, beta, **options)
        self._update(self._cache.mu.ravel(), self._cache.var.ravel())
        return y

    def _update(self, mu, var):
        alpha, dtype = self.momentum, self.moving_mean.dtype
        self.moving_mean = (alpha * self.moving_mean + (1 - alpha) * mu).astype(dtype)
        self.moving_variance = (
            alpha * self.moving_variance + (1 - alpha) * var
        ).astype(dtype)

    @property
    def cache(self):
        """The :class:`BatchNormCache` of the last training-mode call (None before)."""
        return self._cache

    def backward(self, dy):
        """``dx`` for the last training-mode call; sets ``dgamma`` and ``dbeta``."""
        if self._cache is None:
            raise RuntimeError("backward needs a preceding call with training=True")
        dx, dgamma, dbeta = self._backward(dy, self._cache)
        self.dgamma = dgamma if self.scale else None
        self.dbeta = dbeta if self.center else None
        return dx

    def params(self):
        pairs = ((self.gamma, self.dgamma), (self.beta, self.dbeta))
        return [(p, g) for p, g in pairs if p is not None]

    def state(self):
        return {
            "moving_mean": self.moving_mean,
            "moving_variance": self.moving_variance,
        }

    def set_state(self, state):
        # The moving statistics are replaced at every call, never changed in place:
        # the arrays themselves can be kept and given back.
        self.moving_mean = state["moving_mean"]
        self.moving_variance = state["moving_variance"]

    def set_moving_statistics(self, mean, variance):
        """Replace the moving statistics, e.g. by population statistics."""
        self.set_state({"moving_mean": mean, "moving_variance": variance})

    def calibrate(self, x):
        """Population statistics: the moving statistics become the mean and (biased)
        variance of ``x`` over every axis but the feature axis, as in Ioffe and
        Szegedy's inference (without their m/(m-1)); returns the inference output."""
        x = as_float_array(x, "x")
        axes = reduce_axes(x.ndim, feature_axis(self.axis, x.ndim))
        self.set_moving_statistics(x.mean(axis=axes), x.var(axis=axes))
        return self(x, training=False)

    def __repr__(self):
        return (
            f"BatchNorm(axis={self.axis}, momentum={self.momentum}, "
            f"epsilon={self.epsilon}, center={self.center}, scale={self.scale})"
        )
