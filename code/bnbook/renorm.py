"""Batch renormalization (Ioffe, 2017), as ``keras.layers.BatchNormalization(renorm=True)``.

It normalizes with the batch statistics but corrects the result towards moving
statistics: ``x_hat * r + d`` with ``r = sigma_B / sigma_renorm`` and
``d = (mu_B - mu_renorm) / sigma_renorm``, both treated as constants in the backward
pass (and optionally clipped).
"""

import numpy as np

from bnbook.batchnorm import BatchNorm, _sigma, batch_norm_backward, batch_norm_forward
from bnbook.checks import as_float_array, check_momentum, check_real

__all__ = ["BatchRenorm"]


class BatchRenorm(BatchNorm):
    """Batch renormalization, with the semantics of Keras 3's ``renorm=True``.

    In training mode, with ``sigma_B = sqrt(var_B + epsilon)``::

        r = clip(sigma_B / renorm_stddev, rmin, rmax)
        d = clip((mu_B - renorm_mean) / renorm_stddev, -dmax, dmax)
        y = gamma * (x_hat * r + d) + beta

    ``r`` and ``d`` are constants for the backward pass. ``renorm_mean`` and
    ``renorm_stddev`` follow the batch with ``renorm_momentum``; ``moving_mean`` and a
    moving standard deviation follow it with ``momentum``, and inference uses them as
    :class:`~bnbook.batchnorm.BatchNorm` does. ``None`` means no clipping.
    """

    def __init__(
        self,
        momentum=0.99,
        epsilon=1e-3,
        renorm_momentum=0.99,
        rmin=None,
        rmax=None,
        dmax=None,
    ):
        super().__init__(momentum=momentum, epsilon=epsilon)
        self.renorm_momentum = check_momentum(renorm_momentum)
        self.rmin = None if rmin is None else check_real(rmin, "rmin", 0)
        self.rmax = None if rmax is None else check_real(rmax, "rmax", 0)
        self.dmax = None if dmax is None else check_real(dmax, "dmax", 0)
        if None not in (rmin, rmax) and not self.rmax >= self.rmin:
            raise ValueError(f"rmax must be >= rmin, got rmin={rmin}, rmax={rmax}")

    def build(self, n_features, dtype=np.float32):
        super().build(n_features, dtype)
        self.moving_stddev = np.sqrt(self.moving_variance)
        self.renorm_mean = np.zeros(n_features, dtype)
        self.renorm_stddev = np.sqrt(self.moving_variance)

    def _correction(self, mu, sigma):
        floor = _sigma(sigma.dtype.type(0), self.epsilon)  # a constant feature's
        renorm_stddev = np.maximum(self.renorm_stddev, floor)  # as Keras, early on
        r = sigma / renorm_stddev
        d = (mu - self.renorm_mean) / renorm_stddev
        if self.rmin is not None:
            r = np.maximum(r, self.rmin)
        if self.rmax is not None:
            r = np.minimum(r, self.rmax)
        if self.dmax is not None:
            d = np.clip(d, -self.dmax, self.dmax)
        return r, d

    def __call__(self, x, training=False):
        if not training:
            return super().__call__(x)
        x = as_float_array(x, "x")
        if x.ndim != 2:
            raise ValueError(f"x must have shape (N, C), got {x.ndim} dimension(s)")
        if self.moving_mean is None:
            self.build(x.shape[1], x.dtype)
        mu, var = x.mean(axis=0), x.var(axis=0)
        sigma = _sigma(var, self.epsilon)
        r, d = self._correction(mu, sigma)
        y, self._cache = batch_norm_forward(
            x, self.gamma * r, self.gamma * d + self.beta, epsilon=self.epsilon
        )
        self._rd = r, d
        self._follow(mu, sigma)
        return y

    def state(self):
        return super().state() | {
            "moving_stddev": self.moving_stddev,
            "renorm_mean": self.renorm_mean,
            "renorm_stddev": self.renorm_stddev,
        }

    def set_state(self, state):
        super().set_state(state)
        self.moving_stddev = state["moving_stddev"]
        self.renorm_mean = state["renorm_mean"]
        self.renorm_stddev = state["renorm_stddev"]

    def set_moving_statistics(self, mean, variance):
        """Replace the moving statistics; the moving standard deviation follows."""
        moving = {"moving_mean": mean, "moving_variance": variance}
        moving["moving_stddev"] = _sigma(variance, self.epsilon)
        self.set_state(self.state() | moving)

    def _follow(self, mu, sigma):
        a, b = self.renorm_momentum, self.momentum
        self.renorm_mean = a * self.renorm_mean + (1 - a) * mu
        self.renorm_stddev = a * self.renorm_stddev + (1 - a) * sigma
        self.moving_mean = b * self.moving_mean + (1 - b) * mu
        self.moving_stddev = b * self.moving_stddev + (1 - b) * sigma
        self.moving_variance = np.maximum(self.moving_stddev**2 - self.epsilon, 0)

    def backward(self, dy):
        """``dx``; sets ``dgamma`` and ``dbeta`` (``r`` and ``d`` held constant)."""
        if self._cache is None:
            raise RuntimeError("backward needs a preceding call with training=True")
        dx, dgamma_eff, dbeta = batch_norm_backward(dy, self._cache)
        r, d = self._rd
        # y = (gamma r) x_hat + (gamma d + beta): gamma enters through both terms.
        self.dgamma, self.dbeta = dgamma_eff * r + dbeta * d, dbeta
        return dx

    def __repr__(self):
        return (
            f"BatchRenorm(momentum={self.momentum}, epsilon={self.epsilon}, "
            f"renorm_momentum={self.renorm_momentum}, rmin={self.rmin}, "
            f"rmax={self.rmax}, dmax={self.dmax})"
        )
