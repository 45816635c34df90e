"""The measurements of chapter 10, part 1: deep networks with and without batch norm.

- :func:`rank_and_gradients`: the stable rank of a batch's representation at the input
  of every dense layer of a deep plain network at initialization, and the ratio of the
  first to the last hidden layer's weight-gradient norm (Daneshmand et al., 2020; the
  gradient explosion of chapter 7);
- :func:`variance_profile`: the variance of the residual stream and of each branch
  against depth at initialization (De & Smith, 2020), from
  :func:`bnbook.deep.signal_propagation`;
- :func:`train_resnets`: deep residual networks of each kind of
  :func:`bnbook.deep.build_resnet` trained for a fixed number of steps at several
  learning rates, one run per seed;
- :func:`preactivation_zero_gamma`: the pitfall of a zero ``gamma`` on a batch norm
  that feeds a ReLU.
"""

import numpy as np

from bnbook.batchnorm import BatchNorm
from bnbook.checks import check_int
from bnbook.deep import build_resnet, signal_propagation, stable_rank
from bnbook.experiments.meanfield import weight_gradient_norms
from bnbook.layers import Dense, Residual
from bnbook.mlp import accuracy, build_mlp, layer_inputs, train_mlp
from bnbook.optim import SGD

__all__ = [
    "preactivation_zero_gamma",
    "rank_and_gradients",
    "train_resnets",
    "variance_profile",
]


def rank_and_gradients(activation, seeds, *, batch_norm, depth=50, width=128, batch=32):
    """Stable ranks and gradient ratios of fresh plain networks, one per seed.

    For each seed ``s``: ``depth`` hidden dense layers of ``width`` units
    (:func:`bnbook.mlp.build_mlp` with ``activation``, batch norm after each if
    ``batch_norm``, the variance-preserving initialization of the activation) and a
    head of 10 units, on a batch of ``batch`` Gaussian inputs of ``width`` features
    drawn from ``[s, batch]``, in training mode. Returns a dict:

    - ``"rank"``: (len(seeds), depth + 1), the stable rank of the input to each dense
      layer, the batch itself first (column ``l`` is the output of ``l`` hidden
      layers);
    - ``"gradient_ratio"``: (len(seeds),), ``||dL/dW_1|| / ||dL/dW_depth||``, the first
      over the last hidden layer's weight-gradient norm, for a random linear loss with
      a Gaussian gradient at the output (as in chapter 7).
    """
    depth, width = check_int(depth, "depth", 1), check_int(width, "width", 1)
    batch = check_int(batch, "batch", 2)
    scale = 1.0 if activation == "relu" else np.sqrt(0.5)
    ranks, ratios = [], []
    for s in seeds:
        net = build_mlp(
            (width,) * (depth + 1) + (10,),
            norm=BatchNorm if batch_norm else None,
            activation=activation,
            init_scale=scale,
            seed=s,
        )
        rng = np.random.default_rng([s, batch])
        x = rng.normal(size=(batch, width))
        inputs = layer_inputs(net, x, training=True)
        ranks.append(
            [
                stable_rank(h)
                for h, layer in zip(inputs, net.layers, strict=True)
                if isinstance(layer, Dense)
            ]
        )
        norms = weight_gradient_norms(net, x, rng.normal(size=(batch, 10)))
        ratios.append(np.sqrt(norms[0] / norms[depth - 1]))
    return {"rank": np.array(ranks), "gradient_ratio": np.array(ratios)}


def variance_profile(kind, seeds, *, blocks=50, batch=128, width=64):
    """:func:`bnbook.deep.signal_propagation` of fresh residual networks of ``kind``,
    one per seed, on a batch of ``batch`` standard Gaussian inputs drawn from
    ``[s, batch]``, in training mode (batch statistics, as at the first step).

    Returns a dict of arrays (len(seeds), blocks): ``"stream"``, the variance of the
    residual stream after each block (averaged over the units), and ``"branch"``, the
    variance of that block's branch output.
    """
    blocks = check_int(blocks, "blocks", 1)
    stream, branch = [], []
    for s in seeds:
        net = build_resnet(blocks, kind=kind, width=width, n_in=width, seed=s)
        x = np.random.default_rng([s, batch]).normal(size=(batch, width))
        rows = signal_propagation(net, x, training=True)
        stream.append(rows[:, 1])
        branch.append(rows[:, 2])
    return {"stream": np.array(stream), "branch": np.array(branch)}


def train_resnets(data, kinds, lrs, seeds, *, blocks=16, steps=100, eval_every=25):
    """Train a residual network of ``blocks`` blocks of each of ``kinds`` (width 64,
    :func:`bnbook.deep.build_resnet`) at each learning rate of ``lrs`` with plain SGD
    and batches of 60 digits, for ``steps`` steps, once per seed (the seed of the
    initialization and of the batches).

    Returns a dict ``{(kind, lr): history}`` where ``history`` holds, as
    :func:`bnbook.mlp.train_mlp` returns them, ``step`` (the checkpoints, every
    ``eval_every`` steps) and, with one row per seed, ``train_loss`` (the mean
    training loss since the previous checkpoint) and ``test_accuracy``; and
    ``final_accuracy`` (one per seed), the test accuracy after training with every
    batch norm's moving statistics replaced by the statistics of the whole training
    set (``calibrate``): after a short run, moving averages of momentum 0.99 still
    hold a good part of their initial values. A run that diverged has NaN from there
    on, and a final accuracy of NaN.
    """
    blocks, steps = check_int(blocks, "blocks", 1), check_int(steps, "steps", 1)
    results = {}
    for kind in kinds:
        for lr in lrs:
            runs, final = [], []
            for s in seeds:
                model = build_resnet(blocks, kind=kind, seed=s)
                runs.append(
                    train_mlp(
                        model,
                        data,
                        optimizer=SGD(lr),
                        steps=steps,
                        seed=s,
                        eval_every=eval_every,
                    )
                )
                if np.isfinite(runs[-1]["train_loss"][-1]):
                    model.calibrate(data.x_train)
                    final.append(accuracy(model, data.x_test, data.y_test))
                else:
                    final.append(np.nan)
            results[kind, lr] = {
                "step": runs[0]["step"],
                "train_loss": np.array([r["train_loss"] for r in runs]),
                "test_accuracy": np.array([r["test_accuracy"] for r in runs]),
                "final_accuracy": np.array(final),
            }
    return results


def preactivation_zero_gamma(blocks, *, seed=0, **model_args):
    """The pre-activation network of :func:`bnbook.deep.build_resnet` (``kind="bn"``,
    each branch ``BN ReLU Dense BN ReLU Dense``) with the ``gamma`` of each branch's
    *second* batch norm, the one that feeds a ReLU, set to 0: a misplaced zero-gamma
    initialization. The batch norm then outputs ``beta = 0`` for every example, the
    ReLU's gradient there is 0, and no parameter of the branch ever receives a
    gradient."""
    model = build_resnet(blocks, kind="bn", seed=seed, **model_args)
    for layer in model.layers:
        if isinstance(layer, Residual):
            second = [sub for sub in layer.layers if isinstance(sub, BatchNorm)][1]
            second.gamma[...] = 0.0
    return model
