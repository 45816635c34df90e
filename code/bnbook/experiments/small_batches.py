"""Chapter 7b's small-batch grid: train a network, and measure what moved and why.

Batch norm at batch size 2 passes each unit's gradient scaled by
``eps / (var + eps)``, so the few units of lowest batch variance carry almost all of
the gradient to the dense layer before them (:func:`low_variance_share`); how far each
layer's weights then move is :func:`relative_change` of :func:`dense_weights` and of
:func:`scale_and_shift` before and after training (:func:`train_small`).
"""

import numpy as np

from bnbook.batchnorm import BatchNorm
from bnbook.checks import check_int
from bnbook.data import minibatches
from bnbook.layers import Dense
from bnbook.mlp import build_mlp, softmax_cross_entropy, state_kept, train_mlp
from bnbook.optim import SGD

__all__ = [
    "dense_weights",
    "low_variance_share",
    "relative_change",
    "scale_and_shift",
    "train_small",
]


def dense_weights(net):
    """A copy of each dense layer's ``W`` (n_in, n_out), in the network's order."""
    return [layer.W.copy() for layer in net.layers if isinstance(layer, Dense)]


def scale_and_shift(net):
    """(gamma, beta) of each normalization layer, as one vector per layer, shape (2 d,)."""
    return [
        np.concatenate([layer.gamma, layer.beta])
        for layer in net.layers
        if getattr(layer, "gamma", None) is not None
    ]


def relative_change(before, after):
    """``||after - before|| / ||before||``, array by array: a list of floats."""
    before, after = list(before), list(after)
    if len(before) != len(after):
        raise ValueError(
            f"before and after must hold as many arrays, got {len(before)} and "
            f"{len(after)}"
        )
    return [
        np.linalg.norm(a - b) / np.linalg.norm(b)
        for b, a in zip(before, after, strict=True)
    ]


def train_small(data, sizes, batch_size, seed, epochs, **model_args):
    """``build_mlp(sizes, seed=seed, **model_args)`` trained with plain SGD at the
    rate ``0.1 * batch_size / 32`` for ``epochs`` epochs of ``data.x_train``.

    Returns the network, its final test accuracy, and the :func:`relative_change` of
    each dense layer's weights and of each normalization's (gamma, beta).
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    steps = check_int(epochs, "epochs", minimum=1) * len(data.x_train) // batch_size
    net = build_mlp(sizes, seed=seed, **model_args)
    weights, affine = dense_weights(net), scale_and_shift(net)
    history = train_mlp(
        net,
        data,
        steps=steps,
        optimizer=SGD(0.1 * batch_size / 32),
        batch_size=batch_size,
        seed=seed,
        eval_every=steps,
    )
    return (
        net,
        history["test_accuracy"][-1],
        relative_change(weights, dense_weights(net)),
        relative_change(affine, scale_and_shift(net)),
    )


def low_variance_share(net, x, labels, batch_size, seed, lowest=6, n_batches=50):
    """The median, over ``n_batches`` training-mode batches of ``x`` (N, d), of the
    share of each batch-normalized dense layer's squared weight gradient carried by
    its ``lowest`` units of lowest batch variance: shape (layers,). The network's
    state is restored afterwards."""
    lowest = check_int(lowest, "lowest", minimum=1)
    n_batches = check_int(n_batches, "n_batches", minimum=1)
    shares = []
    batches = minibatches(len(x), batch_size, seed)
    with state_kept(net):
        for _, batch in zip(range(n_batches), batches, strict=False):
            logits = net(x[batch], training=True)
            net.backward(softmax_cross_entropy(logits, labels[batch])[1])
            row = []
            for dense, bn in zip(net.layers, net.layers[1:], strict=False):
                if isinstance(dense, Dense) and isinstance(bn, BatchNorm):
                    per_unit = (dense.dW**2).sum(axis=0)
                    smallest = np.argsort(bn.cache.var.ravel())[:lowest]
                    row.append(per_unit[smallest].sum() / per_unit.sum())
            shares.append(row)
    return np.median(shares, axis=0)
