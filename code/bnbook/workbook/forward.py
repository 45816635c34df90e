"""The forward pass, dense and per channel: :func:`check_forward` and
:func:`check_spatial_forward`, y compared with the reference on every case."""

from bnbook.checks import check_callable
from bnbook.workbook.calls import _array, _call, _is_array, _pair
from bnbook.workbook.cases import DENSE, SPATIAL, _cases
from bnbook.workbook.forward_mistakes import (
    DENSE_AXES,
    SPATIAL_AXES,
    SPATIAL_MISTAKES,
    _axes_mistakes,
    _forward_mistakes,
)
from bnbook.workbook.reference import _y
from bnbook.workbook.report import (
    CheckFailed,
    _close,
    _diagnose,
    _difference,
    _precision,
    _reported,
)


@_reported
def check_forward(forward):
    """Check ``forward(x, gamma, beta, eps) -> (y, cache)`` for x of shape (N, D), in
    training mode: batch statistics per feature (over axis 0)."""
    check_callable(forward, "forward")
    _check_forward(forward, DENSE, DENSE_AXES)
    print(
        "check_forward passed: the right y on 4 inputs of shape (16, 5) (float64 and "
        "float32, ε = 0.001 and 0.5, a feature of mean 1000 in float32) and an odd "
        "batch of shape (7, 3)."
    )


@_reported
def check_spatial_forward(forward):
    """Check ``forward(x, gamma, beta, eps) -> (y, cache)`` for x of shape
    (N, H, W, C): statistics per channel, over N, H and W."""
    check_callable(forward, "forward")
    _check_forward(forward, SPATIAL, SPATIAL_AXES)
    print(
        "check_spatial_forward passed: the right y on 4 inputs of shape (6, 3, 4, 5) "
        "(N, H, W, C) and one of shape (3, 5, 2, 4), statistics per channel."
    )


def _check_forward(forward, shapes, wrong_axes, what="forward"):
    """Run ``forward`` on every case; CheckFailed at the first wrong output. Returns
    the cases with the reader's caches, for the backward check."""
    cached = []
    for i, case in enumerate(_cases(*shapes)):
        y, cache = _forward_output(forward, case, what)
        expected = _y(case)
        if not _close(y, expected, case.x.dtype):
            if i == 3:  # right until a large mean in float32
                raise CheckFailed(_one_pass_message(what, y, expected, case))
            mistakes = _forward_mistakes(case) + _axes_mistakes(case, wrong_axes)
            if wrong_axes is SPATIAL_AXES:
                mistakes += SPATIAL_MISTAKES
            fallback = _precision if i < 4 else _odd_batch  # right until the odd one
            raise _diagnose("y", y, case, expected, mistakes, what, fallback)
        cached.append((case, cache))
    return cached


def _forward_output(forward, case, what):
    """y (x's shape and dtype) and the cache of the reader's ``forward`` on ``case``."""
    arguments = dict(x=case.x, gamma=case.gamma, beta=case.beta, eps=case.eps)
    result = _call(forward, what, case.name, **arguments)
    y, cache = _pair(result, what, ("y", "cache"))
    if not _is_array(y) and _is_array(cache) and cache.shape == case.x.shape:
        raise CheckFailed(
            f"{what} returned y second: return (y, cache), in that order, y first."
        )
    return _array(y, "y", what, case.x.shape, case.x.dtype), cache


def _odd_batch(received, case, expected):
    """For a y wrong on the odd batch only: a size fixed in the code."""
    return (
        f"y is right on the inputs of shape {DENSE[0] if case.x.ndim == 2 else SPATIAL[0]} "
        f"but wrong on {case.name.split(' (')[0]} of shape {case.x.shape}: is a size "
        "fixed in your code, or does it assume an even batch? Read the sizes from "
        "x.shape."
    )


def _one_pass_message(what, y, expected, case):
    """For a y wrong on the large mean in float32 only: the one-pass variance."""
    return (
        f"{what} is right in float64 and in float32 near 0, but not for a feature "
        "of mean 1000 and standard deviation 1 in float32: the variance computed as "
        "mean(x**2) - mean(x)**2 loses its digits there (chapter 3). Compute it as "
        "mean((x - mu)**2).\n" + _difference("y", y, expected, case.name)
    )
