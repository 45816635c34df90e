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
- :func:`check_layer`: a layer class with Keras's defaults and moving statistics.
"""

import inspect
from typing import NamedTuple

import numpy as np

from bnbook.batchnorm import batch_norm_backward, batch_norm_forward
from bnbook.checks import check_callable

__all__ = [
    "CheckFailed",
    "check_backward",
    "check_forward",
    "check_layer",
    "check_spatial_forward",
]


class CheckFailed(AssertionError):
    """The reader's code gave a wrong answer; the message says what, and why."""


class Case(NamedTuple):
    """One input of a check: ``x`` with its parameters, and how to name it."""

    name: str
    x: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    eps: float
    axes: tuple  # the axes batch norm reduces over


def _cases(shape):
    """float64 with eps 1e-3 and 0.5, float32, float32 with a large mean (x, shape)."""
    rng = np.random.default_rng(0)
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


def _call(function, what, case_name, *, keywords=(), **arguments):
    """``function(*arguments)``, those named in ``keywords`` by name, as a check sees
    it: an exception, or an argument changed in place, becomes a CheckFailed."""
    kept = {name: np.copy(a) for name, a in arguments.items() if _is_array(a)}
    args = [a for name, a in arguments.items() if name not in keywords]
    kwargs = {name: a for name, a in arguments.items() if name in keywords}
    try:
        with np.errstate(all="ignore"):  # a NaN is reported below, not warned about
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
    for name, before in kept.items():
        if not np.array_equal(arguments[name], before, equal_nan=True):
            raise CheckFailed(
                f"{what} changed its argument {name} in place: work on new arrays "
                f"(x - mu makes one; x -= mu overwrites the caller's x). On {case_name}."
            )
    return result


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


def _close(received, expected, dtype):
    """Equal to the rounding of ``dtype``, relative to the size of ``expected``."""
    tol = 1e-9 if dtype == np.float64 else 2e-4
    scale = max(1.0, float(np.nanmax(np.abs(expected), initial=0)))
    with np.errstate(all="ignore"):
        return received.shape == expected.shape and np.allclose(
            received, expected, rtol=tol, atol=tol * scale, equal_nan=True
        )


def _difference(name, received, expected, case_name):
    """Where ``received`` is furthest from ``expected``, in words."""
    with np.errstate(all="ignore"):
        gap = np.abs(received.astype(np.float64) - expected)
    gap = np.where(np.isnan(gap), np.inf, gap)
    where = np.unravel_index(np.argmax(gap), gap.shape)
    index = tuple(int(i) for i in where)
    return (
        f"On {case_name}, {name}{list(index)} is {received[where]:.6g}; expected "
        f"{expected[where]:.6g}."
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


def _float64(case):
    return (a.astype(np.float64) for a in (case.x, case.gamma, case.beta))


def _normalized(case, axes=None, ddof=0, eps=None, root=True, center=True):
    """x̂ in float64, with the knobs the typical mistakes turn."""
    x, _, _ = _float64(case)
    axes = case.axes if axes is None else axes
    eps = case.eps if eps is None else eps
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, ddof=ddof, keepdims=True)
    scale = np.sqrt(var + eps) if root else var + eps
    return ((x - mu) if center else x) / scale


def _y(case, **knobs):
    _, gamma, beta = _float64(case)
    return gamma * _normalized(case, **knobs) + beta


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
    """(message, formula) for statistics over the wrong axes."""
    return [
        (message, lambda c, axes=axes: _y(c, axes=axes))
        for axes, message in wrong_axes.items()
    ]


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
}


# ---------------------------------------------------------------------------------
# The forward pass, dense and per channel
# ---------------------------------------------------------------------------------


def check_forward(forward):
    """Check ``forward(x, gamma, beta, eps) -> (y, cache)`` for x of shape (N, D), in
    training mode: batch statistics per feature (over axis 0)."""
    check_callable(forward, "forward")
    _check_forward(forward, (16, 5), DENSE_AXES)
    print(
        "check_forward passed: the right y on 4 inputs of shape (16, 5) (float64 and "
        "float32, ε = 0.001 and 0.5, a feature of mean 1000 in float32)."
    )


def check_spatial_forward(forward):
    """Check ``forward(x, gamma, beta, eps) -> (y, cache)`` for x of shape
    (N, H, W, C): statistics per channel, over N, H and W."""
    check_callable(forward, "forward")
    _check_forward(forward, (6, 3, 4, 5), SPATIAL_AXES)
    print(
        "check_spatial_forward passed: the right y on 4 inputs of shape (6, 3, 4, 5) "
        "(N, H, W, C), statistics per channel."
    )


def _check_forward(forward, shape, wrong_axes, what="forward"):
    """Run ``forward`` on every case; CheckFailed at the first wrong output. Returns
    the cases with the reader's caches, for the backward check."""
    cached = []
    for i, case in enumerate(_cases(shape)):
        y, cache = _forward_output(forward, case, what)
        expected = _y(case)
        if not _close(y, expected, case.x.dtype):
            if i == 3:  # right until a large mean in float32
                raise CheckFailed(_one_pass_message(what, y, expected, case))
            mistakes = _forward_mistakes(case) + _axes_mistakes(case, wrong_axes)
            raise _diagnose("y", y, case, expected, mistakes, what)
        cached.append((case, cache))
    return cached


