"""How a check fails: CheckFailed, raised from one short frame (``_reported``); how an
output is compared with the right one, and with the known wrong ones (``_diagnose``);
and how a difference is told, with the digits that differ."""

import functools

import numpy as np


class CheckFailed(AssertionError):
    """The reader's code gave a wrong answer; the message says what, and why."""


def _reported(check):
    """``check`` raising its CheckFailed afresh from this one short frame: the reader
    sees the message and their own lines, and none of the check's inner frames."""

    @functools.wraps(check)
    def run(*args):
        try:
            return check(*args)
        except CheckFailed as failed:
            raise CheckFailed(str(failed)) from failed.__cause__

    return run


def _tolerance(dtype):
    """The relative error a check allows: float64's rounding, or float32's."""
    return 1e-9 if dtype == np.float64 else 2e-4


def _scale(expected):
    """The size errors are measured against: the largest |expected|, at least 1."""
    return float(np.nanmax(np.abs(expected), initial=1.0))


def _close(received, expected, dtype):
    """Equal to the rounding of ``dtype``, relative to the size of ``expected``."""
    tol = _tolerance(dtype)
    with np.errstate(all="ignore"):
        return received.shape == expected.shape and np.allclose(
            received, expected, rtol=tol, atol=tol * _scale(expected), equal_nan=True
        )


def _tell_apart(a, b):
    """``a`` and ``b`` as text, with the fewest digits (at least 6) that differ."""
    for digits in range(6, 18):
        texts = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if texts[0] != texts[1]:
            break
    return texts


def _difference(name, received, expected, case_name):
    """Where ``received`` is furthest from ``expected``, how far, and what is allowed."""
    with np.errstate(all="ignore"):
        gap = np.abs(received - expected)  # float64, as expected is
    gap = np.where(np.isnan(gap), np.inf, gap)
    where = np.unravel_index(np.argmax(gap), gap.shape)
    index = tuple(int(i) for i in where)
    got, want = _tell_apart(float(received[where]), float(expected[where]))
    scale = _scale(expected)
    return (
        f"On {case_name}, {name}{list(index)} is {got}; expected {want}.\n"
        f"Largest error {gap[where]:.2g}, relative to max(1, max|{name}|) = "
        f"{scale:.3g}: {gap[where] / scale:.2g}; the check allows "
        f"{_tolerance(received.dtype):g} in {received.dtype}."
    )


def _diagnose(name, received, case, expected, mistakes, what, fallback=None):
    """CheckFailed naming the first wrong formula ``received`` matches, or, failing
    that, what ``fallback(received, case, expected)`` says (if it says anything), and
    the largest difference from ``expected``."""
    for message, formula in mistakes:
        with np.errstate(all="ignore"):
            wrong = formula(case)
        if not _close(wrong, expected, np.float64) and _close(
            received, wrong, case.x.dtype
        ):
            raise CheckFailed(
                f"{what}: {message}\n{_difference(name, received, expected, case.name)}"
            )
    message = fallback and fallback(received, case, expected)
    return CheckFailed(
        f"{what}: {message or f'{name} is wrong.'}\n"
        f"{_difference(name, received, expected, case.name)}"
    )


def _precision(received, case, expected):
    """For an output computed in a lower precision than its dtype: which (or None)."""
    dtype = received.dtype
    for low in (np.float16, np.float32):
        if np.finfo(low).bits < np.finfo(dtype).bits:
            with np.errstate(all="ignore"):
                exact = np.array_equal(received.astype(low), received)
            if exact:
                return (
                    f"every value of your output is a {np.dtype(low)} number: it was "
                    f"computed in {np.dtype(low)} and converted back to {dtype}. "
                    f"Compute in the dtype of x, {dtype}."
                )
    with np.errstate(all="ignore"):
        error = float(np.nanmax(np.abs(received - expected))) / _scale(expected)
    if dtype == np.float64 and error < 1e-5:
        return (
            f"the result is off by {error:.1g} of its size, float32's rounding (float64's "
            "is about 1e-16): part of the computation runs in float32 (a float32 array "
            "or constant): keep every array in the dtype of x."
        )
    return None
