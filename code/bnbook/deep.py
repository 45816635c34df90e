"""Deep networks with and without batch norm (chapter 10).

Layers, in the one interface of :mod:`bnbook.layers`:

- :class:`Scale`: ``y = a * x`` with one scalar ``a``, trained or fixed: SkipInit's
  gate (``a = 0`` at the start), Fixup's multiplier (``a = 1``), and the fixed
  ``alpha`` and ``1 / beta`` of a normalizer-free block;
- :class:`ScalarBias`: ``y = x + b`` with one trained scalar ``b`` (Fixup's biases);
- :class:`WSDense`: a dense layer with scaled weight standardization (Brock et al.).

Networks, built by :func:`build_resnet` (residual, ``kind`` picks the branch) and
measured with :func:`stable_rank` and :func:`signal_propagation`; :class:`AGC`
clips gradients unit-wise (Brock et al.'s adaptive gradient clipping) before any
optimizer's step.
"""

import numpy as np

from bnbook.batchnorm import BatchNorm
from bnbook.checks import as_float_array, check_bool, check_int, check_real
from bnbook.layers import Dense, Layer, ReLU, Residual, Sequential
from bnbook.mlp import state_kept

__all__ = [
    "AGC",
    "KINDS",
    "RELU_GAIN",
    "ScalarBias",
    "Scale",
    "WSDense",
    "build_resnet",
    "clip_unitwise",
    "signal_propagation",
    "stable_rank",
    "unitwise_norm",
]

#: The gain that makes a weight-standardized layer after a ReLU keep the variance of
#: a unit Gaussian: ReLU(z), z ~ N(0, 1), has variance (1 - 1/pi) / 2.
RELU_GAIN = float(np.sqrt(2.0 / (1.0 - 1.0 / np.pi)))


class Scale(Layer):
    """``y = a * x`` for one scalar ``a`` (starting at ``value``); trained if
    ``trainable``, else a constant of the architecture."""

    def __init__(self, value=0.0, trainable=True):
        self.a = np.array([check_real(value, "value")])
        self.trainable = check_bool(trainable, "trainable")
        self.da = None

    def __call__(self, x, training=False):  # pragma: no mutate (training unused)
        self._x = x
        return self.a[0] * x

    def backward(self, dy):
        self.da = np.array([np.sum(dy * self._x)])
        return self.a[0] * dy

    def params(self):
        return [(self.a, self.da)] if self.trainable else []


class ScalarBias(Layer):
    """``y = x + b`` for one trained scalar ``b``, starting at 0 (Fixup)."""

    def __init__(self):
        self.b = np.zeros(1)
        self.db = None

    def __call__(self, x, training=False):  # pragma: no mutate (training unused)
        return x + self.b[0]

    def backward(self, dy):
        self.db = np.array([np.sum(dy)])
        return dy

    def params(self):
        return [(self.b, self.db)]


class WSDense(Layer):
    """A dense layer with scaled weight standardization (Brock et al., 2021).

    Each unit ``j`` uses its standardized column, over its ``N = n_in`` inputs::

        W_hat[:, j] = gain * g[j] * (W[:, j] - mu_j) / sqrt(N * var_j + epsilon)

    so that ``x @ W_hat`` has the variance of ``gain**2`` times a unit's input
    variance, whatever ``W`` is: ``gain`` is a constant (:data:`RELU_GAIN` after a
    ReLU), ``g`` (n_out,) a trained gain starting at 1. ``W`` is (n_in, n_out),
    Gaussian at the start; ``b`` (n_out,) starts at 0.
    """

    def __init__(self, n_in, n_out, rng, gain=RELU_GAIN, epsilon=1e-4):
        n_in, n_out = check_int(n_in, "n_in", 1), check_int(n_out, "n_out", 1)
        self.W = rng.normal(0.0, 1.0, size=(n_in, n_out))
        self.g, self.b = np.ones(n_out), np.zeros(n_out)
        self.gain = check_real(gain, "gain", 0, open_low=True)
        self.epsilon = check_real(epsilon, "epsilon", 0, open_low=True)
        self.dW = self.dg = self.db = None

    def standardized(self):
        """``(W_hat, centred W, 1 / sqrt(N var + epsilon))``, the last two per unit."""
        centred = self.W - self.W.mean(axis=0)
        inv = 1.0 / np.sqrt((centred * centred).sum(axis=0) + self.epsilon)  # N var
        return self.gain * self.g * centred * inv, centred, inv

    def __call__(self, x, training=False):  # pragma: no mutate (training unused)
        self._x = x
        self._W_hat, self._centred, self._inv = self.standardized()
        return x @ self._W_hat + self.b

    def backward(self, dy):
        dW_hat = self._x.T @ dy
        self.db = dy.sum(axis=0)
        u = self._centred * self._inv  # the standardized column, before the gains
        self.dg = self.gain * (dW_hat * u).sum(axis=0)
        du = self.gain * self.g * dW_hat
        # the gradient through (W - mu) / sqrt(N var + eps), column by column: as
        # batch norm's backward pass, with N var = sum of the squared deviations
        du_mean = du.mean(axis=0)
        projection = (du * self._centred).sum(axis=0) * self._inv**2
        self.dW = self._inv * (du - du_mean - self._centred * projection)
        return dy @ self._W_hat.T

    def params(self):
        return [(self.W, self.dW), (self.g, self.dg), (self.b, self.db)]


