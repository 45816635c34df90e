"""The backward pass: :func:`check_backward`, (dx, dgamma, dbeta) compared with the
right gradients on every case, x of shape (N, D); a wrong dx that matches no known
mistake is told by the reader's first wrong intermediate gradient (``staged``), a
lower precision, a factor off, or the one of dx's two sums over the batch it breaks.
The right gradients come from bnbook.batchnorm's validated backward pass."""

import numpy as np

from bnbook.batchnorm import batch_norm_backward, batch_norm_forward
from bnbook.checks import check_callable
from bnbook.workbook.backward_mistakes import _gradient_mistakes
from bnbook.workbook.calls import _array, _call, _pair
from bnbook.workbook.cases import DENSE
from bnbook.workbook.forward import _check_forward
from bnbook.workbook.forward_mistakes import DENSE_AXES
from bnbook.workbook.reference import _float64, _normalized, _std
from bnbook.workbook.report import (
    CheckFailed,
    _close,
    _diagnose,
    _precision,
    _reported,
    _tell_apart,
)
from bnbook.workbook.staged import _first_wrong_node


@_reported
def check_backward(forward, backward):
    """Check ``backward(dy, cache) -> (dx, dgamma, dbeta)``, with the cache from the
    reader's own ``forward`` (checked first), for x of shape (N, D)."""
    check_callable(forward, "forward")
    check_callable(backward, "backward")
    cached = _check_forward(
        forward, DENSE, DENSE_AXES, what="forward (which backward needs right first)"
    )
    rng = np.random.default_rng(1)
    del cached[3]  # the large mean tests the forward pass only
    for case, cache in cached:
        dy = rng.standard_normal(case.x.shape).astype(case.x.dtype)
        nodes = {}
        result = _call(backward, "backward", case.name, local=nodes, dy=dy, cache=cache)
        grads = _pair(result, "backward", ("dx", "dgamma", "dbeta"))
        _check_gradients(grads, dy, case, nodes)
    print(
        "check_backward passed: dx, dgamma and dbeta right on 3 inputs of shape "
        "(16, 5) (float64 and float32, ε = 0.001 and 0.5) and an odd batch of shape "
        "(7, 3)."
    )


def _check_gradients(grads, dy, case, nodes=None, what="backward"):
    """CheckFailed if (dx, dgamma, dbeta) is wrong, naming the mistake; ``nodes``, the
    reader's variables, name the first wrong intermediate gradient if no known
    mistake matches. dy and dx have x's shape (N, D), dgamma and dbeta (D,)."""
    dx, dgamma, dbeta = _gradient_arrays(grads, case, what)
    dy64 = dy.astype(np.float64)
    right_dx, right_dgamma, right_dbeta = _gradients(case, dy64)
    ref = {"dx": right_dx, "dgamma": right_dgamma, "dbeta": right_dbeta}
    got = {"dx": dx, "dgamma": dgamma, "dbeta": dbeta}
    dtype = case.x.dtype
    if _close(dgamma, ref["dbeta"], dtype) and _close(dbeta, ref["dgamma"], dtype):
        raise CheckFailed(
            f"{what}: dgamma and dbeta are swapped: return (dx, dgamma, dbeta), with "
            "dgamma = sum(dy * x_hat) and dbeta = sum(dy)."
        )
    mistakes = _gradient_mistakes(case, dy64)
    for name in ("dbeta", "dgamma", "dx"):
        if not _close(got[name], ref[name], dtype):
            fallback = _dx_fallback(nodes, dy64) if name == "dx" else None
            raise _diagnose(
                name, got[name], case, ref[name], mistakes[name], what, fallback
            )


def _gradient_arrays(grads, case, what):
    """``grads`` as dx (N, D), dgamma (D,) and dbeta (D,) in x's dtype, else
    CheckFailed: the order, the axis summed over, the shapes and the dtype."""
    n, d = case.x.shape
    shapes = [getattr(value, "shape", None) for value in grads]
    if shapes[0] != (n, d) and (n, d) in shapes[1:]:
        raise CheckFailed(
            f"backward returned an array of x's shape {(n, d)} as value "
            f"{shapes.index((n, d)) + 1} of 3: return (dx, dgamma, dbeta) in that "
            "order, dx first."
        )
    dx, dgamma, dbeta = grads
    for name, value in (("dgamma", dgamma), ("dbeta", dbeta)):
        _check_parameter_shape(value, name, n, d, what)
    return (
        _array(dx, "dx", what, case.x.shape, case.x.dtype),
        _array(dgamma, "dgamma", what, (d,), case.x.dtype),
        _array(dbeta, "dbeta", what, (d,), case.x.dtype),
    )


