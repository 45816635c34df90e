"""Checks for the workbook: they run the reader's batch norm and say what is wrong.

Each check feeds the reader's code inputs it chooses (float64 and float32, a small and
a large ε, a feature with a large mean in float32) and compares the outputs with the
package's validated batch norm. When an output is wrong, the check compares it with
the outputs of known wrong formulas (ε missing, the unbiased variance, a gradient path
missing...) and names the one it matches; otherwise it says which property failed, on
which input, expected against received. A right implementation gets one printed line.

- :func:`check_forward`: ``forward(x, gamma, beta, eps) -> (y, cache)``, x (N, D);
- :func:`check_backward`: ``backward(dy, cache) -> (dx, dgamma, dbeta)``;
- :func:`check_spatial_forward`: ``forward`` for x (N, H, W, C), per channel;
- :func:`check_layer`: a layer class with Keras's defaults and moving statistics;
- :func:`check_trainable_layer`: the same layer with ``backward`` and ``params()``.

When a check fails, the traceback shows the reader's own lines and one line of the
check: a check raises its CheckFailed afresh from one short frame (``_reported``), and
the frame that calls the reader's code carries ``__tracebackhide__``, which IPython
skips.
"""

import functools
import inspect
import sys
from typing import NamedTuple

import numpy as np

from bnbook.batchnorm import (
    batch_norm_backward,
    batch_norm_backward_staged,
    batch_norm_forward,
)
from bnbook.checks import check_callable

__all__ = [
    "CheckFailed",
    "check_backward",
    "check_forward",
    "check_layer",
    "check_spatial_forward",
    "check_trainable_layer",
]


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


class Case(NamedTuple):
    """One input of a check: ``x`` with its parameters, and how to name it."""

    name: str
    x: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    eps: float
    axes: tuple  # the axes batch norm reduces over


def _cases(shape, odd_shape=None):
    """float64 with eps 1e-3 and 0.5, float32, float32 with a large mean (x, shape),
    and float64 with eps 1e-3 on an odd batch of another shape (x, odd_shape)."""
    cases = _cases_of(shape)
    if odd_shape is not None:
        odd = _cases_of(odd_shape, seed=2)[0]
        name = f"an odd batch with ε = 0.001 (x of shape {odd_shape}, float64)"
        cases.append(odd._replace(name=name))
    return cases


def _cases_of(shape, seed=0):
    rng = np.random.default_rng(seed)
    n_features, axes = shape[-1], tuple(range(len(shape) - 1))
    mean = rng.uniform(-3, 3, n_features)
    std = rng.uniform(0.5, 3, n_features)
    x = mean + std * rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 2, n_features) * rng.choice([-1, 1], n_features)
    beta = rng.uniform(-2, 2, n_features)
    small = 0.4 * rng.standard_normal(shape)  # variances near ε = 0.5
    far = 1000 + rng.standard_normal(shape)

    def case(name, x, eps, dtype):
        arrays = (a.astype(dtype) for a in (x, gamma, beta))
        return Case(
            f"{name} (x of shape {shape}, {np.dtype(dtype)})", *arrays, eps, axes
        )

    return [
        case("x with ε = 0.001", x, 1e-3, np.float64),
        case("x of small variance with ε = 0.5", small, 0.5, np.float64),
        case("x with ε = 0.001", x, 1e-3, np.float32),
        case("x of mean 1000 and standard deviation 1", far, 1e-3, np.float32),
    ]


# ---------------------------------------------------------------------------------
# Calling the reader's code
# ---------------------------------------------------------------------------------


def _call(function, what, case_name, *, keywords=(), local=None, **arguments):
    """``function(*arguments)``, those named in ``keywords`` by name, as a check sees
    it: an exception, or an argument changed in place, becomes a CheckFailed. If
    ``local`` is a dict, it receives the variables of ``function`` as it returns."""
    __tracebackhide__ = True
    kept = dict(_arrays_in(arguments))
    kept = {name: np.copy(a) for name, a in kept.items()}
    args = [a for name, a in arguments.items() if name not in keywords]
    kwargs = {name: a for name, a in arguments.items() if name in keywords}
    try:
        with np.errstate(all="ignore"), _locals_of(function, local):
            result = function(*args, **kwargs)
    except NotImplementedError as error:
        raise CheckFailed(
            f"{what} is not implemented yet (it raises NotImplementedError): "
            "write its body, then run the check again."
        ) from error
    except Exception as error:
        raise CheckFailed(
            f"{what} raised {type(error).__name__}: {error}\n"
            f"on {case_name}. The traceback above this one shows where."
        ) from error
    now = dict(_arrays_in(arguments))
    for name, before in kept.items():
        if not np.array_equal(now[name], before, equal_nan=True):
            example = (
                "x - mu makes one; x -= mu overwrites the caller's x"
                if name == "its argument x"
                else "a = a * s makes one; a *= s changes the caller's array"
            )
            raise CheckFailed(
                f"{what} changed {name} in place: work on new arrays ({example}). "
                f"On {case_name}."
            )
    return result


def _arrays_in(arguments):
    """(name, array) for each array among ``arguments``, and in a dict, list or tuple
    among them (a cache): what a call must not change in place."""
    for name, value in arguments.items():
        if _is_array(value):
            yield f"its argument {name}", value
        elif isinstance(value, dict | list | tuple):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if _is_array(item):
                    yield f"{name}[{key!r}]", item


class _locals_of:
    """Within the block, ``into`` (a dict) receives the variables of ``function``'s
    frame when it returns; nothing happens if ``into`` is None."""

    def __init__(self, function, into):
        self.code, self.into = getattr(function, "__code__", None), into

    def __enter__(self):
        self.before = sys.getprofile()
        if self.into is not None and self.code is not None:
            sys.setprofile(self._profile)

    def _profile(self, frame, event, arg):
        if event == "return" and frame.f_code is self.code:
            self.into.update(frame.f_locals)

    def __exit__(self, *exc):
        sys.setprofile(self.before)


