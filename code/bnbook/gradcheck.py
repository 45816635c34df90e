"""Checking gradients against central differences.

The classic mistake in a gradient check is a function that ignores its argument, for
example ``lambda x_: forward(x)[0]`` that closes over the original ``x``. Its numerical
gradient is exactly zero, the check compares an analytic gradient with zero, and, if
the comparison is loose or only looks at a norm, can even pass. ``numerical_gradient``
refuses such a function: it raises when no perturbation changes the output.
"""

import numpy as np

from bnbook.checks import check_callable, check_positive

__all__ = ["error_bound", "numerical_gradient", "relative_error"]


def numerical_gradient(f, x, dy, h=1e-6):
    """Central-difference gradient of ``sum(f(x) * dy)`` with respect to ``x``, in float64.

    Parameters
    ----------
    f : callable, array shaped like ``x`` -> array shaped like ``dy``
    x : array, the point; not modified
    dy : array, the upstream gradient (the loss is ``sum(f(x) * dy)``)
    h : float > 0, the step

    Returns
    -------
    array shaped like ``x``; costs ``2 * x.size`` calls of ``f``.
    """
    check_callable(f, "f")
    h = check_positive(h, "h")
    x = np.array(x, dtype=np.float64)  # a copy: perturbed in place below
    dy = np.asarray(dy)
    y0 = np.asarray(f(x))
    if y0.shape != dy.shape:
        raise ValueError(f"dy must have the shape of f(x), {y0.shape}, got {dy.shape}")
    grad = np.zeros_like(x)
    unmoved = []
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        y_plus = np.asarray(f(x))
        x[i] = old - h
        y_minus = np.asarray(f(x))
        x[i] = old
        unmoved.append(np.array_equal(y_plus, y0))
        grad[i] = np.sum((y_plus - y_minus) * dy) / (2 * h)
    if all(unmoved):
        raise ValueError(
            "f(x) did not change when x was perturbed: f ignores its argument "
            "(does it close over another x?), so its gradient cannot be checked"
        )
    return grad


def relative_error(a, b):
    """max |a - b| / max(|a| + |b|): 0 for equal arrays, 1 when one of them is 0."""
    a, b = (np.asarray(v, np.float64) for v in (a, b))
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape, got {a.shape} and {b.shape}"
        )
    scale = np.max(np.abs(a) + np.abs(b))
    return 0.0 if scale == 0 else float(np.max(np.abs(a - b)) / scale)


def error_bound(err):
    """The power of ten just above a small error, as text: 2.7e-11 -> '< 1e-10'.

    Errors at the level of rounding differ in their last digits between CPUs and
    BLAS builds; their order of magnitude does not, so that is what the book prints.
    """
    if not np.isfinite(err) or err < 0:
        raise ValueError(f"err must be a finite number >= 0, got {err!r}")
    if err == 0:
        return "0"
    return f"< 1e{int(np.floor(np.log10(err))) + 1}"
