"""A small multilayer perceptron in NumPy, with or without the book's BatchNorm.

Architecture, for ``sizes=(64, 100, 100, 10)``::

    Dense(64 -> 100) [BatchNorm] ReLU  Dense(100 -> 100) [BatchNorm] ReLU  Dense(100 -> 10)

followed by softmax cross-entropy. With batch norm the dense layers before it have no
bias: the batch mean would remove it, and beta takes its role. With
``activation="linear"`` the ReLUs are left out: a deep linear network. Another
normalization (``norm=``, e.g. :class:`bnbook.normalization.LayerNorm`) can take batch
norm's place, and ``residual=True`` adds a skip connection around every hidden block
whose input and output have the same size: ``x + ReLU(BN(x @ W))``.
"""

import contextlib
import copy

import numpy as np

from bnbook.batchnorm import BatchNorm
from bnbook.folding import fold_batch_norm

__all__ = [
    "MLP",
    "Dense",
    "NoiseInjection",
    "ReLU",
    "Residual",
    "softmax_cross_entropy",
    "train_mlp",
]


class Dense:
    """``y = x @ W + b`` with ``W`` of shape (n_in, n_out), He-initialized."""

    def __init__(self, n_in, n_out, rng, bias=True, init_scale=1.0):
        std = init_scale * np.sqrt(2.0 / n_in)
        self.W = rng.normal(0.0, std, size=(n_in, n_out))
        self.b = np.zeros(n_out) if bias else None
        self.dW = self.db = None

    def __call__(self, x, training=False):
        self._x = x
        return x @ self.W if self.b is None else x @ self.W + self.b

    def backward(self, dy):
        self.dW = self._x.T @ dy
        self.db = None if self.b is None else dy.sum(axis=0)
        return dy @ self.W.T

    def params_and_grads(self):
        yield self.W, self.dW
        if self.b is not None:
            yield self.b, self.db


class ReLU:
    """``y = max(x, 0)``."""

    def __call__(self, x, training=False):
        self._positive = x > 0
        return x * self._positive

    def backward(self, dy):
        return dy * self._positive

    def params_and_grads(self):
        return iter(())


class NoiseInjection:
    """Santurkar et al.'s distributional noise (their Algorithm 1), in training mode.

    At every training call, each unit ``j`` draws a mean ``mu_j ~ U(-0.5, 0.5)`` and a
    scale ``sigma_j ~ U(1, 1.25)``; each example ``i`` then draws
    ``m_ij ~ U(mu_j - 0.1, mu_j + 0.1)`` and ``s_ij ~ N(sigma_j, 0.1)``, and the layer
    returns ``s * x + m``: the distribution of every unit's input to the next layer
    moves, with a non-zero mean and a non-unit variance that change at every step.
    In inference mode it is the identity (the paper does not say; this is our choice).
    """

    def __init__(self, rng):
        self.rng = rng
        self._s = None

    def __call__(self, x, training=False):
        if not training:
            self._s = None
            return x
        n, c = x.shape
        mu = self.rng.uniform(-0.5, 0.5, size=c)
        sigma = self.rng.uniform(1.0, 1.25, size=c)
        m = self.rng.uniform(mu - 0.1, mu + 0.1, size=(n, c))
        self._s = self.rng.normal(sigma, 0.1, size=(n, c))
        return self._s * x + m

    def backward(self, dy):
        if self._s is None:
            raise RuntimeError("backward needs a preceding call with training=True")
        return self._s * dy

    def params_and_grads(self):
        return iter(())


def _params_and_grads(layer):
    if not isinstance(layer, BatchNorm):
        yield from layer.params_and_grads()
        return
    for p, g in ((layer.gamma, layer.dgamma), (layer.beta, layer.dbeta)):
        if p is not None:
            yield p, g