def _is_array(a):
    return isinstance(a, np.ndarray)


def _array(value, name, what, shape, dtype):
    """``value`` if it is an array of ``shape`` and ``dtype``, else CheckFailed."""
    if value is None:
        raise CheckFailed(f"{what} gave None for {name}: did it forget a return?")
    if isinstance(value, list | tuple):
        raise CheckFailed(
            f"{what} gave a {type(value).__name__} for {name}: give a NumPy array "
            "(the result of NumPy operations, or np.array(...))."
        )
    if not isinstance(value, np.ndarray):
        raise CheckFailed(
            f"{what} gave {name} of type {type(value).__name__}: expected a NumPy array"
        )
    if value.shape != shape:
        raise CheckFailed(
            f"{what} gave {name} of shape {value.shape}; expected {shape}"
        )
    if value.dtype != dtype:
        raise CheckFailed(
            f"{what} gave {name} of dtype {value.dtype} for x of dtype {dtype}: keep the "
            "dtype of x (a float64 array or constant in the computation promotes it)."
        )
    return value


def _pair(result, what, names):
    """A tuple of ``len(names)`` values, as ``what`` should return, else CheckFailed."""
    expected = f"({', '.join(names)})"
    if result is None:
        raise CheckFailed(f"{what} returned None: it should return {expected}.")
    if isinstance(result, np.ndarray):
        raise CheckFailed(f"{what} returned one array: it should return {expected}.")
    if not isinstance(result, tuple | list) or len(result) != len(names):
        got = len(result) if isinstance(result, tuple | list) else 1
        raise CheckFailed(
            f"{what} returned {got} value(s): it should return the {len(names)} "
            f"values {expected}."
        )
    return result


# ---------------------------------------------------------------------------------
# Comparing with the right answer, and with known wrong ones
# ---------------------------------------------------------------------------------


def _tolerance(dtype):
    """The relative error a check allows: float64's rounding, or float32's."""
    return 1e-9 if dtype == np.float64 else 2e-4


def _scale(expected):
    """The size errors are measured against: the largest |expected|, at least 1."""
    return max(1.0, float(np.nanmax(np.abs(expected), initial=0)))


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
        gap = np.abs(received.astype(np.float64) - expected)
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
                exact = np.array_equal(received.astype(low).astype(dtype), received)
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


def _float64(case):
    return (a.astype(np.float64) for a in (case.x, case.gamma, case.beta))


def _normalized(
    case, axes=None, ddof=0, eps=None, root=True, center=True, var_axes=None
):
    """x̂ in float64, with the knobs the typical mistakes turn."""
    x, _, _ = _float64(case)
    axes = case.axes if axes is None else axes
    var_axes = axes if var_axes is None else var_axes
    eps = case.eps if eps is None else eps
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - x.mean(axis=var_axes, keepdims=True)) ** 2).mean(
        axis=var_axes, keepdims=True
    ) * (1 if ddof == 0 else _count(x, var_axes) / (_count(x, var_axes) - ddof))
    scale = np.sqrt(var + eps) if root else var + eps
    return ((x - mu) if center else x) / scale


def _sum_of_squares(case):
    x = np.asarray(case.x, dtype=np.float64)
    return ((x - _mean(case)) ** 2).sum(axis=case.axes, keepdims=True)


def _count(x, axes):
    """How many values each statistic over ``axes`` averages."""
    return x.size // np.mean(x, axis=axes).size


def _y(case, **knobs):
    _, gamma, beta = _float64(case)
    return gamma * _normalized(case, **knobs) + beta


def _y_divided_by_n(case):
    """Per-channel statistics whose sums are divided by N, not N * H * W."""
    x, gamma, beta = _float64(case)
    n = len(x)
    mu = x.sum(axis=case.axes, keepdims=True) / n
    var = ((x - mu) ** 2).sum(axis=case.axes, keepdims=True) / n
    return gamma * (x - mu) / np.sqrt(var + case.eps) + beta


def _y_reshaped(case):
    """Statistics per row of ``x.reshape(C, -1)``, which mixes the channels."""
    x, gamma, beta = _float64(case)
    rows = x.reshape(x.shape[-1], -1)
    mu, var = rows.mean(axis=1, keepdims=True), rows.var(axis=1, keepdims=True)
    return gamma * ((rows - mu) / np.sqrt(var + case.eps)).reshape(x.shape) + beta


def _y_by_axis_1(case):
    """Statistics per column of ``x.reshape(-1, x.shape[1])``: H taken for C."""
    x, gamma, beta = _float64(case)
    rows = x.reshape(-1, x.shape[1])
    mu, var = rows.mean(axis=0), rows.var(axis=0)
    return gamma * ((rows - mu) / np.sqrt(var + case.eps)).reshape(x.shape) + beta


def _y_transposed_back_by_reshape(case):
    """Right statistics in (N, C, H, W), put back by reshape, not transpose."""
    x, gamma, beta = _float64(case)
    xt = x.transpose(0, 3, 1, 2)
    mu = xt.mean(axis=(0, 2, 3), keepdims=True)
    var = xt.var(axis=(0, 2, 3), keepdims=True)
    return gamma * ((xt - mu) / np.sqrt(var + case.eps)).reshape(x.shape) + beta


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
            lambda c: gamma * _normalized(c, eps=c.eps) * (_var(c) + c.eps) + beta,
        ),
        (
            "your variance is a sum over the batch, not a mean: var = "
            "mean((x - mu)**2).",
            lambda c: (
                gamma * (c.x - _mean(c)) / np.sqrt(_sum_of_squares(c) + c.eps) + beta
            ),
        ),
        (
            "your output divides by sqrt(std + eps): put the variance under the square "
            "root, sqrt(var + eps).",
            lambda c: (
                gamma * (c.x - _mean(c)) / np.sqrt(np.sqrt(_var(c)) + c.eps) + beta
            ),
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
                        / np.sqrt(_sum_of_squares(c) / c.x.shape[1] + c.eps)
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
            lambda c: (
                gamma * (c.x - _mean(c)) / np.sqrt(_mean(c, _x2(c)) + c.eps) + beta
            ),
        ),
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


