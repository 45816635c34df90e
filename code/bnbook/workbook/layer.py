"""A layer with moving statistics: :func:`check_layer`, the reader's layer class built
with Keras's defaults and with other settings, called in inference and in training
mode on x of shape (16, 5), its moving statistics followed (``moving``)."""

import inspect
from typing import NamedTuple

import numpy as np

from bnbook.workbook.calls import _array, _call
from bnbook.workbook.cases import _cases
from bnbook.workbook.layer_mistakes import _inference_mistakes, _training_mistakes
from bnbook.workbook.moving import (
    _check_moving,
    _check_new_arrays,
    _check_unchanged,
    _moving,
)
from bnbook.workbook.reference import ATTRIBUTES, KERAS, _inference, _y
from bnbook.workbook.report import (
    CheckFailed,
    _close,
    _diagnose,
    _precision,
    _reported,
)

OTHER = {"momentum": 0.9, "epsilon": 0.01}  # given as keywords, they must be used


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
    """TypeError unless ``layer_class`` is a class (a check is handed the class)."""
    if not inspect.isclass(layer_class):
        raise TypeError(
            f"layer_class must be a class, got {type(layer_class).__name__}"
        )


def _check_layer(layer_class):
    """:func:`check_layer` without its printed line (check_trainable_layer runs it)."""
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
    _check_attributes(layer, what, d)
    rules = KERAS | (settings or {})
    return Built(layer, rules["momentum"], rules["epsilon"], what if settings else "")


def _check_attributes(layer, what, d):
    """CheckFailed unless a new ``layer`` has gamma, beta and its moving statistics,
    each of shape (d,), at Keras's initial values."""
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


def _layer_call(built, case, *training):
    """``layer(x)``, or ``layer(x, training=training[0])``: y, x's shape and dtype,
    and how the call is named."""
    what = "layer(x)" if not training else f"layer(x, training={training[0]})"
    if built.name:
        what += f" of {built.name}"
    arguments = {"x": case.x} | ({"training": training[0]} if training else {})
    y = _call(built.layer, what, case.name, keywords=("training",), **arguments)
    return _array(y, "y", what, case.x.shape, case.x.dtype), what


def _check_inference(built, case, when):
    """Inference calls on ``case`` (training=False, and no training argument): y from
    the moving statistics, which stay as they are."""
    before = _moving(built.layer)
    mean, variance = before["moving_mean"], before["moving_variance"]
    eps = built.epsilon
    for training in ((False,), ()):
        y, what = _layer_call(built, case, *training)
        _check_unchanged(built.layer, before, what, training)
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


def _check_training(built, case):
    """A training call on ``case``: y from the batch's statistics, the moving
    statistics moved towards them, as new arrays."""
    layer = built.layer
    before = _moving(layer)
    held = {name: getattr(layer, name) for name in before}  # as a caller keeps them
    y, what = _layer_call(built, case, True)
    c = case._replace(eps=built.epsilon)
    expected = _y(c)
    if not _close(y, expected, np.float64):
        mistakes = _training_mistakes(built, before, c)
        raise _diagnose("y", y, c, expected, mistakes, what, _precision)
    _check_moving(built, before, case, what)
    _check_new_arrays(held, before, what)
