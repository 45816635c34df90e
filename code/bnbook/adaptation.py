"""Batch norm after training: statistics for test data that differ from the training
data, and test-time entropy minimization (chapter 11).

- :func:`predict_adapted` normalizes each batch norm's input with the test batch's own
  statistics, mixed with the training (source) statistics by a prior strength ``N``
  as Schneider et al. (2020) do: ``N = 0`` is AdaBN (Li et al.), the test batch's
  statistics alone; ``N = inf`` is ordinary inference;
- :func:`softmax_entropy` is the loss TENT minimizes (Wang et al., 2021), and
  :func:`tent` adapts a copy of a network by it, updating only batch norm's gamma and
  beta.
"""

import copy
import math

import numpy as np

from bnbook.batchnorm import BatchNorm, batch_norm_inference
from bnbook.checks import check_bool, check_int, check_positive, check_real
from bnbook.layers import Residual, Sequential
from bnbook.mlp import state_kept
from bnbook.optim import SGD

__all__ = ["batch_norms", "predict_adapted", "softmax_entropy", "tent"]


def batch_norms(model):
    """The :class:`~bnbook.batchnorm.BatchNorm` layers of ``model``, in order."""
    if isinstance(model, BatchNorm):
        return [model]
    if isinstance(model, Sequential):
        return [bn for layer in model.layers for bn in batch_norms(layer)]
    return []


def _mixed(bn, x, prior):
    """The statistics batch norm ``bn`` normalizes ``x`` (n, C) with: the source's
    (its moving statistics) and the batch's, weighted N/(N+n) and n/(N+n)."""
    n = len(x)
    source = 1.0 if math.isinf(prior) else prior / (prior + n)
    mu = source * bn.moving_mean + (1 - source) * x.mean(axis=0)
    var = source * bn.moving_variance + (1 - source) * x.var(axis=0)
    return mu, var


def _forward(layer, x, prior):
    if isinstance(layer, BatchNorm):
        mu, var = _mixed(layer, x, prior)
        return batch_norm_inference(
            x, layer.gamma, layer.beta, mu, var, epsilon=layer.epsilon
        )
    if isinstance(layer, Sequential):
        y = x
        for sub in layer.layers:
            y = _forward(sub, y, prior)
        return x + y if isinstance(layer, Residual) else y
    return layer(x, training=False)


def predict_adapted(model, x, prior):
    """The outputs of ``model`` on the batch ``x`` (n, features), each batch norm
    normalizing with statistics mixed from its moving statistics (the source's) and
    the batch's own, with prior strength ``prior`` = N >= 0 (Schneider et al.)::

        mu = N / (N + n) * moving_mean + n / (N + n) * batch mean

    and the same for the variance (the batch's biased variance). ``prior=0`` uses the
    batch's statistics alone (AdaBN); ``prior=np.inf`` is :meth:`model(x)`'s
    inference. Each layer sees the output of the adapted layers before it. The model
    is not changed. Its batch norms must normalize the last axis of 2-D inputs.
    """
    if not (isinstance(prior, float | np.floating) and prior == math.inf):
        prior = check_real(prior, "prior", 0)  # infinity allowed: the source's alone
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 1:
        raise ValueError(f"x must be a batch of shape (n, features), got {x.shape}")
    for bn in batch_norms(model):
        if bn.axis not in (-1, 1):
            raise ValueError(f"each batch norm must have axis -1, got {bn.axis}")
    return _forward(model, x, prior)


def softmax_entropy(logits):
    """Mean over the batch of the entropy H = -sum_c p_c log p_c of the softmax of
    ``logits`` (N, K). Returns ``(H, dlogits)``, the gradient already divided by N::

        dH / dz_c = -p_c (log p_c + H)   for each example
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, K), got {logits.shape}")
    shifted = logits - logits.max(axis=1, keepdims=True)  # exp cannot overflow
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    entropy = -(p * log_p).sum(axis=1, keepdims=True)
    return float(entropy.mean()), -p * (log_p + entropy) / len(logits)


def tent(model, x, *, lr, batch_size=64, passes=1, momentum=0.9, shuffle=True, seed=0):
    """A copy of ``model`` adapted to the unlabeled test inputs ``x`` by TENT (Wang et
    al.): for each batch, a forward pass in training mode (the batch's statistics),
    the gradient of :func:`softmax_entropy`, and one step of SGD with ``momentum`` on
    batch norm's gamma and beta alone. ``passes`` times over ``x`` in batches of
    ``batch_size``, shuffled by ``seed`` (a last, smaller batch is dropped). The
    moving statistics of the copy are left as they were; ``model`` is not changed.
    """
    lr = check_positive(lr, "lr")
    check_bool(shuffle, "shuffle")
    passes = check_int(passes, "passes", minimum=1)
    x = np.asarray(x, dtype=np.float64)
    batch_size = check_int(batch_size, "batch_size", minimum=2)
    if batch_size > len(x):
        raise ValueError(
            f"batch_size must be at most the {len(x)} inputs, got {batch_size}"
        )
    adapted = copy.deepcopy(model)
    layers = batch_norms(adapted)
    if not layers:
        raise ValueError(
            "model has no batch norm whose gamma and beta TENT could adapt"
        )
    optimizer = SGD(lr, momentum)
    rng = np.random.default_rng(check_int(seed, "seed"))
    with state_kept(adapted):
        for _ in range(passes):
            order = rng.permutation(len(x)) if shuffle else np.arange(len(x))
            for start in range(0, len(x) - batch_size + 1, batch_size):
                logits = adapted(x[order[start : start + batch_size]], training=True)
                adapted.backward(softmax_entropy(logits)[1])
                optimizer.step([pair for bn in layers for pair in bn.params()])
    return adapted