def _forward_output(forward, case, what):
    arguments = {"x": case.x, "gamma": case.gamma, "beta": case.beta, "eps": case.eps}
    result = _call(forward, what, case.name, **arguments)
    y, cache = _pair(result, what, ("y", "cache"))
    return _array(y, "y", what, case.x.shape, case.x.dtype), cache


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


def check_backward(forward, backward):
    """Check ``backward(dy, cache) -> (dx, dgamma, dbeta)``, with the cache from the
    reader's own ``forward`` (checked first), for x of shape (N, D)."""
    check_callable(forward, "forward")
    check_callable(backward, "backward")
    cached = _check_forward(
        forward, (16, 5), DENSE_AXES, what="forward (which backward needs right first)"
    )
    rng = np.random.default_rng(1)
    for case, cache in cached[:3]:  # the large mean tests the forward pass only
        dy = rng.standard_normal(case.x.shape).astype(case.x.dtype)
        result = _call(backward, "backward", case.name, dy=dy, cache=cache)
        grads = _pair(result, "backward", ("dx", "dgamma", "dbeta"))
        _check_gradients(grads, dy, case)
    print(
        "check_backward passed: dx, dgamma and dbeta right on 3 inputs of shape "
        "(16, 5) (float64 and float32, ε = 0.001 and 0.5)."
    )


def _check_gradients(grads, dy, case):
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
        _check_parameter_shape(value, name, n, d)
    dx = _array(dx, "dx", "backward", case.x.shape, case.x.dtype)
    dgamma = _array(dgamma, "dgamma", "backward", (d,), case.x.dtype)
    dbeta = _array(dbeta, "dbeta", "backward", (d,), case.x.dtype)
    x, gamma, beta = _float64(case)
    dy64 = dy.astype(np.float64)
    _, cache = batch_norm_forward(x, gamma, beta, axis=1, epsilon=case.eps)
    dx_ref, dgamma_ref, dbeta_ref = batch_norm_backward(dy64, cache)
    ref = {"dx": dx_ref, "dgamma": dgamma_ref, "dbeta": dbeta_ref}
    got = {"dx": dx, "dgamma": dgamma, "dbeta": dbeta}
    dtype = case.x.dtype
    if _close(dgamma, ref["dbeta"], dtype) and _close(dbeta, ref["dgamma"], dtype):
        raise CheckFailed(
            "backward: dgamma and dbeta are swapped: return (dx, dgamma, dbeta), with "
            "dgamma = sum(dy * x_hat) and dbeta = sum(dy)."
        )
    mistakes = _gradient_mistakes(case, dy64)
    for name in ("dbeta", "dgamma", "dx"):
        if not _close(got[name], ref[name], dtype):
            fallback = _dx_unknown if name == "dx" else None
            raise _diagnose(
                name, got[name], case, ref[name], mistakes[name], "backward", fallback
            )


def _dx_unknown(dx, case, expected):
    """For a dx that matches no known mistake: a constant factor off, or which of the
    two sums (chapter 2) it breaks; None if neither."""
    received = dx.astype(np.float64)
    with np.errstate(all="ignore"):
        factor = float(np.median(received / expected))
    if np.isfinite(factor) and _close(received, factor * expected, dx.dtype):
        return (
            f"dx is {factor:.6g} times the right dx everywhere: a constant factor is off "
            f"(m = {len(dx)} here; or gamma, or a power of s)."
        )
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
            f"{k} it is {inner[k]:.3g} instead of {right[k]:.3g}: the path through "
            "the variance var is wrong."
        )
    return None


def _check_parameter_shape(value, name, n, d):
    shape = getattr(value, "shape", None)
    if shape == (n, d):
        raise CheckFailed(
            f"backward gave {name} of shape {(n, d)}, the shape of x: sum over the "
            f"batch (axis 0), to one number per feature, shape ({d},)."
        )
    if shape == (n,):
        raise CheckFailed(
            f"backward gave {name} of shape ({n},): it is summed over the features "
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
            f"{k} it is {inner[k]:.3g} instead of {expected[k]:.3g}: the path through "
            "the variance var is missing.",
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
    ]


# ---------------------------------------------------------------------------------
# A layer with moving statistics
# ---------------------------------------------------------------------------------

MOMENTUM, EPSILON = 0.99, 1e-3
ATTRIBUTES = {"gamma": 1.0, "beta": 0.0, "moving_mean": 0.0, "moving_variance": 1.0}


