"""Chapter 10c's experiments: how deep each network of chapter 10b trains, at which
learning rate, and at what cost per step.

- :func:`trains` says whether a network trained on every seed, and
  :func:`largest_rate` finds the largest of a few learning rates at which it does,
  trying them from the largest down;
- :func:`without_bias` trains a Fixup network without one scalar bias per branch (the
  one it adds to the residual stream, or as a control another one), and
  :func:`slower_scalars` trains its scalars at a smaller rate, as Fixup's official
  code does;
- :func:`step_seconds` times a training step, and :func:`summary_table` prints the
  chapter's table.

The networks and the training protocol are chapter 10b's:
:func:`bnbook.experiments.normalizer_free.make_network` and
:func:`~bnbook.experiments.normalizer_free.rate_sweep`.
"""

import time

import numpy as np

from bnbook.checks import check_int, check_real
from bnbook.deep import ScalarBias, Scale
from bnbook.experiments.normalizer_free import rate_sweep
from bnbook.layers import Residual
from bnbook.mlp import softmax_cross_entropy
from bnbook.optim import SGD

__all__ = [
    "largest_rate",
    "step_seconds",
    "summary_table",
    "slower_scalars",
    "trains",
    "without_bias",
]

#: The test accuracy above which a run counts as trained: five times chance.
THRESHOLD = 0.5


def trains(runs, threshold=THRESHOLD):
    """Whether every seed of ``runs`` (seeds, 2), test accuracy and training loss as
    :func:`~bnbook.experiments.normalizer_free.rate_sweep` gives them at one rate,
    reached a test accuracy above ``threshold``; a diverged seed (NaN) did not."""
    threshold = check_real(threshold, "threshold", 0, 1)
    accuracy = np.nan_to_num(np.asarray(runs, dtype=float)[..., 0], nan=0.0)
    return bool(np.all(accuracy > threshold))


def largest_rate(method, blocks, rates, seeds, data, **protocol):
    """Train ``method`` with ``blocks`` blocks at each of ``rates`` from the largest
    down, until it :func:`trains` on every seed of ``seeds``.

    Returns ``{rate: runs}`` for every rate tried, ``runs`` (seeds, 2) as
    :func:`~bnbook.experiments.normalizer_free.rate_sweep` gives them: the last entry
    is the largest rate that trained, or the smallest rate if none did. ``protocol``
    goes to ``rate_sweep``."""
    if len(rates) == 0:
        raise ValueError("rates must hold at least one learning rate, got none")
    tried = {}
    for lr in sorted(rates, reverse=True):
        tried[lr] = rate_sweep(method, (lr,), seeds, data, blocks=blocks, **protocol)[0]
        if trains(tried[lr]):
            break
    return tried


def without_bias(position):
    """A ``trainable`` for :func:`~bnbook.experiments.normalizer_free.train_run`: the
    ``(parameter, gradient)`` pairs of a Fixup network
    (:func:`bnbook.deep.build_resnet` ``kind="fixup"``) without the scalar bias at
    ``position`` in each residual branch, which stays where it is. ``-1`` is the last
    one, added to the residual stream itself: it takes the same step in every block at
    the second step of training, so that the steps of ``L`` blocks add up. ``0``, the
    first, at the branch's input, freezes as many scalars, none on the stream."""
    position = check_int(position, "position")

    def pairs(model):
        out = []
        for layer in model.layers:
            if not isinstance(layer, Residual):
                out += layer.params()
                continue
            biases = [sub for sub in layer.layers if isinstance(sub, ScalarBias)]
            if not biases:
                raise ValueError(
                    "model must be a Fixup network: a branch has no scalar bias"
                )
            frozen = biases[position]
            out += [
                p for sub in layer.layers if sub is not frozen for p in sub.params()
            ]
        return out

    return pairs


def slower_scalars(factor):
    """A ``trainable`` for :func:`~bnbook.experiments.normalizer_free.train_run`: every
    pair of the model, with the gradients of the scalar biases and multipliers of its
    residual branches multiplied by ``factor``, which for plain SGD trains them at
    ``factor`` times the learning rate. Fixup's official training scripts give every
    bias and multiplier a tenth of the base rate (``factor=0.1``)."""
    factor = check_real(factor, "factor", 0, 1, open_low=True)

    def pairs(model):
        out = []
        for layer in model.layers:
            inner = layer.layers if isinstance(layer, Residual) else [layer]
            for sub in inner:
                slow = isinstance(sub, ScalarBias | Scale)
                out += [(p, g * factor if slow else g) for p, g in sub.params()]
        return out

    return pairs


def step_seconds(model, data, *, optimizer=None, batch_size=64, steps=10, repeats=3):
    """The CPU time of one training step of ``model``: forward, backward and a step of
    ``optimizer`` (by default plain SGD at a tiny rate; give the one it trains with,
    e.g. :class:`~bnbook.deep.AGC`, to time its work too), the fastest of ``repeats``
    runs of ``steps`` steps, in this process's CPU time (load from other processes
    slows it less)."""
    steps = check_int(steps, "steps", minimum=1)
    repeats = check_int(repeats, "repeats", minimum=1)
    if optimizer is None:
        optimizer = SGD(1e-6)
    elif not callable(getattr(optimizer, "step", None)):
        raise TypeError(
            "optimizer must have a step(params) method, e.g. bnbook.optim.SGD(0.1), "
            f"got {type(optimizer).__name__}"
        )
    x, y = data.x_train[:batch_size], data.y_train[:batch_size]
    best = np.inf
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(steps):
            _, dlogits = softmax_cross_entropy(model(x, training=True), y)
            model.backward(dlogits)
            optimizer.step(model.params())
        best = min(best, (time.process_time() - start) / steps)
    return best


def summary_table(rows, depths):
    """A plain-text table, one line per entry of ``rows``: dicts with the keys
    ``method``, ``depth`` (the deepest of ``depths`` at which it trained, None if
    none), ``rates`` (``{depth: the largest rate that trained there, or None}``, the
    depths not tried left out), ``accuracy`` (its median test accuracy at the middle
    depth) and ``params`` (its number of parameters there)."""
    middle = depths[len(depths) // 2]
    head = f"{'network':14s} {'depth reached':>13s} " + " ".join(
        f"{f'rate at {d}':>10s}" for d in depths
    )
    head += f" {f'accuracy at {middle}':>14s} {'parameters':>10s}"
    lines = [head, "-" * len(head)]
    for row in rows:
        depth = "-" if row["depth"] is None else f"{row['depth']} blocks"
        line = f"{row['method']:14s} {depth:>13s}"
        for d in depths:
            if d not in row["rates"]:
                rate = "not tried"
            else:
                rate = "none" if row["rates"][d] is None else f"{row['rates'][d]:g}"
            line += f" {rate:>10s}"
        lines.append(line + f" {row['accuracy']:14.3f} {row['params']:10d}")
    return "\n".join(lines)
