"""The book's NumPy layers and the one interface they all follow.

Every layer is an object with

- ``layer(x, training=False) -> y``: the forward pass; ``training=True`` is the mode
  in which batch norm uses the batch's statistics (and noise is drawn);
- ``layer.backward(dy) -> dx``: the gradient with respect to the input of the last
  call, given the gradient ``dy`` at its output; it also stores the gradients of the
  layer's parameters;
- ``layer.params()``: a list of ``(parameter, gradient)`` pairs, the arrays
  themselves, so that ``p -= lr * g`` trains the layer;
- ``layer.state()`` / ``layer.set_state(state)``: the buffers that a call changes but
  no gradient trains (batch norm's moving statistics, a noise generator's state), as
  a dict (for a :class:`Sequential`, a list of its layers' dicts), and back.

One more call serves measurements on a trained network, with a default that is right
for most layers: ``calibrate(x)`` (population statistics, chapter 7).
:class:`Sequential` chains layers and is itself a layer; :class:`Residual` adds its
input to a chain's output.
"""

import copy

import numpy as np

from bnbook.checks import check_callable, check_real

__all__ = [
    "Dense",
    "Dropout",
    "Layer",
    "NoiseInjection",
    "ReLU",
    "Residual",
    "Sequential",
]


class Layer:
    """The interface of every layer; the defaults suit a layer without parameters."""

    #: True for a layer that subtracts each feature's batch mean: a bias just before
    #: it has no effect and a zero gradient, so :func:`bnbook.mlp.build_mlp` leaves
    #: it out.
    cancels_bias = False

    def __call__(self, x, training=False):  # pragma: no mutate (never runs)
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def params(self):
        """``(parameter, gradient)`` pairs; the gradients of the last backward pass."""
        return []

    def state(self):
        """The buffers that a call changes but no gradient trains, as a dict that
        :meth:`set_state` takes back; later calls do not change what it holds."""
        return {}

    def set_state(self, state):
        """Restore what :meth:`state` returned."""
        if state:
            raise ValueError(f"{type(self).__name__} has no state, got {state!r}")

    def calibrate(self, x):
        """The inference-mode output, after setting any moving statistics to the
        statistics of ``x`` (population statistics; most layers have none)."""
        return self(x, training=False)


class Dense(Layer):
    """``y = x @ W + b`` with ``W`` of shape (n_in, n_out), He-initialized."""

    def __init__(self, n_in, n_out, rng, bias=True, init_scale=1.0):
        std = init_scale * np.sqrt(2.0 / n_in)
        self.W = rng.normal(0.0, std, size=(n_in, n_out))
        self.b = np.zeros(n_out) if bias else None
        self.dW = self.db = None

    @classmethod
    def from_weights(cls, W, b):
        """A dense layer with the given ``W`` (n_in, n_out) and ``b`` (n_out,)."""
        layer = cls.__new__(cls)
        layer.W, layer.b, layer.dW, layer.db = W, b, None, None
        return layer

    def __call__(self, x, training=False):  # pragma: no mutate (training unused)
        self._x = x
        return x @ self.W if self.b is None else x @ self.W + self.b

    def backward(self, dy):
        self.dW = self._x.T @ dy
        self.db = None if self.b is None else dy.sum(axis=0)
        return dy @ self.W.T

    def params(self):
        pairs = [(self.W, self.dW)]
        return pairs if self.b is None else [*pairs, (self.b, self.db)]


class ReLU(Layer):
    """``y = max(x, 0)``."""

    def __call__(self, x, training=False):  # pragma: no mutate (training unused)
        self._positive = x > 0
        return x * self._positive

    def backward(self, dy):
        return dy * self._positive


