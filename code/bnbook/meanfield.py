"""Gradient explosion at initialization in deep batch-normalized networks.

Yang et al. (2019) show with mean-field theory that in a deep fully connected network
with batch norm, at initialization, the squared norm of the gradient grows by a fixed
factor per layer towards the input, whatever the scale of the weights: for a linear
network with batches of B examples the factor is (B - 2) / (B - 3), and for a ReLU
network it tends to pi / (pi - 1) as B grows. This module holds the predictions and
the measurement; :func:`bnbook.mlp.build_mlp` provides the networks.
"""

import numpy as np

from bnbook.checks import check_int
from bnbook.mlp import state_kept

__all__ = ["gradient_growth_rate", "predicted_growth_rate", "weight_gradient_norms"]


def predicted_growth_rate(activation, batch_size=None):
    """Yang et al.'s per-layer growth factor of the squared gradient norm.

    ``"linear"``: (B - 2) / (B - 3), for ``batch_size`` B >= 4. ``"relu"``: the
    large-batch limit pi / (pi - 1), about 1.467 (``batch_size`` is not used).
    """
    if activation == "relu":
        return np.pi / (np.pi - 1)
    if activation != "linear":
        raise ValueError(f'activation must be "linear" or "relu", got {activation!r}')
    batch_size = check_int(batch_size, "batch_size", minimum=4)
    return (batch_size - 2) / (batch_size - 3)


def weight_gradient_norms(model, x, dy):
    """Squared norms ``||dL/dW_l||^2`` of every weight matrix, input side first.

    One training-mode pass of ``model`` (from :func:`bnbook.mlp.build_mlp`) on ``x``, with
    ``dy`` as the gradient at its output: the loss is the random linear function
    ``sum(output * dy)``. The moving statistics are left as they were.
    """
    dy = np.asarray(dy, dtype=np.float64)
    with state_kept(model):
        out = model(x, training=True)
        if dy.shape != out.shape:
            raise ValueError(
                f"dy must have the output's shape {out.shape}, got {dy.shape}"
            )
        model.backward(dy)
    return np.array([np.sum(g**2) for p, g in model.params() if p.ndim == 2])


def gradient_growth_rate(squared_norms, skip=5):
    """The per-layer growth factor of squared gradient norms towards the input.

    Fits ``log(squared_norms[l])`` linearly in ``l`` (input side first), leaving out
    ``skip`` layers at each end, where the first and last layers break the pattern,
    and returns ``exp(-slope)``. ``squared_norms`` may be (layers,) or (runs, layers):
    several runs are averaged in the log.
    """
    a = np.asarray(squared_norms, dtype=np.float64)
    if a.ndim not in (1, 2):
        raise ValueError(f"squared_norms must be 1-D or 2-D, got {a.ndim} dimensions")
    if np.any(~np.isfinite(a)) or np.any(a <= 0):
        raise ValueError("squared_norms must be finite and positive")
    log = np.log(a).reshape(-1, a.shape[-1]).mean(axis=0)
    skip = check_int(skip, "skip", minimum=0)
    layers = np.arange(len(log))[skip : len(log) - skip]
    if len(layers) < 2:
        raise ValueError(
            f"{len(log)} layers leave fewer than 2 to fit after skipping {skip} at each end"
        )
    slope = np.polyfit(layers, log[layers], 1)[0]
    return float(np.exp(-slope))
