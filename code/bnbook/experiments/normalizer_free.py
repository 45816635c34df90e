"""Chapter 10b's experiments: deep networks trained without batch norm.

- :func:`make_network` builds each network the chapter compares (:data:`METHODS`): a
  plain deep MLP with and without batch norm, and the residual networks of
  :func:`bnbook.deep.build_resnet`; :func:`fixup_unscaled` is Fixup without its
  ``L ** -0.5`` factor;
- :func:`train_run` trains one of them with the chapter's protocol (plain SGD, or
  SGD behind adaptive gradient clipping, :class:`bnbook.deep.AGC`), and
  :func:`rate_sweep` over learning rates and seeds;
- :func:`stream_change` measures how far the first updates move a Fixup network's
  residual stream, the quantity Fixup's rescaling holds fixed as the depth grows;
- :func:`best_rate` reads a sweep out.

Chapter 10c (:mod:`bnbook.experiments.depth`) trains the same networks deeper.
"""

import numpy as np

from bnbook.batchnorm import BatchNorm
from bnbook.checks import check_int, check_real
from bnbook.data import minibatches
from bnbook.deep import AGC, build_resnet
from bnbook.layers import Dense, Residual
from bnbook.mlp import accuracy, build_mlp, softmax_cross_entropy, train_mlp
from bnbook.optim import SGD

__all__ = [
    "METHODS",
    "best_rate",
    "classifier_params",
    "dense_weights",
    "fixup_unscaled",
    "make_network",
    "rate_sweep",
    "stream_change",
    "train_run",
]

#: The networks of the chapter, by name: what :func:`make_network` builds for each.
METHODS = {
    "plain": "a deep MLP, Dense ReLU per layer (build_mlp)",
    "plain + BN": "the same, Dense BN ReLU per layer (build_mlp, norm=BatchNorm)",
    "residual + BN": 'build_resnet(kind="bn")',
    "residual, none": 'build_resnet(kind="none")',
    "SkipInit": 'build_resnet(kind="skipinit")',
    "Fixup": 'build_resnet(kind="fixup")',
    "NF": 'build_resnet(kind="nf")',
    "NF + AGC": 'build_resnet(kind="nf"), trained behind AGC',
}

_KINDS = {
    "residual + BN": "bn",
    "residual, none": "none",
    "SkipInit": "skipinit",
    "Fixup": "fixup",
    "NF": "nf",
    "NF + AGC": "nf",
}


