"""The known wrong backward passes, each with the message that names it: ``(message,
formula)`` pairs per gradient, ``formula(case)`` the wrong gradient in float64 (dx of
x's shape (N, D), dgamma and dbeta (D,)). A check tries them in order; the first that
matches the reader's gradient is named."""

import numpy as np

from bnbook.workbook.reference import (
    _centered,
    _float64,
    _mean,
    _normalized,
    _std,
)
from bnbook.workbook.report import _tell_apart


def _gradient_mistakes(case, dy):
    """(message, formula) per gradient, for the typical wrong backward passes."""
    x_hat = _normalized(case)
    n = len(case.x)

    def sum_of(values):
        return lambda c: values.sum(axis=0)

    dx = _dx_mistakes(case, dy)
    return {
        "dbeta": [
            ("dbeta is the mean of dy over the batch: it is the sum.", sum_of(dy / n))
        ],
        "dgamma": [
            (
                "dgamma is the mean of dy * x_hat over the batch: it is the sum.",
                sum_of(dy * x_hat / n),
            ),
            ("dgamma uses x: it is sum(dy * x_hat).", sum_of(dy * case.x)),
            (
                "dgamma uses the centred x without dividing by the standard "
                "deviation: it is sum(dy * x_hat).",
                sum_of(dy * (case.x - _mean(case))),
            ),
        ],
        "dx": dx,
    }


def _dx(case, dy, mean_weight=1, var_weight=1, divisor=0, eps=None, gamma=True):
    """dx in float64, staged as in chapter 3, with the knobs the mistakes turn: the
    weights of the paths through the mean and the variance (0: left out), the divisor
    m - ``divisor`` in the derivative of the variance, ε, γ."""
    x, g, _ = _float64(case)
    eps = case.eps if eps is None else eps
    m = len(x)
    xc = x - x.mean(axis=0)
    inv_std = 1 / _std(xc.var(axis=0), eps)
    dx_hat = dy * (g if gamma else 1)
    dvar = (dx_hat * xc).sum(axis=0) * -0.5 * inv_std**3
    dxc = dx_hat * inv_std + var_weight * dvar * 2 * xc / (m - divisor)
    return dxc - mean_weight * dxc.mean(axis=0)


def _compact_without_eps(case, dy):
    """The compact formula with x_hat right (with eps) but s = 1 / sqrt(var)."""
    x, g, _ = _float64(case)
    x_hat = _normalized(case)
    s = 1 / np.sqrt(x.var(axis=0))
    return g * s * (dy - dy.mean(axis=0) - x_hat * (dy * x_hat).mean(axis=0))


def _dx_mistakes(case, dy):
    """(message, formula) for the typical wrong dx, the first match wins."""
    return (
        _path_mistakes(case, dy)
        + _scale_mistakes(dy)
        + [
            (message, lambda c, knobs=knobs: _compact_dx(c, dy, **knobs))
            for message, knobs in _compact_mistakes(case)
        ]
    )


def _path_mistakes(case, dy):
    """A path through the statistics left out: the mean's, the variance's, or both;
    the message quotes the sum over the batch that tells (chapter 2)."""
    no_mean = _dx(case, dy, mean_weight=0)
    no_var = _dx(case, dy, var_weight=0)
    sums = np.abs(no_mean.sum(axis=0))
    j = int(np.argmax(sums))
    inner = (no_var * _normalized(case)).sum(axis=0)
    expected = (_dx(case, dy) * _normalized(case)).sum(axis=0)
    k = int(np.argmax(np.abs(inner - expected)))
    return [
        (
            "dx matches the gradient with mu and var treated as constants: "
            "dx = gamma * dy / sqrt(var + eps) leaves out both paths through the "
            "statistics (chapter 2).",
            lambda c: _dx(c, dy, mean_weight=0, var_weight=0),
        ),
        (
            "the sum of dx over the batch should be 0 (adding a constant to a feature "
            f"does not change y), and for feature {j} it is {sums[j]:.3g}: the path "
            "through the mean mu is missing.",
            lambda c: no_mean,
        ),
        (
            "the sum of dx * x_hat over the batch should be "
            "gamma * sum(dy * x_hat) * eps / (var + eps) / sqrt(var + eps), near 0 "
            "when var >> eps (scaling a feature changes y only through eps), and for "
            "feature "
            f"{k} it is {' instead of '.join(_tell_apart(inner[k], expected[k]))}: the "
            "path through the variance var is missing (compact: the term "
            "- x_hat * mean(dy * x_hat); staged: 2 / m * x_centered * dvar).",
            lambda c: no_var,
        ),
    ]


