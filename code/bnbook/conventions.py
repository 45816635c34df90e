"""How the moving statistics are kept, in the paper and in three libraries.

Every convention here updates ``moving = momentum * moving + (1 - momentum) * batch``
with ``momentum`` in Keras's sense: the weight of the *old* value. PyTorch's
``momentum=0.1`` is the weight of the *new* value, so it is 0.9 here.
"""

from typing import NamedTuple

import numpy as np

from bnbook.checks import as_float_array, check_momentum, feature_axis, reduce_axes

__all__ = [
    "CONVENTIONS",
    "Convention",
    "moving_statistics",
    "one_pass_variance",
    "population_statistics",
    "steps_to_follow",
]


class Convention(NamedTuple):
    """One library's defaults for batch norm's statistics."""

    name: str
    momentum: float | None  # Keras's sense; None: a population average, no momentum
    epsilon: float | None  # None: not specified
    unbiased_moving_variance: bool  # m/(m-1) applied to the batch variance
    source: str


CONVENTIONS = {
    "paper": Convention(
        "Ioffe & Szegedy (2015), Algorithm 2",
        None,
        None,
        True,
        "population average over training batches: E[mu_B], m/(m-1) E[var_B]",
    ),
    "keras3": Convention(
        "Keras 3 BatchNormalization",
        0.99,
        1e-3,
        False,
        "moving average of the biased batch variance",
    ),
    "tf_keras2": Convention(
        "tf.keras 2 BatchNormalization, fused path (4-D and 5-D inputs only)",
        0.99,
        1e-3,
        True,
        "the fused kernel returns the unbiased batch variance for the moving average",
    ),
    "pytorch": Convention(
        "PyTorch BatchNorm1d/2d",
        0.9,
        1e-5,
        True,
        "momentum=0.1 weights the new value; running_var is unbiased",
    ),
}


def _batch_statistics(batch, axis):
    batch = as_float_array(batch, "each of batches")
    axis = feature_axis(axis, batch.ndim, "each of batches")
    axes = reduce_axes(batch.ndim, axis)
    m = batch.size / batch.shape[axis]
    return batch.mean(axis=axes), batch.var(axis=axes), m


def moving_statistics(batches, momentum, unbiased, *, axis=-1):
    """Moving mean and variance after ``batches``, from the start (0, 1).

    ``momentum`` is Keras's (the weight of the old value); ``unbiased`` applies
    Bessel's correction m/(m-1) to each batch variance before averaging.
    """
    momentum = check_momentum(momentum)
    stats = [_batch_statistics(b, axis) for b in batches]
    if not stats:
        raise ValueError("batches must hold at least one batch")
    mean, var = 0.0, 1.0
    for mu, v, m in stats:
        if unbiased:
            v = v * m / (m - 1)
        mean = momentum * mean + (1 - momentum) * mu
        var = momentum * var + (1 - momentum) * v
    return mean, var


def population_statistics(batches, *, axis=-1):
    """The paper's inference statistics: E_B[mu_B] and m/(m-1) E_B[var_B]."""
    stats = [_batch_statistics(b, axis) for b in batches]
    if not stats:
        raise ValueError("batches must hold at least one batch")
    m = stats[0][2]
    if any(s[2] != m for s in stats):
        raise ValueError("all batches must have the same size m")
    mean = np.mean([s[0] for s in stats], axis=0)
    var = np.mean([s[1] for s in stats], axis=0) * m / (m - 1)
    return mean, var


def one_pass_variance(x, axis=-1):
    """E[x^2] - E[x]^2 per feature: the formula batch norm must NOT use.

    Kept as a counterexample: in float32 it loses every digit once the mean is a few
    thousand times the standard deviation. (Keras's NumPy and PyTorch backends use it.)
    """
    x = as_float_array(x, "x")
    axis = feature_axis(axis, x.ndim)
    axes = reduce_axes(x.ndim, axis)
    return (x**2).mean(axis=axes) - x.mean(axis=axes) ** 2


def steps_to_follow(layer, batch, fraction=0.99, limit=100_000):
    """How many training-mode calls of ``layer`` on ``batch`` it takes, from a fresh
    layer, for the moving mean of feature 0 to hold ``fraction`` of the batch's mean
    (which must be > 0). ``layer`` is a NumPy or a Keras batch norm."""
    batch = as_float_array(batch, "batch")
    target = fraction * float(batch[:, 0].mean())
    if not target > 0:
        raise ValueError(f"batch must have a mean > 0 in feature 0, got {target}")
    for t in range(1, limit + 1):
        layer(batch, training=True)
        if np.asarray(layer.moving_mean)[0] >= target:
            return t
    raise ValueError(f"the moving mean did not follow within {limit} steps")