# ---------------------------------------------------------------- the networks

#: The branches that :func:`build_resnet` builds, by name.
KINDS = ("bn", "none", "skipinit", "zero_gamma", "fixup", "nf")


def _bn(width, gamma=1.0):
    bn = BatchNorm()
    bn.build(width, np.float64)
    bn.gamma[:] = gamma
    return bn


def _branch(kind, width, rng, *, blocks, alpha, beta):
    """The residual branch of one block (two dense layers), for each kind."""
    dense = lambda bias=True, scale=1.0: Dense(width, width, rng, bias, scale)  # noqa: E731
    if kind == "bn":  # pre-activation, as He et al.'s v2
        return [_bn(width), ReLU(), dense(False), _bn(width), ReLU(), dense(False)]
    if kind == "none":
        return [ReLU(), dense(), ReLU(), dense()]
    if kind == "skipinit":
        return [ReLU(), dense(), ReLU(), dense(), Scale(0.0)]
    if kind == "zero_gamma":  # Goyal et al.: the block's last batch norm starts at 0
        return [dense(False), _bn(width), ReLU(), dense(False), _bn(width, 0.0)]
    if kind == "fixup":  # m = 2 layers per branch: scaled by L^(-1/(2m-2)) = L^(-1/2)
        last = dense(False)
        last.W[...] = 0.0
        return [
            ScalarBias(),
            dense(False, blocks**-0.5),
            ScalarBias(),
            ReLU(),
            ScalarBias(),
            last,
            Scale(1.0),
            ScalarBias(),
        ]
    # "nf": h + alpha * f(h / beta), f weight-standardized
    return [
        Scale(1.0 / beta, trainable=False),
        ReLU(),
        WSDense(width, width, rng),
        ReLU(),
        WSDense(width, width, rng),
        Scale(alpha, trainable=False),
    ]


def build_resnet(blocks, *, kind, width=64, n_in=64, n_classes=10, alpha=0.2, seed=0):
    """A residual network of dense layers::

        Dense(n_in -> width)  [block] * blocks  [BN] ReLU  Dense(width -> n_classes)

    the first layer scaled to give the stream unit variance on standardized inputs,

    each block ``h + f(h)``, with the branch ``f`` of ``kind``:

    - ``"bn"``: ``BN ReLU Dense BN ReLU Dense`` (pre-activation);
    - ``"none"``: ``ReLU Dense ReLU Dense``, no normalization;
    - ``"skipinit"``: the same, times a trained scalar that starts at 0 (De & Smith);
    - ``"zero_gamma"``: ``Dense BN ReLU Dense BN``, the last ``gamma`` at 0 (Goyal
      et al.);
    - ``"fixup"``: scalar biases before each layer, the first dense layer's weights
      scaled by ``blocks ** -0.5``, the last at 0, a scalar multiplier (Zhang et al.);
      the classifier's weights start at 0 too;
    - ``"nf"``: ``h + alpha * f(h / beta_l)`` with ``f = ReLU WSDense ReLU WSDense``
      and ``beta_l = sqrt(1 + l alpha^2)``, the expected standard deviation of the
      stream at block ``l`` (Brock et al.).

    The batch norm before the head is in the ``"bn"`` and ``"zero_gamma"`` networks;
    there, the stream is only ever read through a batch norm, so the dense layers that
    write to it have no bias (it would have no effect).
    """
    blocks = check_int(blocks, "blocks", 1)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    width, n_in = check_int(width, "width", 1), check_int(n_in, "n_in", 1)
    n_classes = check_int(n_classes, "n_classes", 1)
    alpha = check_real(alpha, "alpha", 0, open_low=True)
    rng = np.random.default_rng(check_int(seed, "seed"))
    normalized = kind in ("bn", "zero_gamma")
    # unit variance; no bias where the stream is only ever read through batch norm,
    # which cancels a shift of the whole stream
    layers = [Dense(n_in, width, rng, not normalized, np.sqrt(0.5))]
    for block in range(blocks):
        beta = np.sqrt(1.0 + block * alpha**2)
        branch = _branch(kind, width, rng, blocks=blocks, alpha=alpha, beta=beta)
        layers.append(Residual(branch))
    head = Dense(width, n_classes, rng)
    if kind == "fixup":
        head.W[...] = 0.0
    return Sequential([*layers, *([_bn(width)] if normalized else []), ReLU(), head])


