"""The moving statistics of the reader's layer (moving_mean and moving_variance, (D,)
each): left alone by inference calls; moved by a training call, as new arrays, by
moving = momentum * moving + (1 - momentum) * batch; a wrong move is named."""

import numpy as np

from bnbook.workbook.reference import (
    ATTRIBUTES,
    KERAS,
    _float64,
    _mean,
    _normalized,
    _var,
)
from bnbook.workbook.report import CheckFailed, _close, _difference, _tell_apart


def _moving(layer):
    """Copies of the layer's moving_mean and moving_variance, by name."""
    return {
        name: np.copy(getattr(layer, name))
        for name in ("moving_mean", "moving_variance")
    }


def _check_unchanged(layer, before, what, training):
    """CheckFailed if the inference call ``what`` changed the moving statistics;
    ``training``, the call's training argument: (False,), or () for none."""
    for name, value in _moving(layer).items():
        if not np.array_equal(value, before[name]):
            if not training:
                raise CheckFailed(
                    f"{what}, called without training, changed {name}: like Keras, "
                    "a call without training= should run in inference mode "
                    "(training=False by default)."
                )
            raise CheckFailed(
                f"{what} changed {name}: the moving statistics may change only in a "
                "call with training=True."
            )


def _check_moving(built, before, case, what):
    """CheckFailed unless the training call ``what`` on ``case`` moved each moving
    statistic from its value ``before`` towards the batch's, by the momentum."""
    momentum = built.momentum
    after = _moving(built.layer)
    wrong_targets = _wrong_targets(built, case, after)
    batches = {
        "moving_mean": _mean(case),
        "moving_variance": _var(case),
    }
    for name, batch in batches.items():
        old, new = before[name], after[name]
        expected = momentum * old + (1 - momentum) * batch
        if _close(new, expected, new.dtype):
            continue
        if np.array_equal(new, old):
            raise CheckFailed(f"{what} did not change {name}: update it in training.")
        where = "\n" + _difference(name, new, expected, case.name)
        for target, value in wrong_targets[name]:
            if _close(new, momentum * old + (1 - momentum) * value, new.dtype):
                raise CheckFailed(f"{what} moved {name} towards {target}.{where}")
        raise CheckFailed(_wrong_move(what, name, old, new, batch, momentum) + where)


def _wrong_targets(built, case, after):
    """(what, value) per moving statistic: the wrong batch statistics, (D,) each, a
    layer may move it towards; ``after``, the moving statistics after the call."""
    x, _, _ = _float64(case)
    var = _var(case)
    x_hat = _normalized(case._replace(eps=built.epsilon))
    return {
        "moving_mean": [
            ("the mean of x_hat (0 after normalizing)", 0.0),
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


def _wrong_move(what, name, old, new, batch, momentum):
    """For a moving statistic moved from ``old`` to ``new`` towards no known target:
    from its initial value, towards another value, or by another momentum."""
    start = ATTRIBUTES[name]
    if _close(new, momentum * start + (1 - momentum) * batch, new.dtype):
        return (
            f"{what} moved {name} from its initial value ({ATTRIBUTES[name]:g}), "
            f"not from its current one: self.{name} = momentum * self.{name} + "
            "(1 - momentum) * batch."
        )
    with np.errstate(all="ignore"):
        fractions = (new - old) / (batch - old)
    if not np.allclose(fractions, np.median(fractions), rtol=1e-4):
        return (
            f"{what} moved {name} towards another value than the batch's "
            f"{'mean' if name == 'moving_mean' else 'variance'}."
        )
    return _momentum_message(what, name, np.median(fractions), momentum)


def _momentum_message(what, name, moved, momentum):
    """For a moving statistic that moved the fraction ``moved`` of the way to the
    batch's, not 1 - momentum: by how much, and the likely cause."""
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


def _check_new_arrays(held, before, what):
    """CheckFailed if an array a caller ``held`` before the training call ``what``
    changed with the moving statistics: they must be new arrays."""
    for name, array in held.items():
        if not np.array_equal(array, before[name]):
            raise CheckFailed(
                f"{what} changed {name} in place: an array a caller kept "
                f"(old = layer.{name}) moved with it. Assign a new array, "
                f"self.{name} = momentum * self.{name} + (1 - momentum) * ..."
            )
