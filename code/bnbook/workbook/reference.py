"""The right forward pass (x_hat, y, and y in inference mode), computed here in
float64 from the workbook's own formulas, not with bnbook.batchnorm, so that the
reader's forward pass is checked against an independent reference; with the knobs
the typical mistakes turn. ``case`` is a :class:`Case`: x of shape (N, D) or
(N, H, W, C), γ and β of shape (D,) or (C,). (The right gradients come from
bnbook.batchnorm's backward passes: see ``backward`` and ``staged``.)"""

import numpy as np

KERAS = {"momentum": 0.99, "epsilon": 1e-3}  # Keras's defaults
ATTRIBUTES = {"gamma": 1.0, "beta": 0.0, "moving_mean": 0.0, "moving_variance": 1.0}


def _std(var, eps):
    """sqrt(var + eps), the standard deviation batch norm divides by, its inverse the
    s = inv_std of the backward pass; var of any shape, eps a number."""
    return np.sqrt(var + eps)


def _float64(case):
    """x, γ and β of ``case`` in float64: (N, ..., D), (D,) and (D,)."""
    return (a.astype(np.float64) for a in (case.x, case.gamma, case.beta))


def _normalized(
    case, axes=None, ddof=0, eps=None, root=True, center=True, var_axes=None
):
    """x̂ in float64, x's shape, with the knobs the typical mistakes turn: the axes
    of the mean (and of the variance), ddof, ε, the square root, the centring."""
    x, _, _ = _float64(case)
    axes = case.axes if axes is None else axes
    var_axes = axes if var_axes is None else var_axes
    eps = case.eps if eps is None else eps
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=var_axes, ddof=ddof, keepdims=True)
    scale = _std(var, eps) if root else var + eps
    return ((x - mu) if center else x) / scale


def _sum_of_squares(case):
    """sum((x - mu)**2) over the batch axes: (D,)."""
    x, _, _ = _float64(case)
    return ((x - _mean(case)) ** 2).sum(axis=case.axes)


def _y(case, **knobs):
    """y = gamma * x_hat + beta in float64, x's shape; ``knobs`` go to x_hat."""
    _, gamma, beta = _float64(case)
    return gamma * _normalized(case, **knobs) + beta


def _mean(case, values=None):
    """The mean of x (or of ``values``, float64 of x's shape) over the batch axes:
    (D,)."""
    x, _, _ = _float64(case)
    return (x if values is None else values).mean(axis=case.axes)


def _x2(case):
    """x**2 in float64, x's shape."""
    x, _, _ = _float64(case)
    return x**2


def _var(case):
    """The biased variance of x over the batch axes: (D,)."""
    x, _, _ = _float64(case)
    return x.var(axis=case.axes)


def _centered(case):
    """x - mu for x of shape (N, D), in float64."""
    x, _, _ = _float64(case)
    return x - x.mean(axis=0)


def _inference(case, mean, variance, eps, outside=False, swap=False):
    """The inference-mode output, x's shape (``mean`` and ``variance`` of shape (D,)),
    or with ε outside the root, or γ and β swapped."""
    _, gamma, beta = _float64(case)
    if swap:
        gamma, beta = beta, gamma
    if outside:
        scale = np.sqrt(variance) + eps
    else:
        scale = _std(variance, eps)
    return gamma * (case.x - mean) / scale + beta
