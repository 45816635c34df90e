"""Argument checks shared by the whole package.

One policy everywhere: a wrong *type* raises ``TypeError``, a wrong *value* or shape
raises ``ValueError``, and every message names the argument and says what was
expected. Each check returns the argument in the form the caller computes with.
"""

import math
import numbers

import numpy as np

__all__ = [
    "as_float_array",
    "check_bool",
    "check_callable",
    "check_dy",
    "check_epsilon",
    "check_int",
    "check_momentum",
    "check_positive",
    "check_real",
    "feature_axis",
    "per_feature",
    "reduce_axes",
]


def as_float_array(a, name):
    """``a`` as a floating array; integers are promoted to float64."""
    a = np.asarray(a)
    if a.dtype.kind == "f":  # floating: as it is
        return a
    if np.issubdtype(a.dtype, np.integer):  # signed or unsigned, not bool
        return a.astype(float)
    raise TypeError(f"{name} must be an array of real numbers, got dtype {a.dtype}")


def check_int(value, name, minimum=None):
    """``value`` as an int (not a bool), at least ``minimum`` if given."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_bool(value, name):
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def check_callable(value, name):
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")
    return value


_BOOLS = (bool, np.bool_)


def check_real(
    value, name, low=-np.inf, high=np.inf, *, open_low=False, open_high=False
):
    """``value`` as a finite float from ``low`` to ``high``, ends included unless
    ``open_low`` / ``open_high``. Python and NumPy numbers are accepted; a bool is not,
    and NaN and infinity are refused."""
    if type(value) is not float:  # a Python float, the common case, is already one
        if isinstance(value, _BOOLS) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        value = float(value)
    above = value > low if open_low else value >= low
    below = value < high if open_high else value <= high
    if not (math.isfinite(value) and above and below):
        raise ValueError(
            f"{name} must be {_range(low, high, open_low, open_high)}, got {value}"
        )
    return value


def _range(low, high, open_low, open_high):
    """The interval as the messages say it: "finite", ">= 0", "in (0, 1]"."""
    if low == -np.inf and high == np.inf:
        return "finite"
    if high == np.inf:
        return f"{'>' if open_low else '>='} {low:g}"
    if low == -np.inf:
        return f"{'<' if open_high else '<='} {high:g}"
    return f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"


def check_positive(value, name):
    """``value`` as a float > 0."""
    return check_real(value, name, 0, open_low=True)


def check_epsilon(epsilon):
    return check_real(epsilon, "epsilon", 0)


def check_momentum(momentum, name="momentum"):
    return check_real(momentum, name, 0, 1)


def feature_axis(axis, ndim, name="x"):
    """The feature axis as a non-negative int, checked against ``name``'s ``ndim``."""
    axis = check_int(axis, "axis")
    if ndim < 2:
        raise ValueError(
            f"{name} must have at least 2 dimensions (batch and features), got {ndim}"
        )
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"axis {axis} is out of range for {name} with {ndim} dimensions"
        )
    return axis % ndim


def reduce_axes(ndim, axis):
    """Every axis but the feature axis: the axes batch statistics are taken over."""
    return tuple(i for i in range(ndim) if i != axis)


def per_feature(p, name, n_features, dtype):
    """A per-feature parameter of shape ``(n_features,)``, cast to ``dtype``."""
    p = as_float_array(p, name)
    if p.shape != (n_features,):
        raise ValueError(
            f"{name} must have shape ({n_features},), one value per feature, "
            f"got shape {p.shape}"
        )
    return p.astype(dtype)


def check_dy(dy, cache, kind, forward):
    """``dy`` as an array like ``cache.x_hat``; ``cache`` must be a ``kind``, the
    cache that the function named ``forward`` returns."""
    if not isinstance(cache, kind):
        raise TypeError(
            f"cache must be the {kind.__name__} returned by {forward}, "
            f"got {type(cache).__name__}"
        )
    dy = as_float_array(dy, "dy")
    if dy.shape != cache.x_hat.shape:
        raise ValueError(
            f"dy must have the shape of x, {cache.x_hat.shape}, got {dy.shape}"
        )
    return dy.astype(cache.x_hat.dtype, copy=False)  # no copy of a large dy
