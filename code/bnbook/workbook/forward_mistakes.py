"""The known wrong forward passes, each with the message that names it: ``(message,
formula)`` pairs, ``formula(case)`` the wrong y in float64, of x's shape. A check
tries them in order; the first that matches the reader's y is named."""

import numpy as np

from bnbook.workbook.reference import (
    _float64,
    _mean,
    _normalized,
    _std,
    _sum_of_squares,
    _var,
    _x2,
    _y,
)


def _forward_mistakes(case):
    """(message, formula) for the typical wrong forward passes, the first match wins."""
    _, gamma, beta = _float64(case)
    x_hat = _normalized(case)
    eps_fixed = [
        (
            f"ε is fixed at {e:g} in the code, instead of the argument eps.",
            lambda c, e=e: _y(c, eps=e),
        )
        for e in (1e-3, 1e-5)
    ]
    return [
        *eps_fixed,
        (
            "your output matches the formula without ε: divide by sqrt(var + eps), "
            "not sqrt(var).",
            lambda c: _y(c, eps=0.0),
        ),
        (
            "your output matches ε added to the standard deviation, "
            "(x - mu) / (sqrt(var) + eps): add it to the variance, sqrt(var + eps).",
            lambda c: gamma * (c.x - _mean(c)) / (np.sqrt(_var(c)) + c.eps) + beta,
        ),
        (
            "your output matches the unbiased variance (dividing by m - 1): batch norm "
            "divides by m, as np.var does by default (ddof=0).",
            lambda c: _y(c, ddof=1),
        ),
        (
            "your output matches a division by the variance itself: divide by its "
            "square root, sqrt(var + eps).",
            lambda c: _y(c, root=False),
        ),
        (
            "your output multiplies by the standard deviation, sqrt(var + eps): "
            "divide by it.",
            lambda c: gamma * _normalized(c) * (_var(c) + c.eps) + beta,
        ),
        (
            "your variance is a sum over the batch, not a mean: var = "
            "mean((x - mu)**2).",
            lambda c: gamma * (c.x - _mean(c)) / _std(_sum_of_squares(c), c.eps) + beta,
        ),
        (
            "your output divides by sqrt(std + eps): put the variance under the square "
            "root, sqrt(var + eps).",
            lambda c: gamma * (c.x - _mean(c)) / _std(np.sqrt(_var(c)), c.eps) + beta,
        ),
        (
            "your scale is the mean absolute deviation, mean(|x - mu|): divide by the "
            "standard deviation, sqrt(var + eps).",
            lambda c: (
                gamma * (c.x - _mean(c)) / (_mean(c, np.abs(c.x - _mean(c))) + c.eps)
                + beta
            ),
        ),
        (
            "ε is added to x - mu: add it to the variance, under the square root.",
            lambda c: gamma * (c.x - _mean(c) + c.eps) / np.sqrt(_var(c)) + beta,
        ),
        *(
            [
                (
                    "your variance divides by x.shape[1], the number of features: "
                    "divide by m = x.shape[0], the batch size (np.mean does).",
                    lambda c: (
                        gamma
                        * (c.x - _mean(c))
                        / _std(_sum_of_squares(c) / c.x.shape[1], c.eps)
                        + beta
                    ),
                )
            ]
            if case.x.ndim == 2
            else []
        ),
        (
            "your output matches ε squared, sqrt(var + eps**2): add eps itself.",
            lambda c: _y(c, eps=c.eps**2),
        ),
        (
            "your output matches ε subtracted, sqrt(var - eps): add it.",
            lambda c: _y(c, eps=-c.eps),
        ),
        (
            "your output matches ε added after the division, (x - mu) / sqrt(var) + "
            "eps: add it to the variance, under the square root.",
            lambda c: gamma * (_normalized(c, eps=0.0) + c.eps) + beta,
        ),
        (
            "your output matches x not centred: subtract the mean, (x - mu), before "
            "dividing.",
            lambda c: _y(c, center=False),
        ),
        (
            "your variance matches mean(x**2), without subtracting the mean: "
            "var = mean((x - mu)**2).",
            lambda c: gamma * (c.x - _mean(c)) / _std(_mean(c, _x2(c)), c.eps) + beta,
        ),
        *_affine_mistakes(x_hat, gamma, beta),
    ]


def _affine_mistakes(x_hat, gamma, beta):
    """(message, formula) for a right x_hat (x's shape) with γ and β ((D,)) misused."""
    return [
        (
            "γ and β are swapped: y = gamma * x_hat + beta.",
            lambda c: beta * x_hat + gamma,
        ),
        ("β is not added: y = gamma * x_hat + beta.", lambda c: gamma * x_hat),
        (
            "β is added inside the scaling, gamma * (x_hat + beta): add it after, "
            "y = gamma * x_hat + beta.",
            lambda c: gamma * (x_hat + beta),
        ),
        ("x_hat is not scaled by γ: y = gamma * x_hat + beta.", lambda c: x_hat + beta),
        ("your output is x_hat: γ and β are not applied.", lambda c: x_hat),
    ]