def _mean(case, values=None):
    values = np.asarray(case.x if values is None else values, dtype=np.float64)
    return values.mean(axis=case.axes, keepdims=True)


def _x2(case):
    return np.asarray(case.x, dtype=np.float64) ** 2


def _var(case):
    return np.asarray(case.x, dtype=np.float64).var(axis=case.axes, keepdims=True)


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
    return gamma * (x - mu) / np.sqrt(var + case.eps) + beta


def _axes_text(axes):
    return str(axes[0]) if len(axes) == 1 else str(tuple(axes))


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


# ---------------------------------------------------------------------------------
# The forward pass, dense and per channel
# ---------------------------------------------------------------------------------


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


# The shapes of the inputs: most, and an odd batch (H and W differ in both).
DENSE = (16, 5), (7, 3)
SPATIAL = (6, 3, 4, 5), (3, 5, 2, 4)


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
    arguments = {"x": case.x, "gamma": case.gamma, "beta": case.beta, "eps": case.eps}
    result = _call(forward, what, case.name, **arguments)
    y, cache = _pair(result, what, ("y", "cache"))
    if not _is_array(y) and _is_array(cache) and cache.shape == case.x.shape:
        raise CheckFailed(
            f"{what} returned y second: return (y, cache), in that order, y first."
        )
    return _array(y, "y", what, case.x.shape, case.x.dtype), cache


def _odd_batch(received, case, expected):
    return (
        f"y is right on the inputs of shape {DENSE[0] if case.x.ndim == 2 else SPATIAL[0]} "
        f"but wrong on {case.name.split(' (')[0]} of shape {case.x.shape}: is a size "
        "fixed in your code, or does it assume an even batch? Read the sizes from "
        "x.shape."
    )


def _one_pass_message(what, y, expected, case):
    return (
        f"{what} is right in float64 and in float32 near 0, but not for a feature "
        "of mean 1000 and standard deviation 1 in float32: the variance computed as "
        "mean(x**2) - mean(x)**2 loses its digits there (chapter 3). Compute it as "
        "mean((x - mu)**2).\n" + _difference("y", y, expected, case.name)
    )


# ---------------------------------------------------------------------------------
# The backward pass
# ---------------------------------------------------------------------------------


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
    mistake matches."""
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
    dx = _array(dx, "dx", what, case.x.shape, case.x.dtype)
    dgamma = _array(dgamma, "dgamma", what, (d,), case.x.dtype)
    dbeta = _array(dbeta, "dbeta", what, (d,), case.x.dtype)
    dy64 = dy.astype(np.float64)
    ref = dict(zip(("dx", "dgamma", "dbeta"), _gradients(case, dy64), strict=True))
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
            fallback = None
            if name == "dx":

                def fallback(received, case, expected):
                    return (
                        _first_wrong_node(nodes or {}, case, dy64)
                        or _precision(received, case, expected)
                        or _dx_unknown(received, case, expected)
                    )

            raise _diagnose(
                name, got[name], case, ref[name], mistakes[name], what, fallback
            )


# The staged graph's nodes in the order backward reaches them, the names a reader may
# give their gradients, and how each is computed from the one before.
NODES = [
    ("x_hat", ("dx_hat", "dxhat", "dx_norm"), "dx_hat = gamma * dy"),
    (
        "inv_std",
        ("dinv_std", "dinvstd", "divar", "dinv"),
        "dinv_std = sum(dx_hat * x_centered, axis=0)",
    ),
    ("std", ("dstd", "dsqrtvar"), "dstd = -dinv_std / std**2"),
    ("var", ("dvar", "dvariance"), "dvar = -0.5 * inv_std**3 * dinv_std"),
    ("sq", ("dsq",), "dsq = dvar / m, the same for every example"),
    (
        "x_centered",
        ("dx_centered", "dxc", "dxmu"),
        "dx_centered = inv_std * dx_hat + 2 / m * x_centered * dvar: x_centered "
        "reaches the loss through x_hat and through var",
    ),
    ("mu", ("dmu", "dmean"), "dmu = -sum(dx_centered, axis=0)"),
]


PER_FEATURE = ("inv_std", "std", "var", "mu")  # nodes of shape (D,)


def _node_gradients(case, dy):
    """The loss's gradient with respect to every node of the staged graph, float64."""
    x, gamma, beta = _float64(case)
    _, cache = batch_norm_forward(x, gamma, beta, axis=-1, epsilon=case.eps)
    *_, nodes = batch_norm_backward_staged(dy, cache, return_nodes=True)
    std = 1 / cache.inv_std
    nodes["std"] = -nodes["inv_std"] / std**2
    nodes["sq"] = np.broadcast_to(nodes["var"] / len(x), x.shape)
    return nodes