class Residual:
    """``y = x + f(x)`` for a block of layers ``f`` whose output has the input's size."""

    def __init__(self, layers):
        self.layers = list(layers)

    def __call__(self, x, training=False):
        y = x
        for layer in self.layers:
            y = layer(y, training=training)
        return x + y

    def backward(self, dy):
        d = dy
        for layer in reversed(self.layers):
            d = layer.backward(d)
        return dy + d  # the skip passes the gradient on unchanged

    def params_and_grads(self):
        for layer in self.layers:
            yield from _params_and_grads(layer)


def _flattened(layers):
    for layer in layers:
        if isinstance(layer, Residual):
            yield from _flattened(layer.layers)
        else:
            yield layer


def _fold(layers):
    out = []
    for layer in layers:
        if isinstance(layer, Residual):
            out.append(Residual(_fold(layer.layers)))
        elif isinstance(layer, BatchNorm) and out and isinstance(out[-1], Dense):
            dense = out[-1]
            dense.W, dense.b = fold_batch_norm(
                dense.W,
                dense.b,
                layer.gamma,
                layer.beta,
                layer.moving_mean,
                layer.moving_variance,
                epsilon=layer.epsilon,
            )
        else:
            out.append(layer)
    return out


def _population_pass(layers, x):
    for layer in layers:
        if isinstance(layer, Residual):
            x = x + _population_pass(layer.layers, x)
            continue
        if isinstance(layer, BatchNorm):
            layer.set_moving_statistics(x.mean(axis=0), x.var(axis=0))
        x = layer(x)
    return x


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of integer ``labels`` (N,) under ``logits`` (N, K).

    Returns ``(loss, dlogits)``, the gradient already divided by N.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)  # exp cannot overflow
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(labels)
    loss = -log_p[np.arange(n), labels].mean()
    dlogits = np.exp(log_p)
    dlogits[np.arange(n), labels] -= 1
    return loss, dlogits / n