def _scale_mistakes(dy):
    """The variance's divisor, ε or γ wrong in the backward pass alone."""
    return [
        (
            "dx matches the derivative of the unbiased variance (2 (x - mu) / (m - 1)):"
            " the forward pass divides by m, so its derivative is 2 (x - mu) / m.",
            lambda c: _dx(c, dy, divisor=1),
        ),
        (
            "dx matches the gradient without ε: the forward pass divides by "
            "sqrt(var + eps), so the backward pass must too.",
            lambda c: _dx(c, dy, eps=0.0),
        ),
        (
            "dx leaves ε out of s = 1 / sqrt(var + eps): the forward pass divides by "
            "sqrt(var + eps), so the backward pass must too.",
            lambda c: _compact_without_eps(c, dy),
        ),
        (
            "dx is missing the factor γ: dy reaches x_hat as dx_hat = gamma * dy.",
            lambda c: _dx(c, dy, gamma=False),
        ),
    ]


def _compact_mistakes(case):
    """(message, knobs of :func:`_compact_dx`) for a compact dx with a term's weight
    or sign, x_hat, the axis of a mean, or the reach of gamma * s wrong."""
    m, d = case.x.shape
    bracket = "gamma * s * (dy - mean(dy) - x_hat * mean(dy * x_hat))."
    whole_array = (
        "dx takes a mean over the whole array where it needs one per feature, "
        "over the batch: .mean(axis=0)."
    )
    return [
        (
            "dx has the x_hat term's sign flipped (compact: + x_hat * mean(dy * x_hat), "
            "which is subtracted; staged: dvar = +0.5 * ..., which is -0.5 * "
            "inv_std**3 * dinv_std).",
            {"var_weight": -1},
        ),
        *[
            (
                f"dx matches dvar without the factor {factor}: the derivative of "
                "(var + eps)**-1/2 is -1/2 * (var + eps)**-3/2.",
                {"var_weight": weight},
            )
            for factor, weight in (("-1/2", -2), ("1/2", 2))
        ],
        (
            "the path through the variance lacks 1/m: var = mean(x_centered**2), so "
            "d var / d x_centered = 2 * x_centered / m.",
            {"var_weight": m},
        ),
        (
            "the path through the mean lacks 1/m: mu = mean(x), so each example gets "
            "dmu / m.",
            {"mean_weight": m},
        ),
        (
            "the path through the mean divides by m - 1: mu = mean(x) divides by m.",
            {"mean_weight": m / (m - 1)},
        ),
        (
            f"dx matches m = x.shape[1] = {d}, the number of features: m "
            f"is the batch size, x.shape[0] = {m}.",
            {"mean_weight": m / d, "var_weight": m / d},
        ),
        (
            f"dx uses x_centered where the formula has x_hat: dx = {bracket}",
            {"x_hat": _centered(case)},
        ),
        (
            "dx uses sums where the formula has means: mean(dy) and mean(dy * x_hat), "
            "each over the batch (axis 0).",
            {"mean_weight": m, "var_weight": m},
        ),
        (
            "the dy term lacks the factor m: in the form with sums, dx = (1 / m) * "
            "gamma * s * (m * dy - sum(dy) - x_hat * sum(dy * x_hat)).",
            {"dy_weight": 1 / m},
        ),
        (
            "dx takes mean(dy) and mean(dy * x_hat) over the whole array: take them "
            "per feature, over the batch, .mean(axis=0).",
            {"axis": None},
        ),
        *[(whole_array, {"axis": axes}) for axes in ((None, 0), (0, None))],
        *[
            (
                f"γ * s multiplies {terms} alone: it multiplies the whole bracket, "
                + bracket,
                {"scaled": scaled},
            )
            for terms, scaled in (("dy", 1), ("(dy - mean(dy))", 2))
        ],
    ]


def _compact_dx(
    case, dy, mean_weight=1, var_weight=1, x_hat=None, scaled=3, dy_weight=1, axis=0
):
    """The compact dx, gamma * s * (dy - mean(dy) - x_hat * mean(dy * x_hat)), with
    the terms weighted, another x_hat, only the first ``scaled`` terms multiplied by
    gamma * s, or the means over ``axis`` (None: the whole array)."""
    x, g, _ = _float64(case)
    x_hat = _normalized(case) if x_hat is None else x_hat
    gs = g / _std(x.var(axis=0), case.eps)
    first, second = axis if isinstance(axis, tuple) else (axis, axis)
    terms = [
        dy_weight * dy,
        -mean_weight * dy.mean(axis=first),
        -var_weight * x_hat * (dy * x_hat).mean(axis=second),
    ]
    return sum(gs * t if i < scaled else t for i, t in enumerate(terms))