def _first_wrong_node(local, case, dy):
    """For a dx that matches no known mistake: the first of the reader's named
    intermediate gradients that is wrong, and how to compute it (or None)."""
    right = _node_gradients(case, dy)
    n, d = case.x.shape
    checked = []
    for node, names, formula in NODES:
        name = next((k for k in names if isinstance(local.get(k), np.ndarray)), None)
        if name is None:
            continue
        value, expected = local[name], right[node]
        sizes = (d,) if node in PER_FEATURE else (n * d,)
        if node == "sq":  # dvar / m, kept per feature or spread over the batch
            sizes = (d, n * d)
        if value.size not in sizes:
            shape = "(D,), one per feature" if node in PER_FEATURE else "(N, D), as x"
            return (
                f"{name}, the gradient of {node}, has shape {value.shape}: it has the "
                f"shape of {node}, {shape}, here {(d,) if node in PER_FEATURE else (n, d)}"
                f" (right before it: {', '.join(checked) or 'none'}): {formula}.\n"
                "And so dx is wrong:"
            )
        expected = (expected[0] if value.size == d else expected).reshape(value.shape)
        if not _close(value, expected, case.x.dtype):
            return (
                f"{name}, the gradient of {node}, is the first of your intermediate "
                f"gradients that is wrong (right before it: {', '.join(checked) or 'none'}"
                f"): {formula}.\n"
                + _difference(name, value, expected, case.name)
                + "\nAnd so dx is wrong:"
            )
        checked.append(name)
    return None


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
    sums = np.abs(received.sum(axis=0))
    if not _close(sums, np.zeros_like(sums), dx.dtype):
        j = int(np.argmax(sums))
        return (
            "the sum of dx over the batch should be 0 (adding a constant to a feature "
            f"does not change y), and for feature {j} it is {sums[j]:.3g}: the path "
            "through the mean mu is wrong."
        )
    x_hat = _normalized(case)
    inner, right = (received * x_hat).sum(axis=0), (expected * x_hat).sum(axis=0)
    if not _close(inner, right, dx.dtype):
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
    x, _, _ = _float64(case)
    s = 1 / np.sqrt(x.var(axis=0) + case.eps)
    gamma = case.gamma.astype(np.float64)
    known = [
        (1 / s**2, "std = sqrt(var + eps) where the formula has s = 1 / std"),
        (s, "s**2 where the formula has s = 1 / sqrt(var + eps)"),
        (gamma, "γ twice: dy reaches x_hat as dx_hat = gamma * dy, once"),
        (1 / gamma, "dx divided by γ: dx_hat = gamma * dy multiplies by it"),
        (np.sign(gamma), "|γ| where the formula has γ"),
    ]
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


def _gradients(case, dy):
    """The right (dx, dgamma, dbeta) for ``case`` and ``dy``, in float64."""
    x, gamma, beta = _float64(case)
    _, cache = batch_norm_forward(x, gamma, beta, axis=1, epsilon=case.eps)
    return batch_norm_backward(dy.astype(np.float64), cache)


def _check_parameter_shape(value, name, n, d, what="backward"):
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


def _dx(case, dy, mean_path=True, var_path=True, divisor=0, eps=None, gamma=True):
    """dx in float64, staged as in chapter 3, with the knobs the mistakes turn;
    ``divisor`` is m - ``divisor`` in the derivative of the variance."""
    x, g, _ = _float64(case)
    eps = case.eps if eps is None else eps
    m = len(x)
    xc = x - x.mean(axis=0)
    inv_std = 1 / np.sqrt(xc.var(axis=0) + eps)
    dx_hat = dy * (g if gamma else 1)
    dvar = (dx_hat * xc).sum(axis=0) * -0.5 * inv_std**3
    dxc = dx_hat * inv_std + (dvar * 2 * xc / (m - divisor) if var_path else 0)
    return dxc - (dxc.mean(axis=0) if mean_path else 0)


def _compact_without_eps(case, dy):
    """The compact formula with x_hat right (with eps) but s = 1 / sqrt(var)."""
    x, g, _ = _float64(case)
    x_hat = _normalized(case)
    s = 1 / np.sqrt(x.var(axis=0))
    return g * s * (dy - dy.mean(axis=0) - x_hat * (dy * x_hat).mean(axis=0))


def _dx_mistakes(case, dy):
    no_mean = _dx(case, dy, mean_path=False)
    no_var = _dx(case, dy, var_path=False)
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
            lambda c: _dx(c, dy, mean_path=False, var_path=False),
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
        (
            "dx has the x_hat term's sign flipped (compact: + x_hat * mean(dy * x_hat), "
            "which is subtracted; staged: dvar = +0.5 * ..., which is -0.5 * "
            "inv_std**3 * dinv_std).",
            lambda c: _compact_dx(c, dy, var_weight=-1),
        ),
        (
            "dx matches dvar without the factor -1/2: the derivative of "
            "(var + eps)**-1/2 is -1/2 * (var + eps)**-3/2.",
            lambda c: _compact_dx(c, dy, var_weight=-2),
        ),
        (
            "dx matches dvar without the factor 1/2: the derivative of "
            "(var + eps)**-1/2 is -1/2 * (var + eps)**-3/2.",
            lambda c: _compact_dx(c, dy, var_weight=2),
        ),
        (
            "the path through the variance lacks 1/m: var = mean(x_centered**2), so "
            "d var / d x_centered = 2 * x_centered / m.",
            lambda c: _compact_dx(c, dy, var_weight=len(c.x)),
        ),
        (
            "the path through the mean lacks 1/m: mu = mean(x), so each example gets "
            "dmu / m.",
            lambda c: _compact_dx(c, dy, mean_weight=len(c.x)),
        ),
        (
            "the path through the mean divides by m - 1: mu = mean(x) divides by m.",
            lambda c: _compact_dx(c, dy, mean_weight=len(c.x) / (len(c.x) - 1)),
        ),
        (
            f"dx matches m = x.shape[1] = {case.x.shape[1]}, the number of features: m "
            f"is the batch size, x.shape[0] = {len(case.x)}.",
            lambda c: _compact_dx(
                c,
                dy,
                mean_weight=len(c.x) / c.x.shape[1],
                var_weight=len(c.x) / c.x.shape[1],
            ),
        ),
        (
            "dx uses x_centered where the formula has x_hat: "
            "dx = gamma * s * (dy - mean(dy) - x_hat * mean(dy * x_hat)).",
            lambda c: _compact_dx(c, dy, x_hat=_centered(c)),
        ),
        (
            "dx uses sums where the formula has means: mean(dy) and mean(dy * x_hat), "
            "each over the batch (axis 0).",
            lambda c: _compact_dx(c, dy, mean_weight=len(c.x), var_weight=len(c.x)),
        ),
        (
            "the dy term lacks the factor m: in the form with sums, dx = (1 / m) * "
            "gamma * s * (m * dy - sum(dy) - x_hat * sum(dy * x_hat)).",
            lambda c: _compact_dx(c, dy, dy_weight=1 / len(c.x)),
        ),
        (
            "dx takes mean(dy) and mean(dy * x_hat) over the whole array: take them "
            "per feature, over the batch, .mean(axis=0).",
            lambda c: _compact_dx(c, dy, axis=None),
        ),
        *[
            (
                "dx takes a mean over the whole array where it needs one per feature, "
                "over the batch: .mean(axis=0).",
                lambda c, axes=axes: _compact_dx(c, dy, axis=axes),
            )
            for axes in ((None, 0), (0, None))
        ],
        (
            "γ * s multiplies dy alone: it multiplies the whole bracket, "
            "gamma * s * (dy - mean(dy) - x_hat * mean(dy * x_hat)).",
            lambda c: _compact_dx(c, dy, scaled=1),
        ),
        (
            "γ * s multiplies (dy - mean(dy)) alone: it multiplies the whole bracket, "
            "gamma * s * (dy - mean(dy) - x_hat * mean(dy * x_hat)).",
            lambda c: _compact_dx(c, dy, scaled=2),
        ),
    ]


