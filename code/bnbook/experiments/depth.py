"""Chapter 10c's experiments: how deep each network of chapter 10b trains, at which
learning rate, and at what cost per step.

- :func:`trains` says whether a network trained on every seed, and
  :func:`largest_rate` finds the largest of a few learning rates at which it does,
  trying them from the largest down;
- :func:`without_stream_biases` trains a Fixup network without the scalar bias that
  each branch adds to the residual stream;
- :func:`step_seconds` times a training step, and :func:`summary_table` prints the
  chapter's table.

The networks and the training protocol are chapter 10b's:
:func:`bnbook.experiments.normalizer_free.make_network` and
:func:`~bnbook.experiments.normalizer_free.rate_sweep`.
"""

import time

import numpy as np

from bnbook.checks import check_int, check_real
from bnbook.deep import ScalarBias
from bnbook.experiments.normalizer_free import rate_sweep
from bnbook.layers import Residual
from bnbook.mlp import softmax_cross_entropy

__all__ = [
    "largest_rate",
    "step_seconds",
    "summary_table",
    "trains",
    "without_stream_biases",
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


def without_stream_biases(model):
    """The ``(parameter, gradient)`` pairs of ``model`` without the last scalar bias
    of each residual branch: in a Fixup network
    (:func:`bnbook.deep.build_resnet` ``kind="fixup"``) the bias added to the
    residual stream itself, whose update is the same in every block at the start,
    so that the updates of ``L`` blocks add up."""
    pairs = []
    for layer in model.layers:
        if not isinstance(layer, Residual):
            pairs += layer.params()
            continue
        biases = [sub for sub in layer.layers if isinstance(sub, ScalarBias)]
        if not biases:
            raise ValueError(
                "model must be a Fixup network: a branch has no scalar bias"
            )
        pairs += [
            p for sub in layer.layers if sub is not biases[-1] for p in sub.params()
        ]
    return pairs


def step_seconds(model, data, *, batch_size=64, steps=10, repeats=3):
    """The CPU time of one training step of ``model`` (forward, backward and a plain
    SGD step at a tiny rate), the fastest of ``repeats`` runs of ``steps`` steps, in
    this process's CPU time (load from other processes slows it less)."""
    steps = check_int(steps, "steps", minimum=1)
    repeats = check_int(repeats, "repeats", minimum=1)
    x, y = data.x_train[:batch_size], data.y_train[:batch_size]
    best = np.inf
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(steps):
            _, dlogits = softmax_cross_entropy(model(x, training=True), y)
            model.backward(dlogits)
            for p, g in model.params():
                p -= 1e-6 * g
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
