"""Small NumPy networks, their loss, and the loop that trains them (chapters 3, 5-9).

:func:`build_mlp` stacks the layers of :mod:`bnbook.layers` into a
:class:`~bnbook.layers.Sequential`; for ``sizes=(64, 100, 100, 10)`` and
``norm=BatchNorm``::

    Dense(64 -> 100) BatchNorm ReLU  Dense(100 -> 100) BatchNorm ReLU  Dense(100 -> 10)

followed by softmax cross-entropy. The networks compute in float64.
"""

import contextlib
import itertools

import numpy as np

from bnbook.checks import (
    check_bool,
    check_callable,
    check_int,
    check_positive,
)
from bnbook.data import minibatches
from bnbook.layers import Dense, ReLU, Residual, Sequential

__all__ = [
    "accuracy",
    "build_mlp",
    "layer_inputs",
    "loss_and_grads",
    "softmax_cross_entropy",
    "squared_error",
    "state_kept",
    "steps_to",
    "train_mlp",
]


def build_mlp(
    sizes=(64, 100, 100, 10),
    *,
    norm=None,
    residual=False,
    activation="relu",
    init_scale=1.0,
    seed=0,
):
    """A network of dense layers, each hidden one followed by ``[norm] [ReLU]``.

    Parameters
    ----------
    sizes : sequence of ints, (n_inputs, hidden..., n_classes), at least 2 entries
    norm : None, or a callable without arguments that makes a normalization layer,
        e.g. ``BatchNorm``, ``LayerNorm`` or ``lambda: GroupNorm(4)``. A dense layer
        before a layer that cancels a bias (batch norm) has none: beta takes its role.
    residual : bool, wrap each hidden block whose input and output have the same size
        in a :class:`~bnbook.layers.Residual`: ``x + ReLU(BN(x @ W))``
    activation : "relu", or "linear" for none: a deep linear network
    init_scale : float > 0, multiplies the He standard deviation sqrt(2 / n_in)
    seed : int, seeds the initialization
    """
    sizes = tuple(check_int(n, "each of sizes", minimum=1) for n in sizes)
    if len(sizes) < 2:
        raise ValueError(
            f"sizes must hold at least 2 sizes (inputs, outputs), got {sizes}"
        )
    if norm is not None:
        check_callable(norm, "norm")
    check_bool(residual, "residual")
    if activation not in ("relu", "linear"):
        raise ValueError(f'activation must be "relu" or "linear", got {activation!r}')
    init_scale = check_positive(init_scale, "init_scale")
    rng = np.random.default_rng(check_int(seed, "seed"))
    layers = []
    for n_in, n_out in itertools.pairwise(sizes[:-1]):
        normalization = [] if norm is None else [norm()]
        for layer in normalization:
            layer.build(n_out, np.float64)  # so that params() lists it before a call
        act = [ReLU()] if activation == "relu" else []
        bias = not any(layer.cancels_bias for layer in normalization)
        block = [Dense(n_in, n_out, rng, bias, init_scale), *normalization, *act]
        if residual and n_in == n_out:
            layers.append(Residual(block))
        else:
            layers.extend(block)
    layers.append(Dense(sizes[-2], sizes[-1], rng, True, init_scale))
    return Sequential(layers)


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of integer ``labels`` (N,) under ``logits`` (N, K).

    Returns ``(loss, dlogits)``, the gradient already divided by N.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)  # exp cannot overflow
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(labels)
    loss = -log_p[np.arange(n), labels].mean()
    dlogits = np.exp(log_p)
    dlogits[np.arange(n), labels] -= 1
    return loss, dlogits / n


def squared_error(outputs, targets):
    """Mean over the N examples of the squared error ``||output - target||^2``.

    ``outputs`` and ``targets`` of shape (N, K). Returns ``(loss, doutputs)``, the
    gradient already divided by N: the regression loss of Santurkar et al.'s deep
    linear network, whose sum over the examples is N times this mean.
    """
    targets = np.asarray(targets)
    if targets.shape != outputs.shape:
        raise ValueError(
            f"targets must have the outputs' shape {outputs.shape}, got {targets.shape}"
        )
    error = outputs - targets
    n = len(error)
    return (error**2).sum() / n, 2 * error / n


def accuracy(model, x, labels):
    """Fraction of ``x`` classified correctly, in inference mode."""
    return float(np.mean(np.argmax(model(x), axis=1) == labels))


@contextlib.contextmanager
def state_kept(model):
    """Restore the model's state (moving statistics, noise generators) after the block.

    A measurement inside it leaves no trace: inference is unchanged, and training goes
    on drawing the noise it would have drawn.
    """
    saved = model.state()
    try:
        yield model
    finally:
        model.set_state(saved)


@contextlib.contextmanager
def _parameters_at(model, values):
    """Within the block, the model's parameters hold copies of ``values`` (arrays in
    the order of ``model.params()``; None: unchanged); afterwards, their own."""
    params = [p for p, _ in model.params()]
    if values is None:
        yield
        return
    if len(values) != len(params):
        raise ValueError(f"at must hold {len(params)} arrays, got {len(values)}")
    for p, v in zip(params, values, strict=True):
        if np.shape(v) != p.shape:
            raise ValueError(f"at must match the shapes {p.shape}, got {np.shape(v)}")
    saved = [p.copy() for p in params]
    try:
        for p, v in zip(params, values, strict=True):
            p[...] = v
        yield
    finally:
        for p, v in zip(params, saved, strict=True):
            p[...] = v


