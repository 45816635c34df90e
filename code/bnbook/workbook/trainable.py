"""The layer inside a network: :func:`check_trainable_layer`, :func:`check_layer` and
then two training steps on x of shape (16, 5) or (7, 3), float64: ``layer.backward``
(dx, and the layer's dgamma and dbeta), ``layer.params()`` and one SGD step."""

import numpy as np

from bnbook.workbook.backward import _check_gradients, _gradients
from bnbook.workbook.calls import _call
from bnbook.workbook.cases import DENSE, _cases
from bnbook.workbook.layer import _check_class, _check_layer, _layer_call, _new_layer
from bnbook.workbook.reference import _y
from bnbook.workbook.report import CheckFailed, _close, _difference, _reported

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
    """A new layer with ``case``'s γ, β and ε, and two training steps, on ``case`` and
    on another batch, with an inference call between them."""
    built = _new_layer(layer_class, case.x.shape[1], {"epsilon": case.eps})
    layer = built.layer
    layer.gamma[...], layer.beta[...] = case.gamma, case.beta  # the layer's own arrays
    _check_params_before_training(layer)
    first, dy = _now(layer, case), rng.standard_normal(case.x.shape)
    _layer_call(built, first, True)
    _check_layer_backward(layer, first, dy, None)
    _check_params(built, first, dy)
    earlier = (first, _gradients(first, dy))
    second = _now(
        layer, case._replace(x=case.x * 2 + 1, name="a second batch, 2 x + 1")
    )
    dy = rng.standard_normal(second.x.shape)
    _layer_call(built, second, True)
    # an inference call between the steps, as a network evaluates between them
    _layer_call(built, second._replace(x=second.x[::-1] - 1), False)
    _check_after_inference(built, second, dy, earlier)
    _check_params(built, second, dy)


def _now(layer, batch):
    """``batch`` with the layer's γ and β as they are now."""
    return batch._replace(gamma=layer.gamma.copy(), beta=layer.beta.copy())


def _check_params_before_training(layer):
    """``layer.params()`` on a new layer: a network lists its parameters (and their
    gradients) before its first step."""
    try:
        _call(layer.params, "layer.params(), before any training call,", "a new layer")
    except CheckFailed as failed:
        if isinstance(failed.__cause__, AttributeError):
            raise CheckFailed(
                f"{failed}\nA network lists its parameters before the first step: "
                "create self.dgamma and self.dbeta in __init__ (zeros)."
            ) from failed.__cause__
        raise


def _check_after_inference(built, batch, dy, first):
    """backward after a training call and then an inference call: the gradients of
    the training call; a layer that keeps what inference computed is told so."""
    try:
        _check_layer_backward(built.layer, batch, dy, first)
    except CheckFailed as failed:
        _layer_call(built, batch, True)  # again, now without an inference call after
        try:  # does it pass now? (a second step's own mistakes, which ``first``
            # names, fail the gradients' check too: no need of it here)
            _check_layer_backward(built.layer, batch, dy, None)
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
    """``layer.params()`` after backward on ``case`` and ``dy``: the pairs (gamma,
    dgamma) and (beta, dbeta), the layer's own arrays, and one step through them."""
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
    g = _paired_with(pairs, getattr(layer, name), name)
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


def _paired_with(pairs, array, name):
    """The gradient ``pairs`` pairs with ``array`` itself (the layer's ``name``), else
    CheckFailed: a copy of it given, or none."""
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
    return found[0]


def _same(a, b):
    """Whether ``a`` is an array equal to the array ``b`` (a copy of it, or itself)."""
    return isinstance(a, np.ndarray) and a.shape == b.shape and np.array_equal(a, b)


def _check_step(built, case, pairs, right):
    """One step p -= LR * g over the pairs moves gamma and beta, and so the output."""
    layer = built.layer
    gamma = layer.gamma - LR * right["gamma"]
    beta = layer.beta - LR * right["beta"]
    for p, g in pairs:
        p -= LR * g
    y, what = _layer_call(built, case, True)
    stepped = case._replace(gamma=gamma, beta=beta)
    expected = _y(stepped)
    if not _close(y, expected, np.float64):
        raise CheckFailed(
            f"one step p -= {LR} * g over layer.params() did not move the output as "
            "it should, gamma by -lr * dgamma and beta by -lr * dbeta: list each once, "
            "as the array the layer computes with.\n"
            + _difference("y", y, expected, case.name)
        )