# ---------------------------------------------------------------- measurements


def stable_rank(h):
    """``||h||_F^2 / ||h||_2^2`` of a batch's representation ``h`` (N, C): the sum of
    the squared singular values over the largest; between 1 (all rows along one
    direction) and ``min(N, C)`` (all singular values equal)."""
    h = as_float_array(h, "h")
    if h.ndim != 2:
        raise ValueError(f"h must be a 2-D array (examples, features), got {h.ndim}-D")
    s = np.linalg.svd(h, compute_uv=False)
    if s[0] == 0:
        raise ValueError("h is all zeros: its stable rank is undefined")
    return float(np.sum(s**2) / s[0] ** 2)


def signal_propagation(model, x, training=False):
    """Brock et al.'s signal-propagation plot, one row per residual block of ``model``.

    Returns an array (blocks, 3): at the output of each block, the average over the
    units of the squared mean over the batch, the average variance over the batch,
    and the average variance of the block's branch output. The model's state is
    kept.
    """
    rows = []
    with state_kept(model):
        h = np.asarray(x, dtype=np.float64)
        for layer in model.layers:
            if isinstance(layer, Residual):
                branch = Sequential.__call__(layer, h, training)
                h = h + branch
                rows.append(
                    (
                        np.mean(h.mean(axis=0) ** 2),
                        h.var(axis=0).mean(),
                        branch.var(axis=0).mean(),
                    )
                )
            else:
                h = layer(h, training=training)
    if not rows:
        raise ValueError("model has no residual block")
    return np.array(rows)


# ---------------------------------------------------------------- clipping


def unitwise_norm(a):
    """The norm of each unit's slice of a parameter: of each column (over the fan-in)
    of a weight matrix (n_in, n_out), as (1, n_out); of the whole of a vector."""
    a = np.asarray(a)
    if a.ndim <= 1:
        return np.sqrt((a * a).sum())
    return np.sqrt((a * a).sum(axis=0, keepdims=True))


def clip_unitwise(w, g, clipping, epsilon=1e-3):
    """Adaptive gradient clipping of one parameter ``w`` and its gradient ``g``:
    each unit's gradient is scaled down to ``clipping * max(||w_unit||, epsilon)``
    where it is longer. Returns the clipped gradient (a new array)."""
    clipping = check_real(clipping, "clipping", 0, open_low=True)
    epsilon = check_real(epsilon, "epsilon", 0, open_low=True)
    if np.shape(w) != np.shape(g):
        raise ValueError(
            f"g must have the shape of w, {np.shape(w)}, got {np.shape(g)}"
        )
    most = clipping * np.maximum(unitwise_norm(w), epsilon)
    norm = unitwise_norm(g)
    factor = np.where(norm > most, most / np.maximum(norm, 1e-300), 1.0)
    return g * factor


class AGC:
    """An optimizer that clips each gradient unit-wise (:func:`clip_unitwise`), then
    lets ``optimizer`` step; the parameters in ``unclipped`` (e.g. the classifier's
    weight matrix, which Brock et al.'s released code leaves unclipped) are passed on
    as they are."""

    def __init__(self, optimizer, clipping=0.01, epsilon=1e-3, unclipped=()):
        if not callable(getattr(optimizer, "step", None)):
            raise TypeError(
                "optimizer must have a step(params) method, e.g. bnbook.optim.SGD(0.1),"
                f" got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.clipping = check_real(clipping, "clipping", 0, open_low=True)
        self.epsilon = check_real(epsilon, "epsilon", 0, open_low=True)
        self._unclipped = {id(p) for p in unclipped}

    def step(self, params):
        """Clip, then one step of the wrapped optimizer, in place."""
        self.optimizer.step(
            [
                (
                    p,
                    g
                    if id(p) in self._unclipped
                    else clip_unitwise(p, g, self.clipping, self.epsilon),
                )
                for p, g in params
            ]
        )
