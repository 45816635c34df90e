"""Folding an inference-mode batch norm into the layer before it.

At inference, batch norm is the per-channel affine map ``y = a * z + b`` with
``a = gamma / sqrt(moving_variance + epsilon)`` and ``b = beta - a * moving_mean``.
If ``z = x @ kernel + bias`` (a dense layer) or a convolution with ``kernel`` and
``bias``, the composition is the same kind of layer with

    kernel' = kernel * a        (scaling each output channel)
    bias'   = (bias - moving_mean) * a + beta

Keras stores the output channels on the last axis of both ``Dense`` kernels
``(n_in, n_out)`` and ``Conv2D`` kernels ``(kh, kw, c_in, c_out)``, so one function
folds both.
"""

import numpy as np

from bnbook.batchnorm import BatchNorm, _sigma
from bnbook.checks import as_float_array, check_epsilon, per_feature
from bnbook.layers import Dense

__all__ = ["fold_batch_norm", "fold_into_dense"]


def fold_batch_norm(
    kernel, bias, gamma, beta, moving_mean, moving_variance, *, epsilon=1e-3
):
    """Kernel and bias of the layer that equals ``layer`` followed by batch norm.

    Parameters
    ----------
    kernel : array whose last axis holds the C output channels
        ``(n_in, C)`` for a dense layer, ``(kh, kw, c_in, C)`` for a 2-D convolution
    bias : array of shape (C,), or None for a layer without bias
    gamma, beta : arrays of shape (C,), or None when the batch norm has
        ``scale=False`` / ``center=False``
    moving_mean, moving_variance : arrays of shape (C,)
    epsilon : float >= 0, the batch norm's epsilon

    Returns
    -------
    (kernel, bias) : the folded kernel (same shape) and bias of shape (C,),
    in the dtype of ``kernel``.
    """
    kernel = as_float_array(kernel, "kernel")
    if kernel.ndim < 2:
        raise ValueError(f"kernel must have at least 2 dimensions, got {kernel.ndim}")
    c = kernel.shape[-1]
    dtype = kernel.dtype

    def vector(v, name, default):
        return (
            np.full(c, default, dtype) if v is None else per_feature(v, name, c, dtype)
        )

    bias = vector(bias, "bias", 0.0)
    gamma = vector(gamma, "gamma", 1.0)
    beta = vector(beta, "beta", 0.0)
    moving_mean = per_feature(moving_mean, "moving_mean", c, dtype)
    moving_variance = per_feature(moving_variance, "moving_variance", c, dtype)
    if np.any(moving_variance < 0):
        raise ValueError("moving_variance must be >= 0 everywhere")
    epsilon = check_epsilon(epsilon)

    a = gamma / _sigma(moving_variance, epsilon)
    return kernel * a, (bias - moving_mean) * a + beta


def fold_into_dense(dense, norm):
    """The :class:`~bnbook.layers.Dense` layer that computes ``dense`` then the batch
    norm ``norm`` in inference mode, or None when they do not fold: ``dense`` is not a
    dense layer, or ``norm`` is not a built batch norm (or variant) on the last axis."""
    if not (isinstance(dense, Dense) and isinstance(norm, BatchNorm)):
        return None
    if norm.axis != -1 or norm.moving_mean is None:
        return None
    kernel, bias = fold_batch_norm(
        dense.W,
        dense.b,
        norm.gamma,
        norm.beta,
        norm.moving_mean,
        norm.moving_variance,
        epsilon=norm.epsilon,
    )
    return Dense.from_weights(kernel, bias)