def _centered(case):
    x, _, _ = _float64(case)
    return x - x.mean(axis=0)


def _compact_dx(
    case, dy, mean_weight=1, var_weight=1, x_hat=None, scaled=3, dy_weight=1, axis=0
):
    """The compact dx, gamma * s * (dy - mean(dy) - x_hat * mean(dy * x_hat)), with
    the terms weighted, another x_hat, only the first ``scaled`` terms multiplied by
    gamma * s, or the means over ``axis`` (None: the whole array)."""
    x, g, _ = _float64(case)
    x_hat = _normalized(case) if x_hat is None else x_hat
    gs = g / np.sqrt(x.var(axis=0) + case.eps)
    first, second = axis if isinstance(axis, tuple) else (axis, axis)
    terms = [
        dy_weight * dy,
        -mean_weight * dy.mean(axis=first),
        -var_weight * x_hat * (dy * x_hat).mean(axis=second),
    ]
    return sum(gs * t if i < scaled else t for i, t in enumerate(terms))


# ---------------------------------------------------------------------------------
# A layer with moving statistics
# ---------------------------------------------------------------------------------

KERAS = {"momentum": 0.99, "epsilon": 1e-3}  # Keras's defaults
OTHER = {"momentum": 0.9, "epsilon": 0.01}  # given as keywords, they must be used
ATTRIBUTES = {"gamma": 1.0, "beta": 0.0, "moving_mean": 0.0, "moving_variance": 1.0}


class Built(NamedTuple):
    """A layer of the reader's class, with the settings it was built with."""

    layer: object
    momentum: float
    epsilon: float
    name: str  # "" for Keras's defaults, else the call that built it


@_reported
def check_layer(layer_class):
    """Check a layer class: ``layer_class(num_features)`` with Keras's defaults
    (momentum 0.99, epsilon 1e-3), and ``layer_class(num_features, momentum=0.9,
    epsilon=0.01)``; ``layer(x, training=...)`` returns y; the attributes ``gamma``,
    ``beta``, ``moving_mean`` and ``moving_variance``, the moving statistics new
    arrays after each training call."""
    _check_class(layer_class)
    _check_layer(layer_class)
    print(
        "check_layer passed: initial values, training and inference outputs, and the "
        "moving statistics through two training calls, with Keras's defaults and with "
        "momentum=0.9, epsilon=0.01."
    )


def _check_class(layer_class):
    if not inspect.isclass(layer_class):
        raise TypeError(
            f"layer_class must be a class, got {type(layer_class).__name__}"
        )


def _check_layer(layer_class):
    d = 5
    for settings in (None, OTHER):
        built = _new_layer(layer_class, d, settings)
        case = _cases((16, d))[0]
        name = f"x with ε = {built.epsilon:g} (x of shape (16, {d}), float64)"
        case = case._replace(name=name)
        _set_parameters(built.layer, case)
        _check_inference(built, case, "a new layer")
        _check_training(built, case)
        shifted = case._replace(x=case.x * 2 + 1, name="a second batch, 2 x + 1")
        _check_training(built, shifted)
        _check_inference(built, shifted, "after two training calls")


def _set_parameters(layer, case):
    """The case's gamma and beta into the layer: into its own arrays where they hold
    float64 (a layer may compute with aliases of them), else as new arrays."""
    for name in ("gamma", "beta"):
        array = getattr(layer, name)
        if array.dtype == np.float64:
            array[...] = getattr(case, name)
        else:
            setattr(layer, name, getattr(case, name).copy())


def _new_layer(layer_class, d, settings=None):
    """The reader's layer with ``settings`` as keywords (None: Keras's defaults)."""
    keywords = "".join(f", {k}={v:g}" for k, v in (settings or {}).items())
    what = f"{layer_class.__name__}({d}{keywords})"
    try:
        layer = _call(
            layer_class,
            what,
            "a new layer",
            keywords=tuple(settings or ()),
            num_features=d,
            **(settings or {}),
        )
    except CheckFailed as failed:
        if settings and isinstance(failed.__cause__, TypeError):
            raise CheckFailed(
                f"{what} raised TypeError: {failed.__cause__}\n__init__ should take "
                "momentum and epsilon as keywords (Keras's names), with Keras's "
                "defaults: __init__(self, num_features, momentum=0.99, epsilon=1e-3)."
            ) from failed.__cause__
        raise
    for name, value in ATTRIBUTES.items():
        if not hasattr(layer, name):
            raise CheckFailed(f"{what} has no attribute {name}: create it in __init__.")
        array = getattr(layer, name)
        if not isinstance(array, np.ndarray) or array.shape != (d,):
            raise CheckFailed(
                f"{what}: {name} should be a NumPy array of shape ({d},), one number per "
                f"feature; it is {array!r}."
            )
        if not np.all(array == value):
            raise CheckFailed(
                f"{what}: {name} starts at {array}; Keras starts it at {value:g} "
                "for every feature."
            )
    rules = KERAS | (settings or {})
    return Built(layer, rules["momentum"], rules["epsilon"], what if settings else "")


