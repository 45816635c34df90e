"""Chapter 9's experiments: ghost batches, decay on γ and β, dropout before batch
norm, and training only γ and β.

- :func:`train_ghost` trains the book's MLP with ghost batch norm and measures its
  generalization gap, with moving and with population statistics;
- :func:`scaled_loss` and :func:`not_batch_norm`: γ and β of one batch norm scaled,
  and every parameter but batch norm's (the decay's list when γ and β are excluded);
- :func:`dropout_mlp` and :func:`variance_shift`: Li et al.'s variance shift, measured
  and predicted, ``Var_train(z_j) = Var_inf(z_j) + (1/p - 1) Σ_i W_ij² (c_i² + v_i)``;
- :func:`batch_norm_params` and :func:`disabled`: Frankle et al.'s networks in which
  only batch norm's parameters train, and the share of units they switch off.
"""

import numpy as np

from bnbook.batchnorm import BatchNorm
from bnbook.checks import check_int, check_real
from bnbook.data import load_digits_split
from bnbook.ghost import GhostBatchNorm
from bnbook.layers import Dense, Dropout, ReLU, Sequential
from bnbook.mlp import (
    accuracy,
    build_mlp,
    layer_inputs,
    loss_and_grads,
    softmax_cross_entropy,
    train_mlp,
)
from bnbook.optim import SGD

__all__ = [
    "batch_norm_params",
    "disabled",
    "dropout_mlp",
    "ghost_measures",
    "not_batch_norm",
    "scaled_loss",
    "train_ghost",
    "variance_shift",
]

PLACES = ("none", "before", "after")


def ghost_measures(model, data):
    """Generalization gap and test accuracy (inference mode), and the training loss
    in inference mode, over the whole training set: like with like for every ghost size."""
    gap = accuracy(model, data.x_train, data.y_train) - accuracy(
        model, data.x_test, data.y_test
    )
    train_loss = softmax_cross_entropy(model(data.x_train), data.y_train)[0]
    return gap, accuracy(model, data.x_test, data.y_test), train_loss


def train_ghost(ghost_size, seed, steps=200):
    """The book's MLP with ``GhostBatchNorm(ghost_size)``, trained on the digits
    (``seed``'s split) for ``steps`` steps of SGD at 0.5 in batches of 256.

    Returns 7 floats: the :func:`ghost_measures` with the moving statistics, then
    with population statistics, and the first batch norm's moving variance over its
    input's variance (median of the units).
    """
    steps = check_int(steps, "steps", minimum=1)
    data = load_digits_split(seed=seed)
    model = build_mlp(norm=lambda: GhostBatchNorm(ghost_size), seed=seed)
    train_mlp(
        model,
        data,
        steps=steps,
        optimizer=SGD(0.5),
        batch_size=256,
        seed=seed,
        eval_every=steps,
    )
    first_input = layer_inputs(model, data.x_train)[1]
    shrink = np.median(model.layers[1].moving_variance / first_input.var(axis=0))
    moving = ghost_measures(model, data)
    model.calibrate(data.x_train)  # moving statistics := the training set's
    return (*moving, *ghost_measures(model, data), shrink)


def scaled_loss(model, x, labels, layer, units, factor=3.7):
    """The training-mode loss on ``x`` (N, d) with ``units`` (an index or a slice) of
    the gamma and beta of batch norm ``model.layers[layer]`` multiplied by ``factor``;
    the model keeps its parameters."""
    bn = model.layers[layer]
    if not isinstance(bn, BatchNorm):
        raise TypeError(
            f"layer must index a BatchNorm, got {type(bn).__name__} at {layer}"
        )
    at = [p.copy() for p, _ in model.params()]
    for k, (p, _) in enumerate(model.params()):
        if p is bn.gamma or p is bn.beta:
            at[k][units] *= factor
    return loss_and_grads(model, x, labels, at=at)[0]


def not_batch_norm(model):
    """Every parameter array of ``model`` but those of its batch norms."""
    return [
        p
        for layer in model.layers
        if not isinstance(layer, BatchNorm)
        for p, _ in layer.params()
    ]


def dropout_mlp(where, seed, keep=0.5, width=100):
    """Dense-BN-ReLU twice (the first of ``width`` units) and an output layer, dropout
    "before" the second batch norm's dense layer, "after" the last block, or "none";
    64 inputs, 10 outputs."""
    if where not in PLACES:
        raise ValueError(f"where must be one of {PLACES}, got {where!r}")
    width = check_int(width, "width", minimum=1)
    rng, masks = np.random.default_rng(seed), np.random.default_rng([seed, 2])
    first = [Dense(64, width, rng, bias=False), BatchNorm(), ReLU()]
    second = [Dense(width, 100, rng, bias=False), BatchNorm(), ReLU()]
    drop = [Dropout(keep, masks)]
    middle = drop if where == "before" else []
    end = drop if where == "after" else []
    return Sequential([*first, *middle, *second, *end, Dense(100, 10, rng)])


def variance_shift(model, x, keep=0.5):
    """Medians over the units after the dropout: Var_train / Var_inf measured and
    predicted, and Var_inf over its diagonal terms (what the covariances add).

    ``model``'s first :class:`~bnbook.layers.Dropout` must be followed by a dense
    layer; ``x`` (N, d) is the network's input. Returns three floats.
    """
    keep = check_real(keep, "keep", 0, 1, open_low=True)
    layers = model.layers
    k = next((i for i, la in enumerate(layers) if isinstance(la, Dropout)), None)
    if k is None or k + 1 == len(layers) or not isinstance(layers[k + 1], Dense):
        raise ValueError("model must have a Dropout followed by a Dense layer")
    a = layer_inputs(model, x)[k]  # the dropout's input, (N, d)
    dense = model.layers[k + 1]
    var_inf = dense(a).var(axis=0)
    var_train = dense(model.layers[k](a, training=True)).var(axis=0)
    extra = (1 / keep - 1) * (
        dense.W**2 * (a.mean(axis=0) ** 2 + a.var(axis=0))[:, None]
    )
    diagonal = (dense.W**2 * a.var(axis=0)[:, None]).sum(axis=0)
    ratios = var_train / var_inf, 1 + extra.sum(axis=0) / var_inf, var_inf / diagonal
    return tuple(np.median(r) for r in ratios)


def batch_norm_params(model):
    """The (parameter, gradient) pairs of ``model``'s batch norms: gamma and beta."""
    return [
        pair
        for layer in model.layers
        if isinstance(layer, BatchNorm)
        for pair in layer.params()
    ]


def disabled(model, x):
    """The share of batch-normalized units that are (nearly) off: |gamma| < 0.05, and
    ReLU output 0 on more than 99 % of ``x`` (N, d). Two floats in [0, 1]."""
    inputs, small, off = layer_inputs(model, x), [], []
    for k, layer in enumerate(model.layers):
        if isinstance(layer, BatchNorm):
            small.append(np.abs(layer.gamma) < 0.05)
            off.append(np.mean(layer(inputs[k]) <= 0, axis=0) > 0.99)
    if not small:
        raise ValueError("model must have a BatchNorm layer")
    return np.mean(np.concatenate(small)), np.mean(np.concatenate(off))
