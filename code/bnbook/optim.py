"""Stochastic gradient descent: plain, with momentum, with either weight decay.

An optimizer updates ``(parameter, gradient)`` pairs in place, e.g. ``model.params()``
or a part of it; :func:`bnbook.mlp.train_mlp` takes one.
"""

import numpy as np

from bnbook.checks import check_bool, check_positive, check_real

__all__ = ["SGD", "sgd_step"]


def sgd_step(model, lr):
    """One step of plain gradient descent on every parameter, in place."""
    for p, g in model.params():
        p -= lr * g


def _ids(arrays):
    """The identities of a list of parameter arrays (a step updates them in place)."""
    if not isinstance(arrays, list | tuple) or not all(
        isinstance(a, np.ndarray) for a in arrays
    ):
        raise TypeError(f"decayed must be a list of parameter arrays, got {arrays!r}")
    return {id(a) for a in arrays}


class SGD:
    """Stochastic gradient descent with momentum and weight decay, as PyTorch's::

        v = momentum * v + (g + weight_decay * w)
        w = w - lr * v

    or, with ``decoupled=True``, as Keras 3's ``SGD(weight_decay=...)``, which shrinks
    the weights outside the momentum::

        v = momentum * v + g
        w = (1 - lr * weight_decay) * w - lr * v

    ``lr`` is a float > 0 or a schedule, a callable giving the rate of step ``t`` =
    1, 2, ... as ``lr(t)``. Weight decay applies to every parameter, or only to the
    arrays in ``decayed`` (e.g. all but batch norm's gamma and beta). ``step(params)``
    updates each ``(parameter, gradient)`` pair in place; the velocities are kept per
    parameter array. Without momentum or weight decay it is :func:`sgd_step`.
    """

    def __init__(
        self, lr, momentum=0.0, weight_decay=0.0, *, decoupled=False, decayed=None
    ):
        self.schedule = lr if callable(lr) else None
        self.lr = self._rate(1) if callable(lr) else check_positive(lr, "lr")
        self.momentum = check_real(momentum, "momentum", 0, 1, open_high=True)
        self.weight_decay = check_real(weight_decay, "weight_decay", 0)
        self.decoupled = check_bool(decoupled, "decoupled")
        self._decayed = None if decayed is None else _ids(decayed)
        self.iterations = 0
        self._velocity = {}

    def _rate(self, t):
        return check_positive(self.schedule(t), f"lr({t})")

    def _decay_of(self, p):
        if self._decayed is None or id(p) in self._decayed:
            return self.weight_decay
        return 0.0

    def step(self, params):
        """One step on the ``(parameter, gradient)`` pairs ``params``, in place."""
        self.iterations += 1
        if self.schedule is not None:
            self.lr = self._rate(self.iterations)
        for p, g in params:
            decay = self._decay_of(p)
            if decay and not self.decoupled:
                g = g + decay * p
            v = self._velocity.get(id(p))
            if self.momentum:
                v = g if v is None else self.momentum * v + g
                self._velocity[id(p)] = v
            else:
                v = g
            if decay and self.decoupled:
                p -= self.lr * decay * p
            p -= self.lr * v