def _moving(layer):
    return {
        name: np.copy(getattr(layer, name))
        for name in ("moving_mean", "moving_variance")
    }


def _layer_call(built, case, *training):
    what = "layer(x)" if not training else f"layer(x, training={training[0]})"
    if built.name:
        what += f" of {built.name}"
    arguments = {"x": case.x} | ({"training": training[0]} if training else {})
    y = _call(built.layer, what, case.name, keywords=("training",), **arguments)
    return _array(y, "y", what, case.x.shape, case.x.dtype), what


def _check_inference(built, case, when):
    before = _moving(built.layer)
    mean, variance = before["moving_mean"], before["moving_variance"]
    eps = built.epsilon
    for training in ((False,), ()):
        y, what = _layer_call(built, case, *training)
        _check_unchanged(built.layer, before, what)
        expected = _inference(case, mean, variance, eps)
        if not _close(y, expected, np.float64):
            raise _diagnose(
                "y",
                y,
                case._replace(eps=eps),
                expected,
                _inference_mistakes(mean, variance, built),
                f"{what}, {when}",
                _precision,
            )


def _inference_mistakes(mean, variance, built):
    """(message, formula) for the typical wrong inference-mode outputs."""
    eps = built.epsilon
    return [
        (
            "in inference it normalizes with the batch's own statistics; use "
            "moving_mean and moving_variance.",
            lambda c: _y(c, eps=eps),
        ),
        *_ignored_epsilon(built, lambda c, e: _inference(c, mean, variance, e)),
        (
            "in inference it does not subtract moving_mean: "
            "y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta.",
            lambda c: _inference(c, 0.0, variance, eps),
        ),
        (
            "in inference it matches epsilon 1e-5 (PyTorch's default); Keras's "
            "is 1e-3.",
            lambda c: _inference(c, mean, variance, 1e-5),
        ),
        (
            "in inference it divides by sqrt(moving_variance) without epsilon, or not "
            "at all (the same while moving_variance is 1): y = gamma * (x - moving_mean)"
            " / sqrt(moving_variance + epsilon) + beta.",
            lambda c: _inference(c, mean, variance, 0.0),
        ),
        *[
            (
                "in inference it divides by sqrt(moving_variance) + epsilon or by "
                "moving_variance + epsilon (the same while moving_variance is 1): divide "
                "by sqrt(moving_variance + epsilon).",
                lambda c, knob=knob: _inference(c, mean, variance, eps, **knob),
            )
            for knob in ({"outside": True}, {"root": False})
        ],
        (
            "in inference β is not added: y = gamma * x_hat + beta.",
            lambda c: _inference(c, mean, variance, eps) - c.beta,
        ),
        (
            "in inference x_hat is not scaled by γ: y = gamma * x_hat + beta.",
            lambda c: (_inference(c, mean, variance, eps) - c.beta) / c.gamma + c.beta,
        ),
        (
            "in inference γ and β are swapped: y = gamma * x_hat + beta.",
            lambda c: _inference(c, mean, variance, eps, swap=True),
        ),
    ]


def _ignored_epsilon(built, formula):
    """The mistake of a layer built with another epsilon that uses Keras's default."""
    if built.epsilon == KERAS["epsilon"]:
        return []
    return [
        (
            f"it matches epsilon {KERAS['epsilon']:g}, Keras's default, not the "
            f"epsilon={built.epsilon:g} it was built with: use self.epsilon.",
            lambda c: formula(c, KERAS["epsilon"]),
        )
    ]


def _inference(case, mean, variance, eps, outside=False, swap=False, root=True):
    """The inference-mode output, or with ε outside the root, γ and β swapped, or a
    division by the variance itself."""
    _, gamma, beta = _float64(case)
    if swap:
        gamma, beta = beta, gamma
    if not root:
        scale = variance + eps
    elif outside:
        scale = np.sqrt(variance) + eps
    else:
        scale = np.sqrt(variance + eps)
    return gamma * (case.x - mean) / scale + beta


def _check_unchanged(layer, before, what):
    for name, value in _moving(layer).items():
        if not np.array_equal(value, before[name]):
            if what == "layer(x)" or what.startswith("layer(x) of "):
                raise CheckFailed(
                    f"{what}, called without training, changed {name}: like Keras, "
                    "a call without training= should run in inference mode "
                    "(training=False by default)."
                )
            raise CheckFailed(
                f"{what} changed {name}: the moving statistics may change only in a "
                "call with training=True."
            )


def _check_training(built, case):
    layer = built.layer
    before = _moving(layer)
    held = {name: getattr(layer, name) for name in before}  # as a caller keeps them
    y, what = _layer_call(built, case, True)
    c = case._replace(eps=built.epsilon)
    expected = _y(c)
    if not _close(y, expected, np.float64):
        mistakes = [
            (
                "with training=True it normalizes with the moving statistics; use the "
                "batch's mean and variance.",
                lambda c: _inference(c, *before.values(), built.epsilon),
            ),
            (
                "with training=True it normalizes with the moving statistics just "
                "updated; use the batch's mean and variance.",
                lambda c: _inference(c, *_moving(layer).values(), built.epsilon),
            ),
            *_ignored_epsilon(built, lambda c, e: _y(c, eps=e)),
            (
                "it matches epsilon 1e-5 (PyTorch's default); Keras's is 1e-3.",
                lambda c: _y(c, eps=1e-5),
            ),
            *_forward_mistakes(c),
        ]
        raise _diagnose("y", y, c, expected, mistakes, what, _precision)
    _check_moving(built, before, case, what)
    for name, array in held.items():
        if not np.array_equal(array, before[name]):
            raise CheckFailed(
                f"{what} changed {name} in place: an array a caller kept "
                f"(old = layer.{name}) moved with it. Assign a new array, "
                f"self.{name} = momentum * self.{name} + (1 - momentum) * ..."
            )


