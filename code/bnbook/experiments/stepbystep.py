"""The measurements of chapter 3 (building batch norm in NumPy).

- :func:`four_ways`: the gradients of batch norm's forward pass computed four ways
  (staged and compact backward, central differences, TensorFlow autodiff) and the
  largest relative error of each against the compact backward;
- :func:`tf_gradients`: the TensorFlow reference, autodiff of ``tf.nn.moments`` and
  ``tf.nn.batch_normalization``, which share no code with the book's;
- :func:`variance_errors`: the float32 error of the two-pass and the one-pass
  variance, ``mean((x - mu)^2)`` against ``E[x^2] - E[x]^2``, at an offset.
"""

import numpy as np

from bnbook.batchnorm import (
    batch_norm_backward,
    batch_norm_backward_staged,
    batch_norm_forward,
)
from bnbook.checks import check_int, check_real
from bnbook.conventions import one_pass_variance
from bnbook.gradcheck import numerical_gradient, relative_error
from bnbook.tfsetup import load_tensorflow

__all__ = ["four_ways", "tf_gradients", "variance_errors"]


def _check_shape_axis(shape, axis):
    """``shape`` as a tuple of ints >= 1 and ``axis`` as an int within it."""
    shape = tuple(check_int(n, "shape", minimum=1) for n in shape)
    if len(shape) < 2:
        raise ValueError(f"shape must have at least 2 dimensions, got {shape}")
    axis = check_int(axis, "axis")
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"axis must be in [{-len(shape)}, {len(shape)}), got {axis}")
    return shape, axis


def tf_gradients(x, gamma, beta, dy, axis, epsilon=1e-3):
    """dx, dgamma, dbeta by TensorFlow autodiff of its own batch-norm ops (float64).

    The loss is ``sum(y * dy)``; ``x`` and ``dy`` have one shape, ``gamma`` and
    ``beta`` shape (C,) with C = ``x.shape[axis]``. Returns three arrays, shaped like
    ``x``, ``gamma`` and ``beta``.
    """
    tf, _ = load_tensorflow()
    x, gamma, beta = (tf.Variable(a, dtype=tf.float64) for a in (x, gamma, beta))
    axes = [i for i in range(len(x.shape)) if i != axis % len(x.shape)]
    shape = [1] * len(x.shape)
    shape[axis] = -1
    with tf.GradientTape() as tape:
        mean, var = tf.nn.moments(x, axes=axes, keepdims=True)
        y = tf.nn.batch_normalization(
            x, mean, var, tf.reshape(beta, shape), tf.reshape(gamma, shape), epsilon
        )
        loss = tf.reduce_sum(y * dy)
    return [g.numpy() for g in tape.gradient(loss, [x, gamma, beta])]


def four_ways(shape, axis, rng):
    """Relative errors between the four gradients of x, gamma and beta.

    Draws from ``rng`` (a ``numpy.random.Generator``) an input ``x`` of ``shape``
    (mean 2, standard deviation 3), gamma, beta of shape (C,), C = ``shape[axis]``,
    and an upstream gradient ``dy``; computes ``dx``, ``dgamma`` and ``dbeta`` with the
    staged backward, TensorFlow autodiff (:func:`tf_gradients`) and central
    differences, and returns a dict ``{"staged", "TF autodiff", "finite diff."}`` of
    each one's largest relative error against the compact backward.
    """
    shape, axis = _check_shape_axis(shape, axis)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}"
        )
    c = shape[axis]
    x = rng.normal(2.0, 3.0, size=shape)
    gamma, beta = rng.uniform(0.5, 2.0, size=c), rng.normal(size=c)
    dy = rng.normal(size=shape)
    _, cache = batch_norm_forward(x, gamma, beta, axis=axis)
    grads = {
        "staged": batch_norm_backward_staged(dy, cache),
        "compact": batch_norm_backward(dy, cache),
        "TF autodiff": tf_gradients(x, gamma, beta, dy, axis),
        "finite diff.": [
            numerical_gradient(
                lambda v: batch_norm_forward(v, gamma, beta, axis=axis)[0], x, dy
            ),
            numerical_gradient(
                lambda v: batch_norm_forward(x, v, beta, axis=axis)[0], gamma, dy
            ),
            numerical_gradient(
                lambda v: batch_norm_forward(x, gamma, v, axis=axis)[0], beta, dy
            ),
        ],
    }
    ref = grads["compact"]
    return {
        name: max(relative_error(a, b) for a, b in zip(g, ref, strict=True))
        for name, g in grads.items()
        if name != "compact"
    }


def variance_errors(offset, seeds, m=1000):
    """Relative errors of the two-pass and one-pass float32 variances, per seed.

    For each seed, ``m`` values ``offset + z`` with ``z`` standard normal, in float32;
    the reference is the float64 variance of those same float32 numbers. Returns an
    array (len(seeds), 2): the two-pass error (the book's :func:`batch_norm_forward`)
    and the one-pass error (:func:`bnbook.conventions.one_pass_variance`).
    """
    offset = check_real(offset, "offset")
    m = check_int(m, "m", minimum=2)
    seeds = [check_int(s, "seeds", minimum=0) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    return np.array([_variance_errors(offset, m, seed) for seed in seeds])


def _variance_errors(offset, m, seed):
    x = (offset + np.random.default_rng(seed).normal(size=(m, 1))).astype(np.float32)
    true = x.astype(np.float64).var(axis=0)
    two_pass = batch_norm_forward(x, np.ones(1), np.zeros(1))[1].var.ravel()
    one_pass = one_pass_variance(x)
    assert two_pass.dtype == one_pass.dtype == np.float32
    return (abs(two_pass - true) / true).item(), (abs(one_pass - true) / true).item()