class MLP:
    """A network of dense layers, optionally with batch norm before each activation.

    Parameters
    ----------
    sizes : sequence of ints, (n_inputs, hidden..., n_classes), at least 2 entries
    batch_norm : bool
    seed : int, seeds the initialization
    init_scale : float > 0, multiplies the He standard deviation sqrt(2 / n_in)
    noise : bool, insert :class:`NoiseInjection` before each ReLU (after the batch
        norm when there is one), seeded from ``seed``
    activation : "relu" or "linear" (no non-linearity: a deep linear network)
    norm : None, or a callable without arguments that makes the normalization layer
        used instead of batch norm, e.g. ``LayerNorm`` or ``lambda: GroupNorm(4)``
        (not together with ``batch_norm=True``)
    residual : bool, wrap each hidden block with equal input and output size in a
        :class:`Residual`

    After :meth:`backward`, ``input_grads[k]`` is the gradient of the loss with
    respect to the input of ``layers[k]``.
    """

    def __init__(
        self,
        sizes=(64, 100, 100, 10),
        batch_norm=False,
        seed=0,
        init_scale=1.0,
        noise=False,
        activation="relu",
        norm=None,
        residual=False,
    ):
        sizes = tuple(sizes)
        if len(sizes) < 2 or not all(isinstance(n, int) and n > 0 for n in sizes):
            raise ValueError(f"sizes must be >= 2 positive ints, got {sizes}")
        if not isinstance(batch_norm, bool):
            raise TypeError(
                f"batch_norm must be a bool, got {type(batch_norm).__name__}"
            )
        if not init_scale > 0:
            raise ValueError(f"init_scale must be > 0, got {init_scale}")
        if not isinstance(noise, bool):
            raise TypeError(f"noise must be a bool, got {type(noise).__name__}")
        if norm is not None and not callable(norm):
            raise TypeError(f"norm must be callable or None, got {type(norm).__name__}")
        if norm is not None and batch_norm:
            raise ValueError("give batch_norm=True or norm=..., not both")
        if not isinstance(residual, bool):
            raise TypeError(f"residual must be a bool, got {type(residual).__name__}")
        if activation not in ("relu", "linear"):
            raise ValueError(
                f'activation must be "relu" or "linear", got {activation!r}'
            )
        self.activation, self.residual = activation, residual
        norm = BatchNorm if batch_norm else norm
        rng = np.random.default_rng(seed)
        noise_rng = np.random.default_rng([seed, 1])
        self.layers = []
        for n_in, n_out in zip(sizes[:-2], sizes[1:-1], strict=True):
            block = []
            normalization = None if norm is None else norm()
            if normalization is not None:
                normalization.build(n_out, np.float64)  # now: parameters() lists it
            bias = not isinstance(normalization, BatchNorm)  # BN would subtract it
            block.append(Dense(n_in, n_out, rng, bias, init_scale))
            if normalization is not None:
                block.append(normalization)
            if noise:
                block.append(NoiseInjection(noise_rng))
            if activation == "relu":
                block.append(ReLU())
            if residual and n_in == n_out:
                self.layers.append(Residual(block))
            else:
                self.layers.extend(block)
        self.layers.append(Dense(sizes[-2], sizes[-1], rng, True, init_scale))
        self.input_grads = None

    def __call__(self, x, training=False):
        """Logits of shape (N, n_classes)."""
        for layer in self.layers:
            x = layer(x, training=training)
        return x

    def backward(self, dlogits):
        """The gradient with respect to the input (every layer's: ``input_grads``)."""
        grads = [dlogits]
        for layer in reversed(self.layers):
            grads.append(layer.backward(grads[-1]))
        self.input_grads = grads[::-1][:-1]
        return self.input_grads[0]

    @contextlib.contextmanager
    def _state_kept(self):
        """Restore the moving statistics and the noise generators after the block.

        Measurements then leave no trace: inference is unchanged, and training goes
        on drawing the noise it would have drawn.
        """
        bns = [la for la in _flattened(self.layers) if isinstance(la, BatchNorm)]
        noises = [
            la for la in _flattened(self.layers) if isinstance(la, NoiseInjection)
        ]
        saved = [  # the statistics arrays are replaced at each call, never changed
            {k: v for k, v in vars(b).items() if k.startswith(("moving_", "renorm_"))}
            for b in bns
        ]
        states = [n.rng.bit_generator.state for n in noises]
        try:
            yield
        finally:
            for b, attributes in zip(bns, saved, strict=True):
                vars(b).update(attributes)
            for n, state in zip(noises, states, strict=True):
                n.rng.bit_generator.state = state

    def preactivations(self, x, training=False):
        """The input of every hidden layer's activation, leaving the model unchanged.

        Returns a list with one array of shape (N, units) per hidden layer: what the
        ReLU receives (after batch norm and noise, where there are any).
        """
        if self.residual:
            raise ValueError("preactivations needs a network without residual blocks")
        before = ReLU if self.activation == "relu" else Dense
        out = []
        with self._state_kept():
            for k, layer in enumerate(self.layers):
                if k > 0 and isinstance(layer, before):
                    out.append(x)
                x = layer(x, training=training)
        return out

    def params_and_grads(self):
        for layer in self.layers:
            yield from _params_and_grads(layer)

    def dense_layers(self):
        """Every :class:`Dense` layer, input side first (inside residual blocks too)."""
        return [la for la in _flattened(self.layers) if isinstance(la, Dense)]

    def folded(self):
        """A copy with every batch norm folded into the dense layer before it.

        In inference mode it computes what this model computes, with fewer layers
        (chapter 4 derives the folding; :func:`bnbook.folding.fold_batch_norm`).
        """
        model = copy.deepcopy(self)
        model.layers = _fold(model.layers)
        return model

    def use_population_statistics(self, x):
        """Set each batch norm's moving statistics to its input's statistics over ``x``.

        In inference mode, layer by layer: every batch-norm layer gets the mean and
        (biased) variance of what it receives when the whole of ``x`` (N, n_inputs)
        passes through the network below it. These are the population statistics
        that Ioffe and Szegedy's inference uses, instead of moving averages.
        """
        _population_pass(self.layers, np.asarray(x, dtype=np.float64))

    def sgd_step(self, lr):
        for p, g in self.params_and_grads():
            p -= lr * g

    def parameters(self):
        """The trainable arrays, in layer order (the arrays themselves, not copies)."""
        return [p for p, _ in self.params_and_grads()]

    def set_parameters(self, values):
        """Copy ``values`` (as returned by :meth:`parameters`) into the model."""
        params = self.parameters()
        if len(values) != len(params):
            raise ValueError(
                f"values must hold {len(params)} arrays, got {len(values)}"
            )
        for p, v in zip(params, values, strict=True):
            if np.shape(v) != p.shape:
                raise ValueError(
                    f"values must match the shapes {p.shape}, got {np.shape(v)}"
                )
            p[...] = v

    def loss_and_grads(self, x, labels):
        """Training-mode loss and gradients on one batch, leaving the model as it was.

        The moving statistics of the batch-norm layers (and the noise generators) are
        restored afterwards, so measuring the loss landscape does not change what
        inference computes.
        """
        with self._state_kept():
            loss, dlogits = softmax_cross_entropy(self(x, training=True), labels)
            self.backward(dlogits)
        return loss, [g.copy() for _, g in self.params_and_grads()]

    def loss_and_grads_at(self, params, x, labels):
        """:meth:`loss_and_grads` at ``params`` (arrays as :meth:`parameters` lists
        them); the model keeps its own parameters."""
        saved = [p.copy() for p in self.parameters()]
        self.set_parameters(params)
        try:
            return self.loss_and_grads(x, labels)
        finally:
            self.set_parameters(saved)

    def accuracy(self, x, labels):
        """Fraction of ``x`` classified correctly, in inference mode."""
        return float(np.mean(np.argmax(self(x), axis=1) == labels))