def _check_moving(built, before, case, what):
    momentum = built.momentum
    x = case.x.astype(np.float64)
    mu, var = _mean(case).ravel(), _var(case).ravel()
    after = _moving(built.layer)
    x_hat = _normalized(case._replace(eps=built.epsilon))
    wrong_targets = {
        "moving_mean": [
            ("the mean of x_hat (0 after normalizing)", x_hat.mean(axis=0)),
        ],
        "moving_variance": [
            (
                "the unbiased variance (dividing by m - 1, as PyTorch does); Keras "
                "uses the batch's biased variance, the one it normalizes with",
                var * len(x) / (len(x) - 1),
            ),
            (
                "the variance of x_hat (about 1 after normalizing): use the variance "
                "of x, the batch's var",
                x_hat.var(axis=0),
            ),
            (
                "mean(x**2), without subtracting the mean: take the batch's variance, "
                "mean((x - mu)**2)",
                (x**2).mean(axis=0),
            ),
            (
                "mean((x - moving_mean)**2), a variance around the moving mean just "
                "updated: take the batch's variance, around its own mean",
                ((x - after["moving_mean"]) ** 2).mean(axis=0),
            ),
            (
                "the standard deviation, sqrt(var): the moving variance tracks the "
                "batch's variance itself",
                np.sqrt(var),
            ),
            (
                "var + epsilon: epsilon belongs in the normalization only; the moving "
                "variance tracks the batch's var",
                var + built.epsilon,
            ),
        ],
    }
    for name, batch in (("moving_mean", mu), ("moving_variance", var)):
        old, new = before[name], after[name]
        if _close(new, momentum * old + (1 - momentum) * batch, new.dtype):
            continue
        if np.array_equal(new, old):
            raise CheckFailed(f"{what} did not change {name}: update it in training.")
        expected = momentum * old + (1 - momentum) * batch
        where = "\n" + _difference(name, new, expected, case.name)
        for target, value in wrong_targets[name]:
            if _close(new, momentum * old + (1 - momentum) * value, new.dtype):
                raise CheckFailed(f"{what} moved {name} towards {target}.{where}")
        start = np.full_like(old, ATTRIBUTES[name])
        if _close(new, momentum * start + (1 - momentum) * batch, new.dtype):
            raise CheckFailed(
                f"{what} moved {name} from its initial value ({ATTRIBUTES[name]:g}), "
                f"not from its current one: self.{name} = momentum * self.{name} + "
                f"(1 - momentum) * batch.{where}"
            )
        with np.errstate(all="ignore"):
            fractions = (new - old) / (batch - old)
        if not np.allclose(fractions, np.median(fractions), rtol=1e-4):
            raise CheckFailed(
                f"{what} moved {name} towards another value than the batch's "
                f"{'mean' if name == 'moving_mean' else 'variance'}.{where}"
            )
        raise CheckFailed(
            _momentum_message(what, name, np.median(fractions), momentum) + where
        )


def _momentum_message(what, name, moved, momentum):
    moved_text, right_text = _tell_apart(moved, 1 - momentum)
    detail = (
        f"{what} moved {name} {moved_text} of the way from its old value to the "
        f"batch's; with momentum {momentum:g} it moves {right_text} of the way: "
        "moving = momentum * moving + (1 - momentum) * batch."
    )
    if abs(moved - momentum) < 1e-6:
        detail += " Your momentum weighs the batch instead of the old value."
    elif momentum != KERAS["momentum"] and abs(moved - (1 - KERAS["momentum"])) < 1e-6:
        detail += (
            f" It moves as with Keras's default {KERAS['momentum']:g}, not the "
            f"momentum={momentum:g} it was built with: use self.momentum."
        )
    return detail


# ---------------------------------------------------------------------------------
# The layer inside a network: backward and params()
# ---------------------------------------------------------------------------------

LR = 0.1  # the step the params() check takes


@_reported
def check_trainable_layer(layer_class):
    """Check a layer class for a network of the book (workbook page 5), in float64 as
    the book's networks are: first :func:`check_layer`; then, after a training call,
    ``layer.backward(dy)`` (dx, and ``layer.dgamma``, ``layer.dbeta``), and
    ``layer.params()``: the pairs ``(gamma, dgamma)`` and ``(beta, dbeta)``, the
    layer's own arrays, so that one step ``p -= lr * g`` moves the layer; and a
    second training step on another batch, as a network takes them."""
    _check_class(layer_class)
    _check_layer(layer_class)
    rng = np.random.default_rng(1)
    for case in _cases(*DENSE):
        if case.x.dtype == np.float64:
            _check_two_steps(layer_class, case, rng)
    print(
        "check_trainable_layer passed: check_layer, then two training steps (forward, "
        "backward, one SGD step through params()) on each of 3 float64 inputs: dx, "
        "dgamma and dbeta right, params() the layer's own gamma and beta with their "
        "gradients."
    )


def _check_two_steps(layer_class, case, rng):
    built = _new_layer(layer_class, case.x.shape[1], {"epsilon": case.eps})
    layer = built.layer
    layer.gamma[...], layer.beta[...] = case.gamma, case.beta  # the layer's own arrays
    try:
        _call(layer.params, "layer.params(), before any training call,", "a new layer")
    except CheckFailed as failed:
        if isinstance(failed.__cause__, AttributeError):
            raise CheckFailed(
                f"{failed}\nA network lists its parameters before the first step: "
                "create self.dgamma and self.dbeta in __init__ (zeros)."
            ) from failed.__cause__
        raise
    second = case._replace(x=case.x * 2 + 1, name="a second batch, 2 x + 1")
    first = None
    for batch in (case, second):
        batch = batch._replace(gamma=layer.gamma.copy(), beta=layer.beta.copy())
        dy = rng.standard_normal(batch.x.shape)
        _layer_call(built, batch, True)
        if first is None:
            _check_layer_backward(layer, batch, dy, first)
        else:  # an inference call between: the network evaluates between steps
            _layer_call(built, batch._replace(x=batch.x[::-1] - 1), False)
            _check_after_inference(built, batch, dy, first)
        _check_params(built, batch, dy)
        first = first or (batch, _gradients(batch, dy))