def loss_and_grads(model, x, labels, at=None, loss=softmax_cross_entropy):
    """Training-mode loss and gradients on one batch, leaving the model as it was.

    ``at``, if given, holds other values of the parameters (arrays in the order of
    ``model.params()``) to evaluate at; the model keeps its own. Its state is kept
    too, so measuring the loss landscape does not change what inference computes.
    ``loss(outputs, labels) -> (loss, doutputs)`` is the loss, by default
    :func:`softmax_cross_entropy`; :func:`squared_error` for regression.

    Returns ``(loss, grads)``, ``grads`` a list of copies in the order of
    ``model.params()``.
    """
    check_callable(loss, "loss")
    with state_kept(model), _parameters_at(model, at):
        value, doutputs = loss(model(x, training=True), labels)
        model.backward(doutputs)
        return value, [g.copy() for _, g in model.params()]


def layer_inputs(model, x, training=False):
    """The input of every layer of ``model.layers``, leaving the model unchanged.

    Returns a list of arrays, one per layer, in order: ``inputs[k]`` is what
    ``model.layers[k]`` receives when ``x`` passes through the network.
    """
    inputs = []
    with state_kept(model):
        x = np.asarray(x, dtype=np.float64)
        for layer in model.layers:
            inputs.append(x)
            x = layer(x, training=training)
    return inputs


def train_mlp(
    model,
    data,
    *,
    optimizer,
    steps,
    batch_size=60,
    seed=0,
    eval_every=50,
    callback=None,
    callback_every=None,
    trainable=None,
):
    """Train ``model`` on ``data`` (a :class:`bnbook.data.Digits`) in float64, with
    softmax cross-entropy on minibatches of ``batch_size`` (:func:`minibatches`).

    ``optimizer`` updates the ``(parameter, gradient)`` pairs at each step, e.g.
    :class:`bnbook.optim.SGD` ``(0.1)``. ``trainable(model)``, if given, returns the
    pairs to train (by default all of ``model.params()``); the others stay as they are.

    Returns a dict of arrays: ``step`` (every ``eval_every`` steps, and the last),
    and at those steps ``train_loss`` (mean training-mode loss of the batches since
    the previous evaluation) and ``test_accuracy`` (inference mode). A run whose
    loss stops being finite has diverged: training stops, and the entries from
    there on are NaN.

    ``callback(step, model)``, if given, is called before the first step (with
    ``step=0``) and after each evaluation, or every ``callback_every`` steps (and the
    last) if that is given; what it measures is the caller's to keep. It must leave the
    model as it found it (:func:`state_kept` helps).
    """
    if not callable(getattr(optimizer, "step", None)):
        raise TypeError(
            "optimizer must have a step(params) method, e.g. bnbook.optim.SGD(0.1), "
            f"got {type(optimizer).__name__}"
        )
    steps = check_int(steps, "steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=2)
    eval_every = check_int(eval_every, "eval_every", minimum=1)
    if batch_size > len(data.x_train):
        raise ValueError(
            f"batch_size must be at most the {len(data.x_train)} training examples, "
            f"got {batch_size}"
        )
    if callback is not None:
        check_callable(callback, "callback")
    if trainable is not None:
        check_callable(trainable, "trainable")
    checkpoints = sorted(set(range(eval_every, steps + 1, eval_every)) | {steps})
    every = eval_every if callback_every is None else callback_every
    every = check_int(every, "callback_every", minimum=1)
    calls = set(range(every, steps, every)) | {steps}
    history = {
        "step": np.array(checkpoints),
        "train_loss": np.full(len(checkpoints), np.nan),
        "test_accuracy": np.full(len(checkpoints), np.nan),
    }
    batches = minibatches(len(data.x_train), batch_size, seed)
    losses, k = [], 0
    if callback is not None:
        callback(0, model)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run: inf, NaN
        for step in range(1, steps + 1):
            batch = next(batches)
            logits = model(data.x_train[batch], training=True)
            loss, dlogits = softmax_cross_entropy(logits, data.y_train[batch])
            if not np.isfinite(loss):
                break  # diverged
            model.backward(dlogits)
            optimizer.step(model.params() if trainable is None else trainable(model))
            losses.append(loss)
            if step == checkpoints[k]:
                history["train_loss"][k] = np.mean(losses)
                history["test_accuracy"][k] = accuracy(model, data.x_test, data.y_test)
                losses, k = [], k + 1
            if callback is not None and step in calls:
                callback(step, model)
    return history


def steps_to(steps, reached):
    """The first of ``steps`` (e.g. a history's checkpoints) at which ``reached`` (one
    bool per step) holds, or inf if it never does."""
    hit = np.flatnonzero(reached)
    return steps[hit[0]] if hit.size else np.inf