def make_network(method, blocks, *, width=32, seed=0):
    """The network ``method`` (a key of :data:`METHODS`) with ``blocks`` residual
    blocks, or for the plain MLPs as many dense layers: ``2 * blocks + 2`` dense
    layers in every case, on the digits' 64 inputs and 10 classes."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    blocks = check_int(blocks, "blocks", minimum=1)
    width = check_int(width, "width", minimum=1)
    if method in _KINDS:
        return build_resnet(blocks, kind=_KINDS[method], width=width, seed=seed)
    sizes = (64, *[width] * (2 * blocks + 1), 10)
    norm = BatchNorm if method == "plain + BN" else None
    return build_mlp(sizes, norm=norm, seed=seed)


def fixup_unscaled(blocks, *, width=32, seed=0):
    """A Fixup network without the factor ``blocks ** -0.5`` on the first dense layer
    of each branch: the same weights as ``build_resnet(kind="fixup")`` otherwise."""
    model = build_resnet(blocks, kind="fixup", width=width, seed=seed)
    for block in model.layers:
        if isinstance(block, Residual):
            block.layers[1].W *= np.sqrt(blocks)
    return model


def classifier_params(model):
    """The weight matrix of the network's last layer, its classifier: the only array
    the official NFNet code leaves unclipped (``fc_weights``; the classifier's bias is
    clipped with the rest)."""
    return [model.layers[-1].W]


def train_run(
    model,
    data,
    lr,
    *,
    steps=150,
    batch_size=64,
    seed=0,
    clipping=None,
    trainable=None,
):
    """Train ``model`` on ``data`` with plain SGD at ``lr`` for ``steps`` steps, behind
    :class:`~bnbook.deep.AGC` (``clipping``, the classifier unclipped) if
    ``clipping`` is given; ``trainable(model)``, if given, returns the
    ``(parameter, gradient)`` pairs to train, the others staying as they are. Returns ``(test accuracy, training loss)`` at the end, the
    loss the mean of the last 50 steps; both NaN for a run that diverged. The test
    accuracy is measured after ``model.calibrate(data.x_train)``, which sets every
    batch norm's moving statistics to the training set's (after a short run, moving
    averages of momentum 0.99 still hold a good part of their initial values; a
    no-op for a network without batch norm)."""
    lr = check_real(lr, "lr", 0, open_low=True)
    optimizer = SGD(lr)
    if clipping is not None:
        optimizer = AGC(optimizer, clipping, unclipped=classifier_params(model))
    history = train_mlp(
        model,
        data,
        optimizer=optimizer,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        eval_every=min(50, steps),
        trainable=trainable,
    )
    loss = history["train_loss"][-1]
    if not (np.isfinite(loss) and loss < 10):  # finite but exploded counts as diverged
        return np.nan, np.nan
    model.calibrate(data.x_train)
    return float(accuracy(model, data.x_test, data.y_test)), float(loss)


def rate_sweep(method, rates, seeds, data, *, blocks=16, width=32, **protocol):
    """:func:`train_run` of ``method`` at each learning rate of ``rates`` and each
    seed: an array (rates, seeds, 2) of test accuracy and training loss, NaN where a
    run diverged. ``protocol`` goes to :func:`train_run` (``"NF + AGC"`` clips at
    0.01 unless it says ``clipping``); the data are the same for every run, the
    initialization and batches follow the seed."""
    if method == "NF + AGC":
        protocol.setdefault("clipping", 0.01)
    runs = np.full((len(rates), len(seeds), 2), np.nan)
    for i, lr in enumerate(rates):
        for j, seed in enumerate(seeds):
            model = make_network(method, blocks, width=width, seed=seed)
            runs[i, j] = train_run(model, data, lr, seed=seed, **protocol)
    return runs


def best_rate(rates, runs):
    """The learning rate of ``rates`` with the highest median test accuracy over
    the seeds, a diverged seed counting as 0, and that median; ``runs`` as
    :func:`rate_sweep` returns. Returns ``(None, 0.0)`` if every run diverged."""
    accuracy = np.nan_to_num(np.asarray(runs)[..., 0], nan=0.0)
    medians = np.median(accuracy, axis=1)
    if not np.any(medians > 0):
        return None, 0.0
    k = int(np.argmax(medians))
    return rates[k], float(medians[k])


def dense_weights(model):
    """The ``(parameter, gradient)`` pairs of the dense layers of ``model``, those
    inside its residual branches included: the weights and biases of Fixup's
    argument, without the scalar biases and multipliers it adds."""
    pairs = []
    for layer in model.layers:
        inner = layer.layers if isinstance(layer, Residual) else [layer]
        pairs += [pair for la in inner if isinstance(la, Dense) for pair in la.params()]
    return pairs


def stream_change(model, data, lr, *, steps=2, batch_size=64, seed=0, trainable=None):
    """How far ``steps`` steps of plain SGD at ``lr`` move the residual stream: the
    root mean square, over 256 test examples and the units, of the change in the last
    residual block's output, over the root mean square of that output at the start.
    ``trainable(model)`` gives the pairs to update (e.g. :func:`dense_weights`; by
    default all). The model is trained in place."""
    steps = check_int(steps, "steps", minimum=1)
    lr = check_real(lr, "lr", 0, open_low=True)
    blocks = [k for k, layer in enumerate(model.layers) if isinstance(layer, Residual)]
    if not blocks:
        raise ValueError("model has no residual block")
    x = data.x_test[:256]

    def stream():
        h = np.asarray(x, dtype=np.float64)
        for layer in model.layers[: blocks[-1] + 1]:
            h = layer(h, training=False)
        return h

    before = stream()
    batches = minibatches(len(data.x_train), batch_size, seed)
    for _ in range(steps):
        batch = next(batches)
        logits = model(data.x_train[batch], training=True)
        _, dlogits = softmax_cross_entropy(logits, data.y_train[batch])
        model.backward(dlogits)
        for p, g in model.params() if trainable is None else trainable(model):
            p -= lr * g
    change = stream() - before
    return float(np.sqrt(np.mean(change**2)) / np.sqrt(np.mean(before**2)))