def _check_after_inference(built, batch, dy, first):
    """backward after a training call and then an inference call: the gradients of
    the training call; a layer that keeps what inference computed is told so."""
    try:
        _check_layer_backward(built.layer, batch, dy, first)
    except CheckFailed as failed:
        _layer_call(built, batch, True)  # again, now without an inference call after
        try:
            _check_layer_backward(built.layer, batch, dy, first)
        except CheckFailed:
            raise failed from failed.__cause__
        raise CheckFailed(
            "layer.backward(dy) after a training call and then an inference call uses "
            "what the inference call computed: keep x_hat and 1 / sqrt(var + eps) from "
            "training calls only (backward follows the last training call)."
        ) from None


def _check_layer_backward(layer, case, dy, first):
    """``layer.backward(dy)`` after a training call on ``case``; ``first`` is the
    earlier step's (case, gradients), to name what a second step gets wrong."""
    what = "layer.backward(dy)"
    dx = _call(layer.backward, what, case.name, dy=dy)
    for name in ("dgamma", "dbeta"):
        if not hasattr(layer, name):
            raise CheckFailed(f"{what} did not set self.{name}: set it in backward.")
    for name in ("gamma", "beta"):
        if not np.array_equal(getattr(layer, name), getattr(case, name)):
            raise CheckFailed(
                f"{what} changed {name}: backward only computes the gradients; the "
                "optimizer steps, p -= lr * g, through params()."
            )
    if first is not None:
        _check_second_step(layer, dx, case, dy, first)
    _check_gradients((dx, layer.dgamma, layer.dbeta), dy, case, what=what)


def _check_second_step(layer, dx, case, dy, first):
    """The mistakes only a second step shows: gradients added up, or the backward
    of the first training call."""
    earlier, (_, earlier_dgamma, _) = first
    dgamma = _gradients(case, dy)[1]
    if _close(layer.dgamma, dgamma + earlier_dgamma, np.float64):
        raise CheckFailed(
            "layer.backward(dy) adds each step's dgamma to the last (+=): set "
            "self.dgamma and self.dbeta anew in each backward (or write into them "
            "with [...] =)."
        )
    stale = _gradients(earlier._replace(gamma=case.gamma), dy)[0]
    if _close(dx, stale, np.float64):
        raise CheckFailed(
            "layer.backward(dy) on the second training call uses the x_hat of the "
            "first: keep what backward needs from the last training call."
        )


def _check_params(built, case, dy):
    layer, what = built.layer, "layer.params()"
    pairs = _call(layer.params, what, case.name)
    if not isinstance(pairs, list | tuple) or not all(
        isinstance(pair, list | tuple) and len(pair) == 2 for pair in pairs
    ):
        raise CheckFailed(
            f"{what} returned {pairs!r}: return a list of (parameter, gradient) "
            "pairs, [(self.gamma, self.dgamma), (self.beta, self.dbeta)]."
        )
    _, dgamma, dbeta = _gradients(case, dy)
    right = {"gamma": dgamma, "beta": dbeta}
    for name, other in (("gamma", "beta"), ("beta", "gamma")):
        _check_pair(pairs, layer, name, right, other, case.name)
    _check_step(built, case, pairs, right)


def _check_pair(pairs, layer, name, right, other, case_name):
    """The pair of ``layer.<name>`` in ``pairs``: the array itself, and its gradient
    (``right[name]``; ``right[other]`` is the other parameter's)."""
    gradient, other_gradient = right[name], right[other]
    array = getattr(layer, name)
    found = [g for p, g in pairs if p is array]
    if not found:
        if any(_same(p, array) for p, _ in pairs):
            raise CheckFailed(
                f"layer.params() gives a copy of {name}, not the array itself: a step "
                f"p -= lr * g would change the copy, and the layer would never learn. "
                f"Give self.{name}."
            )
        raise CheckFailed(
            f"layer.params() leaves out {name}: give (self.gamma, self.dgamma) and "
            "(self.beta, self.dbeta)."
        )
    g = found[0]
    if not isinstance(g, np.ndarray) or g.shape != gradient.shape:
        raise CheckFailed(
            f"layer.params() pairs {name} with {g!r}: pair it with d{name}, an array "
            f"of shape {gradient.shape}."
        )
    if _close(g, gradient, np.float64):
        return
    if _close(g, other_gradient, np.float64):
        raise CheckFailed(
            f"layer.params() pairs {name} with d{other}, crosswise: give "
            "(self.gamma, self.dgamma) and (self.beta, self.dbeta)."
        )
    if not np.any(g):
        raise CheckFailed(
            f"layer.params() pairs {name} with zeros, not the d{name} the last backward "
            f"computed: the pair must hold the current d{name} (build the list in "
            "params(), or write the gradient into the array the pair holds)."
        )
    raise CheckFailed(
        f"layer.params() pairs {name} with a gradient that is not d{name} of the "
        "last backward.\n" + _difference(f"d{name}", g, gradient, case_name)
    )


def _same(a, b):
    return isinstance(a, np.ndarray) and a.shape == b.shape and np.array_equal(a, b)


def _check_step(built, case, pairs, right):
    """One step p -= LR * g over the pairs moves gamma and beta, and so the output."""
    layer = built.layer
    gamma = layer.gamma - LR * right["gamma"]
    beta = layer.beta - LR * right["beta"]
    for p, g in pairs:
        p -= LR * g
    y, what = _layer_call(built, case, True)
    stepped = case._replace(gamma=gamma, beta=beta, eps=built.epsilon)
    expected = _y(stepped)
    if not _close(y, expected, np.float64):
        raise CheckFailed(
            f"one step p -= {LR} * g over layer.params() did not move the output as "
            "it should, gamma by -lr * dgamma and beta by -lr * dbeta: list each once, "
            "as the array the layer computes with.\n"
            + _difference("y", y, expected, case.name)
        )