def _axes_mistakes(case, wrong_axes):
    """(message, formula) for statistics over the wrong axes: both, or the mean or
    the variance alone."""
    right = case.axes
    both = [
        (message, lambda c, axes=axes: _y(c, axes=axes))
        for axes, message in wrong_axes.items()
    ]
    mean_only = [
        (
            f"your mean is over axis={_axes_text(axes)}, your variance over "
            f"axis={_axes_text(right)}: take both over axis={_axes_text(right)}.",
            lambda c, axes=axes: _y(c, axes=axes, var_axes=right),
        )
        for axes in wrong_axes
    ]
    var_only = [
        (
            f"your mean is over axis={_axes_text(right)}, your variance over "
            f"axis={_axes_text(axes)}: take both over axis={_axes_text(right)}.",
            lambda c, axes=axes: _y(c, var_axes=axes),
        )
        for axes in wrong_axes
    ]
    var_around_mu = [
        (
            f"your mean is over axis={_axes_text(right)}, your variance over "
            f"axis={_axes_text(axes)}: take both over axis={_axes_text(right)}.",
            lambda c, axes=axes: _y_var_over(c, axes),
        )
        for axes in wrong_axes
    ]
    return both + mean_only + var_only + var_around_mu


def _y_var_over(case, axes):
    """The right mean, and mean((x - mu)**2) over ``axes``."""
    x, gamma, beta = _float64(case)
    mu = _mean(case)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    return gamma * (x - mu) / _std(var, case.eps) + beta


def _axes_text(axes):
    """``axes`` as an ``axis=`` argument is written: 0, or (0, 1, 2)."""
    return str(axes[0]) if len(axes) == 1 else str(tuple(axes))


def _y_divided_by_n(case):
    """Per-channel statistics whose sums are divided by N, not N * H * W."""
    x, gamma, beta = _float64(case)
    n = len(x)
    mu = x.sum(axis=case.axes) / n
    var = ((x - mu) ** 2).sum(axis=case.axes) / n
    return gamma * (x - mu) / _std(var, case.eps) + beta


def _y_reshaped(case):
    """Statistics per row of ``x.reshape(C, -1)``, which mixes the channels."""
    x, gamma, beta = _float64(case)
    rows = x.reshape(x.shape[-1], -1)
    mu, var = rows.mean(axis=1, keepdims=True), rows.var(axis=1, keepdims=True)
    return gamma * ((rows - mu) / _std(var, case.eps)).reshape(x.shape) + beta


def _y_by_axis_1(case):
    """Statistics per column of ``x.reshape(-1, x.shape[1])``: H taken for C."""
    x, gamma, beta = _float64(case)
    rows = x.reshape(-1, x.shape[1])
    mu, var = rows.mean(axis=0), rows.var(axis=0)
    return gamma * ((rows - mu) / _std(var, case.eps)).reshape(x.shape) + beta


def _y_transposed_back_by_reshape(case):
    """Right statistics in (N, C, H, W), put back by reshape, not transpose."""
    x, gamma, beta = _float64(case)
    xt = x.transpose(0, 3, 1, 2)
    mu = xt.mean(axis=(0, 2, 3), keepdims=True)
    var = xt.var(axis=(0, 2, 3), keepdims=True)
    return gamma * ((xt - mu) / _std(var, case.eps)).reshape(x.shape) + beta


DENSE_AXES = {
    (1,): "your statistics are per example (over axis 1, the features): that is layer "
    "normalization. Batch norm takes them per feature, over the batch: axis=0.",
    (0, 1): "your statistics are one mean and one variance for the whole array: take "
    "them per feature, over the batch: axis=0.",
}


SPATIAL_AXES = {
    (0,): "your statistics are over the batch axis only, one per position and channel: "
    "for convolutional maps take them per channel, over N, H and W: axis=(0, 1, 2).",
    (1, 2): "your statistics are per example and channel (over H and W): that is "
    "instance normalization. Batch norm takes them over N, H and W: axis=(0, 1, 2).",
    (1, 2, 3): "your statistics are per example (over H, W and C): that is layer "
    "normalization. Batch norm takes them per channel, over N, H and W: axis=(0, 1, 2).",
    (0, 1, 2, 3): "your statistics are one mean and one variance for the whole array: "
    "take them per channel, over N, H and W: axis=(0, 1, 2).",
    (0, 2, 3): "your statistics treat axis 1 as the channels (the layout N, C, H, W): "
    "here the channels are last, (N, H, W, C), so reduce over axis=(0, 1, 2).",
    (0, 1): "your statistics are over N and H only: reduce over N, H and W, "
    "axis=(0, 1, 2).",
    (3,): "your statistics are over the channels (axis 3), one per example and "
    "position: batch norm takes one per channel, over N, H and W: axis=(0, 1, 2).",
}


# Wrong per-channel statistics that no choice of axes gives.
SPATIAL_MISTAKES = [
    (
        "your mean and variance divide sums over N, H and W by N, the batch size: "
        "divide by N * H * W, the number of values of each channel (np.mean does).",
        _y_divided_by_n,
    ),
    (
        "your statistics come from x.reshape(C, -1), which mixes the channels (C is "
        "last in memory): reshape to (-1, C) and reduce over axis 0, or reduce over "
        "axis=(0, 1, 2) directly.",
        _y_reshaped,
    ),
    (
        "your statistics come from x.reshape(-1, x.shape[1]), which takes H for the "
        "channels: they are the last axis, x.reshape(-1, x.shape[-1]).",
        _y_by_axis_1,
    ),
    (
        "your output goes back from (N, C, H, W) to (N, H, W, C) by reshape, which "
        "scrambles it: undo the transpose with .transpose(0, 2, 3, 1).",
        _y_transposed_back_by_reshape,
    ),
]
