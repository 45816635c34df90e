"""l_p batch normalization (Santurkar et al., 2018, section 3.3).

It keeps batch norm's centering but divides by another measure of spread. In the
paper's words, the schemes
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

from bnbook.batchnorm import BatchNorm, _batch_axes, _checked, _sigma
from bnbook.checks import (
    as_float_array,
    check_bool,
    check_dy,
    feature_axis,
    reduce_axes,
)

__all__ = ["LpBatchNorm", "LpNormCache", "lp_norm_backward", "lp_norm_forward"]


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

    @property
    def var(self):
        """``s**2``, what the division adds epsilon to: the variance for p = 2."""
        return self.scale**2


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
    m = z.size / s.size
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
    x, axis, epsilon, gamma, beta = _checked(x, axis, epsilon, gamma=gamma, beta=beta)
    axes = _batch_axes(x, axis)

    mu = x.mean(axis=axes, keepdims=True)
    x_centered = x - mu
    z = x if before_centering else x_centered
    s = _lp_scale(z, p, axes)
    sigma = _sigma(s**2, epsilon)
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
    ``s`` (:func:`lp_norm_forward`) and moves the moving statistics towards ``mu``
    and ``s**2``, as batch norm moves them towards ``mu`` and ``var``::

        moving_mean     = momentum * moving_mean     + (1 - momentum) * mu
        moving_variance = momentum * moving_variance + (1 - momentum) * s**2

    ``layer(x)`` or ``training=False`` is batch norm's inference,
    ``gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta``, which
    divides by the same kind of spread as training. So with p = 2 (centered) it *is*
    :class:`~bnbook.batchnorm.BatchNorm`, moving statistics included (to rounding: s is
    the root of the variance, squared again).
    ``before_centering=True`` takes ``s`` of the uncentered input. The other arguments
    are ``BatchNorm``'s, by name (``scale`` is Keras's switch for ``gamma``, not ``s``).

    :func:`bnbook.mlp.build_mlp` calls ``norm()`` without arguments, so a chapter
    passes ``p`` with ``norm=functools.partial(LpBatchNorm, p=1)`` (or a lambda).
    """

    _backward = staticmethod(lp_norm_backward)

    def __init__(self, p, *, before_centering=False, **options):
        super().__init__(**options)
        self.p = _check_p(p)
        self.before_centering = check_bool(before_centering, "before_centering")

    @property
    def cancels_bias(self):
        """Only the centered form cancels a bias before it: with ``before_centering``
        the bias moves ``s`` (``s**2 = var + mu**2`` for p = 2)."""
        return not self.before_centering

    def _forward(self, x, gamma, beta, **options):
        return lp_norm_forward(
            x, gamma, beta, p=self.p, before_centering=self.before_centering, **options
        )

    def calibrate(self, x):
        """The moving statistics become the mean and the squared l_p scale of ``x``
        over every axis but the feature axis; returns the inference output. For
        p = inf the scale is the largest deviation in all of ``x``, which grows with
        the size of ``x``: it is the scale training uses only for ``x`` of the
        training batch size."""
        x = as_float_array(x, "x")
        axes = reduce_axes(x.ndim, feature_axis(self.axis, x.ndim))
        mu = x.mean(axis=axes, keepdims=True)
        s = _lp_scale(x if self.before_centering else x - mu, self.p, axes)
        self.set_moving_statistics(mu.ravel(), (s**2).ravel())
        return self(x, training=False)

    def __repr__(self):
        return (
            f"LpBatchNorm(p={self.p}, axis={self.axis}, momentum={self.momentum}, "
            f"epsilon={self.epsilon}, center={self.center}, scale={self.scale}, "
            f"before_centering={self.before_centering})"
        )
