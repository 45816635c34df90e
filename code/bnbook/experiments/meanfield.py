"""Gradient explosion at initialization in deep batch-normalized networks.

Yang et al. (2019) show with mean-field theory that in a deep fully connected network
with batch norm, at initialization, the squared norm of the gradient grows by a fixed
factor per layer towards the input, whatever the scale of the weights: for a linear
network with batches of B examples the factor is (B - 2) / (B - 3), and for a ReLU
network it is their Theorem 8 (eq. 25), written with the arc-cosine kernel, which
decreases to pi / (pi - 1) as B grows. This module holds the predictions and the
measurement; :func:`bnbook.mlp.build_mlp` provides the networks.
"""

import numpy as np

from bnbook.batchnorm import BatchNorm
from bnbook.checks import check_int, check_real
from bnbook.mlp import build_mlp, state_kept

__all__ = [
    "gradient_growth_rate",
    "predicted_growth_rate",
    "squared_gradient_norms",
    "weight_gradient_norms",
]


def _arccos_kernel(c):
    """Cho and Saul's degree-1 arc-cosine kernel, normalized so that J(1) = 1:
    J(c) = (sqrt(1 - c^2) + (pi - arccos c) c) / pi, for c in [-1, 1]."""
    return (np.sqrt(1 - c**2) + (np.pi - np.arccos(c)) * c) / np.pi


def _arccos_kernel_slope(c):
    """The derivative of :func:`_arccos_kernel`: J'(c) = (pi - arccos c) / pi."""
    return (np.pi - np.arccos(c)) / np.pi


def predicted_growth_rate(activation, batch_size):
    """Yang et al.'s per-layer growth factor of the squared gradient norm.

    For ``batch_size`` B >= 4. ``"linear"``: (B - 2) / (B - 3). ``"relu"``: Theorem 8,
    eq. (25) of Yang et al. (2019) with alpha = 1: with c = -1 / (B - 1) and the
    arc-cosine kernel J (:func:`_arccos_kernel`),

        (J'(c) + (B - 1) J(1)) / ((B - 3) (J(1) - J(c))) - 1 / (B - 3),

    about 3.08 at B = 4 and 1.79 at B = 8, decreasing to the large-batch limit
    pi / (pi - 1), about 1.467.
    """
    if activation not in ("linear", "relu"):
        raise ValueError(f'activation must be "linear" or "relu", got {activation!r}')
    b = check_int(batch_size, "batch_size", minimum=4)
    if activation == "linear":
        return (b - 2) / (b - 3)
    c = -1 / (b - 1)
    j1, jc, slope = _arccos_kernel(1.0), _arccos_kernel(c), _arccos_kernel_slope(c)
    return float((slope + (b - 1) * j1) / ((b - 3) * (j1 - jc)) - 1 / (b - 3))


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


def squared_gradient_norms(
    activation,
    batch_size,
    seeds,
    *,
    depth=50,
    width=256,
    shift=0.0,
    init_scale=None,
    **model_args,
):
    """Squared weight-gradient norms of fresh networks, shape (len(seeds), depth).

    For each seed ``s``: a network of ``depth`` dense layers of ``width`` units
    (:func:`bnbook.mlp.build_mlp` with ``activation`` and ``model_args``, e.g.
    ``norm=BatchNorm``), every batch norm's beta set to ``shift``, measured by
    :func:`weight_gradient_norms` on a batch of ``batch_size`` Gaussian inputs with a
    Gaussian output gradient, both drawn from ``[s, batch_size]``. ``init_scale`` is by
    default the variance-preserving one of the activation (1 for ReLU, sqrt(1/2) for
    linear layers, as He's standard deviation is sqrt(2 / n_in)). Input side first.
    """
    if activation not in ("linear", "relu"):
        raise ValueError(f'activation must be "linear" or "relu", got {activation!r}')
    batch_size = check_int(batch_size, "batch_size", minimum=2)
    depth = check_int(depth, "depth", minimum=1)
    width = check_int(width, "width", minimum=1)
    shift = check_real(shift, "shift")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    if init_scale is None:
        init_scale = 1.0 if activation == "relu" else np.sqrt(0.5)
    runs = []
    for s in seeds:
        rng = np.random.default_rng([s, batch_size])
        net = build_mlp(
            (width,) * (depth + 1),
            seed=s,
            activation=activation,
            init_scale=init_scale,
            **model_args,
        )
        for layer in net.layers:
            if isinstance(layer, BatchNorm):
                layer.beta[:] = shift
        x = rng.normal(size=(batch_size, width))
        runs.append(weight_gradient_norms(net, x, rng.normal(size=(batch_size, width))))
    return np.array(runs)