class NoiseInjection(Layer):
    """Santurkar et al.'s distributional noise (their Algorithm 1), in training mode.

    At every training call, each unit ``j`` draws a mean ``mu_j ~ U(-0.5, 0.5)`` and a
    scale ``sigma_j ~ U(1, 1.25)``; each example ``i`` then draws
    ``m_ij ~ U(mu_j - 0.1, mu_j + 0.1)`` and ``s_ij ~ N(sigma_j, 0.1)``, and the layer
    returns ``s * x + m``: the distribution of every unit's input to the next layer
    moves, with a non-zero mean and a non-unit variance that change at every step.
    In inference mode it is the identity (the paper does not say; this is our choice).
    Its state is its random generator's, so a measurement can leave no trace.
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
        # rng.uniform(low, high) and rng.normal(sigma, 0.1) with arrays of parameters,
        # written out: the same draws and the same numbers, twice as fast
        low, high = mu - 0.1, mu + 0.1
        m = low + (high - low) * self.rng.random((n, c))
        self._s = sigma + 0.1 * self.rng.standard_normal((n, c))
        return self._s * x + m

    def backward(self, dy):
        if self._s is None:
            raise RuntimeError("backward needs a preceding call with training=True")
        return self._s * dy

    def state(self):
        return {"rng": self.rng.bit_generator.state}  # a fresh dict at each call

    def set_state(self, state):
        self.rng.bit_generator.state = state["rng"]


class Dropout(Layer):
    """Inverted dropout: in training mode each value is kept with probability
    ``keep`` and divided by ``keep`` (so its mean is unchanged), or set to 0; in
    inference mode the identity. The masks come from ``rng``, whose state is the
    layer's state.
    """

    def __init__(self, keep, rng):
        keep = check_real(keep, "keep", 0, 1, open_low=True)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                f"rng must be a numpy.random.Generator, got {type(rng).__name__}"
            )
        self.keep, self.rng = keep, rng
        self._scale = None

    def __call__(self, x, training=False):
        if not training:
            self._scale = None
            return x
        self._scale = (self.rng.random(np.shape(x)) < self.keep) / self.keep
        return x * self._scale

    def backward(self, dy):
        if self._scale is None:
            raise RuntimeError("backward needs a preceding call with training=True")
        return dy * self._scale

    def state(self):
        return {"rng": self.rng.bit_generator.state}

    def set_state(self, state):
        self.rng.bit_generator.state = state["rng"]


class Sequential(Layer):
    """Layers applied one after the other; itself a layer.

    After :meth:`backward`, ``input_grads[k]`` is the gradient of the loss with
    respect to the input of ``layers[k]``. Inputs are cast to float64: the book's
    NumPy networks compute in double precision.
    """

    def __init__(self, layers):
        self.layers = list(layers)
        self.input_grads = None

    def __call__(self, x, training=False):
        x = np.asarray(x, dtype=np.float64)
        for layer in self.layers:
            x = layer(x, training=training)
        return x

    def backward(self, dy):
        self.input_grads = [None] * len(self.layers)
        for k in reversed(range(len(self.layers))):
            dy = self.layers[k].backward(dy)
            self.input_grads[k] = dy
        return dy

    def params(self):
        return [pair for layer in self.layers for pair in layer.params()]

    def state(self):
        return [layer.state() for layer in self.layers]

    def set_state(self, state):
        for layer, s in zip(self.layers, state, strict=True):
            layer.set_state(s)

    def calibrate(self, x):
        x = np.asarray(x, dtype=np.float64)
        for layer in self.layers:
            x = layer.calibrate(x)
        return x

    def inserted(self, make, *, before=None, after=None):
        """A chain of the same layers with a new layer ``make()`` just before each
        layer of the class ``before``, or just after each one of the class ``after``:
        e.g. ``build_mlp(sizes).inserted(BatchNorm, after=ReLU)``. The layers are
        shared with this chain, not copied: build a fresh network with it."""
        check_callable(make, "make")
        if (before is None) == (after is None):
            raise ValueError("inserted takes one of before and after, a layer class")
        layers = []
        for layer in self.layers:
            layers += [make()] if before and isinstance(layer, before) else []
            layers.append(layer)
            layers += [make()] if after and isinstance(layer, after) else []
        return Sequential(layers)

    def folded(self):
        """A copy in which each batch norm right after a dense layer is folded into it
        (:func:`bnbook.folding.fold_into_dense`, chapter 4): what this chain computes
        in inference mode, with fewer layers."""
        # folding builds on batch norm, which builds on this module
        from bnbook.folding import fold_into_dense

        chain = copy.copy(self)
        chain.layers = []
        for layer in self.layers:
            layer = (
                layer.folded()
                if isinstance(layer, Sequential)
                else copy.deepcopy(layer)
            )
            dense = fold_into_dense(chain.layers[-1], layer) if chain.layers else None
            if dense is None:
                chain.layers.append(layer)
            else:
                chain.layers[-1] = dense
        return chain


class Residual(Sequential):
    """``y = x + f(x)`` for a chain of layers ``f`` whose output has the input's size."""

    def __call__(self, x, training=False):
        return x + super().__call__(x, training)

    def backward(self, dy):
        return dy + super().backward(dy)  # the skip passes the gradient on unchanged

    def calibrate(self, x):
        return x + super().calibrate(x)