def check_layer(layer_class):
    """Check a layer class: ``layer_class(num_features)`` with Keras's defaults
    (momentum 0.99, epsilon 1e-3); ``layer(x, training=...)`` returns y; the
    attributes ``gamma``, ``beta``, ``moving_mean`` and ``moving_variance``."""
    if not inspect.isclass(layer_class):
        raise TypeError(
            f"layer_class must be a class, got {type(layer_class).__name__}"
        )
    n, d = 16, 5
    layer = _new_layer(layer_class, d)
    case = _cases((n, d))[0]
    gamma, beta = case.gamma, case.beta
    layer.gamma, layer.beta = gamma.copy(), beta.copy()
    _check_inference(layer, case, "a new layer")
    _check_training(layer, case)
    shifted = case._replace(x=case.x * 2 + 1, name="a second batch, 2 x + 1")
    _check_training(layer, shifted)
    _check_inference(layer, shifted, "after two training calls")
    print(
        "check_layer passed: initial values, training and inference outputs, and the "
        "moving statistics through two training calls."
    )


def _new_layer(layer_class, d):
    what = f"{layer_class.__name__}({d})"
    layer = _call(layer_class, what, "a new layer", num_features=d)
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
    return layer


def _moving(layer):
    return {
        name: np.copy(getattr(layer, name))
        for name in ("moving_mean", "moving_variance")
    }


def _layer_call(layer, case, *training):
    what = "layer(x)" if not training else f"layer(x, training={training[0]})"
    arguments = {"x": case.x} | ({"training": training[0]} if training else {})
    y = _call(layer, what, case.name, keywords=("training",), **arguments)
    return _array(y, "y", what, case.x.shape, case.x.dtype), what


def _check_inference(layer, case, when):
    before = _moving(layer)
    mean, variance = before["moving_mean"], before["moving_variance"]
    for training in ((False,), ()):
        y, what = _layer_call(layer, case, *training)
        _check_unchanged(layer, before, what)
        expected = _inference(case, mean, variance, EPSILON)
        if not _close(y, expected, np.float64):
            mistakes = [
                (
                    "in inference it normalizes with the batch's own statistics; use "
                    "moving_mean and moving_variance.",
                    lambda c: _y(c, eps=EPSILON),
                ),
                (
                    "in inference it matches epsilon 1e-5 (PyTorch's default); Keras's "
                    "is 1e-3.",
                    lambda c: _inference(c, mean, variance, 1e-5),
                ),
                (
                    "in inference it matches the formula without epsilon.",
                    lambda c: _inference(c, mean, variance, 0.0),
                ),
            ]
            raise _diagnose("y", y, case, expected, mistakes, f"{what}, {when}")


def _inference(case, mean, variance, eps):
    _, gamma, beta = _float64(case)
    return gamma * (case.x - mean) / np.sqrt(variance + eps) + beta


def _check_unchanged(layer, before, what):
    for name, value in _moving(layer).items():
        if not np.array_equal(value, before[name]):
            if what == "layer(x)":
                raise CheckFailed(
                    f"layer(x), called without training, changed {name}: like Keras, "
                    "a call without training= should run in inference mode "
                    "(training=False by default)."
                )
            raise CheckFailed(
                f"{what} changed {name}: the moving statistics may change only in a "
                "call with training=True."
            )


def _check_training(layer, case):
    before = _moving(layer)
    y, what = _layer_call(layer, case, True)
    expected = _y(case._replace(eps=EPSILON))
    if not _close(y, expected, np.float64):
        mistakes = [
            (
                "with training=True it normalizes with the moving statistics; use the "
                "batch's mean and variance.",
                lambda c: _inference(c, *before.values(), EPSILON),
            ),
            (
                "it matches epsilon 1e-5 (PyTorch's default); Keras's is 1e-3.",
                lambda c: _y(c, eps=1e-5),
            ),
        ]
        raise _diagnose("y", y, case, expected, mistakes, what)
    _check_moving(layer, before, case, what)


def _check_moving(layer, before, case, what):
    mu, var = _mean(case).ravel(), _var(case).ravel()
    after = _moving(layer)
    for name, batch in (("moving_mean", mu), ("moving_variance", var)):
        old, new = before[name], after[name]
        expected = MOMENTUM * old + (1 - MOMENTUM) * batch
        if _close(new, expected, new.dtype):
            continue
        if np.array_equal(new, old):
            raise CheckFailed(f"{what} did not change {name}: update it in training.")
        if name == "moving_variance":
            unbiased = var * len(case.x) / (len(case.x) - 1)
            if _close(new, MOMENTUM * old + (1 - MOMENTUM) * unbiased, new.dtype):
                raise CheckFailed(
                    f"{what} moved moving_variance towards the unbiased variance "
                    "(dividing by m - 1, as PyTorch does); Keras uses the batch's "
                    "biased variance, the one it normalizes with."
                )
        raise CheckFailed(_momentum_message(what, name, old, new, batch))


def _momentum_message(what, name, old, new, batch):
    with np.errstate(all="ignore"):
        moved = np.median((new - old) / (batch - old))
    detail = (
        f"{what} moved {name} {moved:.3g} of the way from its old value to the "
        f"batch's; with momentum 0.99 it moves 0.01 of the way: "
        "moving = momentum * moving + (1 - momentum) * batch."
    )
    if abs(moved - MOMENTUM) < 1e-6:
        detail += " Your momentum weighs the batch instead of the old value."
    return detail