def _dx_fallback(nodes, dy):
    """What :func:`_diagnose` says of a dx that matches no known mistake: the first
    wrong one of the reader's intermediate gradients ``nodes``, a lower precision,
    or what :func:`_dx_unknown` finds."""

    def fallback(received, case, expected):
        return (
            _first_wrong_node(nodes or {}, case, dy)
            or _precision(received, case, expected)
            or _dx_unknown(received, case, expected)
        )

    return fallback


def _check_parameter_shape(value, name, n, d, what):
    """CheckFailed for a dgamma or dbeta summed over the wrong axis, or not at all."""
    shape = getattr(value, "shape", None)
    if shape == (n, d):
        raise CheckFailed(
            f"{what} gave {name} of shape {(n, d)}, the shape of x: sum over the "
            f"batch (axis 0), to one number per feature, shape ({d},)."
        )
    if shape == (n,):
        raise CheckFailed(
            f"{what} gave {name} of shape ({n},): it is summed over the features "
            f"(axis 1); sum over the batch (axis 0) instead, to shape ({d},)."
        )


def _gradients(case, dy):
    """The right (dx, dgamma, dbeta) for ``case`` and ``dy`` (float64), in float64."""
    x, gamma, beta = _float64(case)
    _, cache = batch_norm_forward(x, gamma, beta, epsilon=case.eps)  # over axis 0
    return batch_norm_backward(dy, cache)


def _dx_unknown(dx, case, expected):
    """For a dx that matches no known mistake: a constant factor off, or which of the
    two sums (chapter 2) it breaks; None if neither."""
    received = dx.astype(np.float64)
    with np.errstate(all="ignore"):
        factor = float(np.median(received / expected))
    if np.isfinite(factor) and _close(received, factor * expected, dx.dtype):
        return (
            f"dx is {factor:.6g} times the right dx everywhere: a constant factor is off "
            f"(m = {len(dx)} here, a factor 2 or 1/2, or a sign)."
        )
    with np.errstate(all="ignore"):
        factors = np.median(received / expected, axis=0)
    if np.all(np.isfinite(factors)) and _close(received, factors * expected, dx.dtype):
        return _factor_message(factors, case)
    return _broken_sum(received, case, expected)


def _broken_sum(received, case, expected):
    """For a dx (float64, (N, D)) that is no multiple of the right one: which of its
    two sums over the batch, sum(dx) and sum(dx * x_hat), is wrong (chapter 2); None
    if neither."""
    dtype = case.x.dtype
    sums = np.abs(received.sum(axis=0))
    if not _close(sums, np.zeros_like(sums), dtype):
        j = int(np.argmax(sums))
        return (
            "the sum of dx over the batch should be 0 (adding a constant to a feature "
            f"does not change y), and for feature {j} it is {sums[j]:.3g}: the path "
            "through the mean mu is wrong."
        )
    x_hat = _normalized(case)
    inner, right = (received * x_hat).sum(axis=0), (expected * x_hat).sum(axis=0)
    if not _close(inner, right, dtype):
        k = int(np.argmax(np.abs(inner - right)))
        return (
            "the sum of dx * x_hat over the batch should be "
            "gamma * s * sum(dy * x_hat) * eps / (var + eps), and for feature "
            f"{k} it is {' instead of '.join(_tell_apart(inner[k], right[k]))}: the "
            "path through the variance var is wrong."
        )
    return None


def _factor_message(factors, case):
    """dx right up to a factor per feature: s (the scale) is wrong; how, if known."""
    x, gamma, _ = _float64(case)
    s = 1 / _std(x.var(axis=0), case.eps)
    known = [
        (1 / s**2, "std = sqrt(var + eps) where the formula has s = 1 / std"),
        (s, "s**2 where the formula has s = 1 / sqrt(var + eps)"),
        (gamma, "γ twice: dy reaches x_hat as dx_hat = gamma * dy, once"),
        (np.sign(gamma), "|γ| where the formula has γ"),
    ]  # (dx / γ is dx without γ, a known mistake: it is named before it gets here)
    for factor, cause in known:
        if _close(factors, factor, np.float32):
            return f"dx matches {cause}."
    j = int(np.argmax(np.abs(factors - 1)))
    return (
        f"dx is the right dx times a factor that differs from feature to feature "
        f"(feature {j}: {_tell_apart(factors[j], 1.0)[0]}): its s = 1 / sqrt(var + eps) "
        "or its γ is wrong. "
        "Use the batch's var and the eps the forward pass used."
    )