def train_mlp(
    model,
    data,
    *,
    steps,
    lr,
    batch_size=60,
    seed=0,
    eval_every=50,
    callback=None,
):
    """Plain SGD on ``data`` (a :class:`bnbook.data.Digits`), float64.

    Returns a dict of arrays: ``step`` (every ``eval_every`` steps, and the last),
    and at those steps ``train_loss`` (mean training-mode loss of the batches since
    the previous evaluation) and ``test_accuracy`` (inference mode). A run whose
    loss stops being finite has diverged: training stops, and the entries from
    there on are NaN.

    ``callback(step, model)``, if given, is called before the first step (with
    ``step=0``) and after each evaluation; what it measures is the caller's to keep.
    It must leave the model as it found it (the measurements of :class:`MLP` do).
    """
    if not (isinstance(steps, int) and steps > 0):
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not (isinstance(batch_size, int) and 2 <= batch_size <= len(data.x_train)):
        raise ValueError(
            f"batch_size must be an int in [2, n_train], got {batch_size!r}"
        )
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    x_train, x_test = data.x_train.astype(np.float64), data.x_test.astype(np.float64)
    checkpoints = sorted(set(range(eval_every, steps + 1, eval_every)) | {steps})
    history = {
        "step": np.array(checkpoints),
        "train_loss": np.full(len(checkpoints), np.nan),
        "test_accuracy": np.full(len(checkpoints), np.nan),
    }
    rng = np.random.default_rng(seed)
    order, start, losses, k = rng.permutation(len(x_train)), 0, [], 0
    if callback is not None:
        callback(0, model)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for step in range(1, steps + 1):
            if start + batch_size > len(x_train):  # a new epoch, freshly shuffled
                order, start = rng.permutation(len(x_train)), 0
            batch = order[start : start + batch_size]
            start += batch_size
            loss, dlogits = softmax_cross_entropy(
                model(x_train[batch], training=True), data.y_train[batch]
            )
            if not np.isfinite(loss):
                break  # diverged
            model.backward(dlogits)
            model.sgd_step(lr)
            losses.append(loss)
            if step == checkpoints[k]:
                history["train_loss"][k] = np.mean(losses)
                history["test_accuracy"][k] = model.accuracy(x_test, data.y_test)
                losses, k = [], k + 1
                if callback is not None:
                    callback(step, model)
    return history
