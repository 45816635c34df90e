"""The workbook's checks: right implementations in several styles pass, and each
typical mistake fails with a message that names it."""

import json
import os
import pathlib
import re
import sys
import types
import warnings

import numpy as np
import pytest

from bnbook import bare
from bnbook.workbook import (
    CheckFailed,
    check_backward,
    check_forward,
    check_layer,
    check_spatial_forward,
    check_trainable_layer,
)

# ---------------------------------------------------------------------------------
# Right implementations, in different styles
# ---------------------------------------------------------------------------------


def forward(x, gamma, beta, eps):
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta, (x_hat, gamma, var, eps)


def backward(dy, cache):
    x_hat, gamma, var, eps = cache
    dbeta = dy.sum(axis=0)
    dgamma = (dy * x_hat).sum(axis=0)
    dx_hat = dy * gamma
    dx = (dx_hat - dx_hat.mean(0) - x_hat * (dx_hat * x_hat).mean(0)) / np.sqrt(
        var + eps
    )
    return dx, dgamma, dbeta


def forward_staged(x, gamma, beta, eps):
    """CS231n's graph: one node a line, the cache a dict of every node."""
    m = x.shape[0]
    mu = np.sum(x, axis=0) / m
    xc = x - mu
    sq = xc**2
    var = np.sum(sq, axis=0) / m
    std = np.sqrt(var + eps)
    inv = 1 / std
    x_hat = xc * inv
    y = gamma * x_hat + beta
    return y, {"xc": xc, "inv": inv, "std": std, "x_hat": x_hat, "gamma": gamma}


def backward_staged(dy, cache):
    xc, inv, std, x_hat = cache["xc"], cache["inv"], cache["std"], cache["x_hat"]
    m = dy.shape[0]
    dbeta = dy.sum(axis=0)
    dgamma = np.sum(dy * x_hat, axis=0)
    dx_hat = dy * cache["gamma"]
    dinv = np.sum(dx_hat * xc, axis=0)
    dxc = dx_hat * inv
    dstd = -dinv / std**2
    dvar = 0.5 * dstd / std
    dsq = np.ones_like(dy) * dvar / m
    dxc = dxc + 2 * xc * dsq
    dmu = -np.sum(dxc, axis=0)
    dx = dxc + np.ones_like(dy) * dmu / m
    return dx, dgamma, dbeta


def forward_loops(x, gamma, beta, eps):
    """Python loops over features and examples, the output filled in place."""
    n, d = x.shape
    y = np.empty_like(x)
    for j in range(d):
        mu = sum(x[i, j] for i in range(n)) / n
        var = sum((x[i, j] - mu) ** 2 for i in range(n)) / n
        for i in range(n):
            y[i, j] = gamma[j] * (x[i, j] - mu) / np.sqrt(var + eps) + beta[j]
    return y, None


def forward_in_float64(x, gamma, beta, eps):
    """Computes in float64 and gives back the dtype of x."""
    x64 = x.astype(np.float64)
    mu, var = x64.mean(axis=0), x64.var(axis=0)
    y = gamma * (x64 - mu) / np.sqrt(var + eps) + beta
    return y.astype(x.dtype), [x]


def spatial_forward(x, gamma, beta, eps):
    mu = x.mean(axis=(0, 1, 2), keepdims=True)
    var = x.var(axis=(0, 1, 2), keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta, None


def spatial_by_reshape(x, gamma, beta, eps):
    """The dense forward pass on the (N*H*W, C) matrix."""
    y, cache = forward(x.reshape(-1, x.shape[-1]), gamma, beta, eps)
    return y.reshape(x.shape), cache


class Layer:
    def __init__(self, num_features, momentum=0.99, epsilon=1e-3):
        self.momentum, self.epsilon = momentum, epsilon
        self.gamma = np.ones(num_features)
        self.beta = np.zeros(num_features)
        self.moving_mean = np.zeros(num_features)
        self.moving_variance = np.ones(num_features)

    def __call__(self, x, training=False):
        if training:
            mean, variance = x.mean(axis=0), x.var(axis=0)
            a = self.momentum
            self.moving_mean = a * self.moving_mean + (1 - a) * mean
            self.moving_variance = a * self.moving_variance + (1 - a) * variance
        else:
            mean, variance = self.moving_mean, self.moving_variance
        x_hat = (x - mean) / np.sqrt(variance + self.epsilon)
        return self.gamma * x_hat + self.beta


class LayerInPlace(Layer):
    """Keyword-only ``training``, float32 parameters and statistics updated in place."""

    def __init__(self, num_features):
        super().__init__(num_features)
        for name in ("gamma", "beta", "moving_mean", "moving_variance"):
            setattr(self, name, getattr(self, name).astype(np.float32))

    def __call__(self, x, *, training=False):
        if not training:
            return super().__call__(x)
        mu, var = x.mean(axis=0), x.var(axis=0)
        self.moving_mean *= 0.99
        self.moving_mean += 0.01 * mu
        self.moving_variance *= 0.99
        self.moving_variance += 0.01 * var
        return self.gamma * (x - mu) / np.sqrt(var + 1e-3) + self.beta


class LayerKeywordsOnly(Layer):
    """momentum and epsilon keyword-only, training a keyword too."""

    def __init__(self, num_features, *, momentum=0.99, epsilon=1e-3):
        super().__init__(num_features, momentum, epsilon)

    def __call__(self, x, *, training=False):
        return super().__call__(x, training)


class TrainableLayer(Layer):
    """Workbook page 5's solution: backward sets new arrays, params() lists them."""

    def __init__(self, num_features, momentum=0.99, epsilon=1e-3):
        super().__init__(num_features, momentum, epsilon)
        self.dgamma, self.dbeta = np.zeros(num_features), np.zeros(num_features)

    def __call__(self, x, training=False):
        if training:
            self.inv_std = 1 / np.sqrt(x.var(axis=0) + self.epsilon)
            self.x_hat = (x - x.mean(axis=0)) * self.inv_std
        return super().__call__(x, training)

    def backward(self, dy):
        x_hat = self.x_hat
        self.dbeta = dy.sum(axis=0)
        self.dgamma = (dy * x_hat).sum(axis=0)
        bracket = dy - dy.mean(axis=0) - x_hat * (dy * x_hat).mean(axis=0)
        return self.gamma * self.inv_std * bracket

    def params(self):
        return [(self.gamma, self.dgamma), (self.beta, self.dbeta)]


class TrainableIntoBuffers(TrainableLayer):
    """Gradients written into the zeros made in __init__ (page 5's hint 2)."""

    def __init__(self, num_features, momentum=0.99, epsilon=1e-3):
        super().__init__(num_features, momentum, epsilon)
        self.dgamma, self.dbeta = np.zeros(num_features), np.zeros(num_features)

    def backward(self, dy):
        dgamma, dbeta = self.dgamma, self.dbeta
        dx = super().backward(dy)
        dgamma[...], dbeta[...] = self.dgamma, self.dbeta
        self.dgamma, self.dbeta = dgamma, dbeta
        return dx


class TrainablePairsKept(TrainableIntoBuffers):
    """The pairs made once, in __init__: right, as the gradients change in place."""

    def __init__(self, num_features, momentum=0.99, epsilon=1e-3):
        super().__init__(num_features, momentum, epsilon)
        self.pairs = [(self.gamma, self.dgamma), (self.beta, self.dbeta)]

    def params(self):
        return self.pairs


class TrainableUnlessFalse(TrainableLayer):
    """Trains unless ``training`` is False itself (None would train): right, as the
    checks call it with training=False or without training."""

    def __call__(self, x, training=False):
        return super().__call__(x, training is not False)


@pytest.mark.parametrize(
    "check, functions",
    [
        (check_forward, [forward]),
        (check_forward, [bare.forward]),
        (check_backward, [bare.forward, bare.backward]),
        (check_forward, [forward_staged]),
        (check_forward, [forward_loops]),
        (check_forward, [forward_in_float64]),
        (check_backward, [forward, backward]),
        (check_backward, [forward_staged, backward_staged]),
        (check_spatial_forward, [spatial_forward]),
        (check_spatial_forward, [spatial_by_reshape]),
        (check_layer, [Layer]),
        (check_layer, [LayerKeywordsOnly]),
        (check_trainable_layer, [TrainableLayer]),
        (check_trainable_layer, [TrainableIntoBuffers]),
        (check_trainable_layer, [TrainablePairsKept]),
        (check_trainable_layer, [TrainableUnlessFalse]),
    ],
    ids=lambda v: getattr(v, "__name__", None) if callable(v) else None,
)
def test_right_implementations_pass_with_one_line(check, functions, capsys):
    check(*functions)
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1 and printed.startswith(f"{check.__name__} passed")


# ---------------------------------------------------------------------------------
# Typical mistakes, each with the message that must name it
# ---------------------------------------------------------------------------------


def forward_with(**knobs):
    """The forward pass with one thing changed, as a reader might write it."""
    axis = knobs.get("axis", 0)

    def wrong(x, gamma, beta, eps):
        eps = knobs.get("eps", eps) ** knobs.get("eps_power", 1)
        eps = eps * knobs.get("eps_sign", 1)
        mu = x.mean(axis=axis, keepdims=True)
        var = x.var(axis=axis, ddof=knobs.get("ddof", 0), keepdims=True)
        if knobs.get("one_pass"):
            var = (x**2).mean(axis=0) - mu**2
        if knobs.get("uncentred_var"):
            var = (x**2).mean(axis=0)
        centred = x if knobs.get("uncentred") else x - mu
        if knobs.get("eps_outside"):
            x_hat = centred / (np.sqrt(var) + eps)
        elif knobs.get("eps_after"):
            x_hat = centred / np.sqrt(var) + eps
        elif knobs.get("no_root"):
            x_hat = centred / (var + eps)
        else:
            x_hat = centred / np.sqrt(var + eps)
        g, b = (beta, gamma) if knobs.get("swap") else (gamma, beta)
        y = knobs.get("output", lambda x_hat, g, b: g * x_hat + b)(x_hat, g, b)
        return y, x_hat

    return wrong


def forward_computed_in(dtype):
    """The right forward pass, computed in ``dtype`` and given back in x's."""

    def lower(x, gamma, beta, eps):
        y, cache = forward(
            x.astype(dtype), gamma.astype(dtype), beta.astype(dtype), eps
        )
        return y.astype(x.dtype), cache

    return lower


def forward_float32_constant(x, gamma, beta, eps):
    """A float32 array inside a float64 computation, converted back at the end."""
    mu = x.mean(axis=0).astype(np.float32)
    var = ((x - mu) ** 2).mean(axis=0)
    return (gamma * (x - mu) / np.sqrt(var + eps) + beta).astype(x.dtype), None


def forward_pairs(x, gamma, beta, eps):
    """The mean of the means of pairs of examples: right only for an even batch."""
    mu = x.reshape(-1, 2, x.shape[1]).mean(axis=(0, 1))
    var = ((x - mu) ** 2).mean(axis=0)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta, None


def forward_mixed_axes(x, gamma, beta, eps):
    mu = x.mean(axis=0)
    var = x.var(axis=1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta, None


def spatial_divided_by_n(x, gamma, beta, eps):
    n = x.shape[0]
    mu = x.sum(axis=(0, 1, 2)) / n
    var = ((x - mu) ** 2).sum(axis=(0, 1, 2)) / n
    return gamma * (x - mu) / np.sqrt(var + eps) + beta, None


def spatial_reshaped(x, gamma, beta, eps):
    rows = x.reshape(x.shape[-1], -1)
    mu, var = rows.mean(axis=1, keepdims=True), rows.var(axis=1, keepdims=True)
    return gamma * ((rows - mu) / np.sqrt(var + eps)).reshape(x.shape) + beta, None


def forward_in_place(x, gamma, beta, eps):
    x -= x.mean(axis=0)
    x /= np.sqrt(x.var(axis=0) + eps)
    return gamma * x + beta, x


def backward_with(**knobs):
    def wrong(dy, cache):
        x_hat, gamma, var, eps = cache
        xc = x_hat * np.sqrt(var + eps)
        inv_std = 1 / np.sqrt(var + knobs.get("eps", eps))
        dx_hat = dy * (1 if knobs.get("no_gamma") else gamma)
        dvar = np.sum(dx_hat * xc, axis=0) * -0.5 * inv_std**3
        dxc = dx_hat * inv_std
        if not knobs.get("no_var"):
            dxc = dxc + dvar * 2 * xc / (len(dy) - knobs.get("ddof", 0))
        dx = dxc if knobs.get("no_mean") else dxc - dxc.mean(axis=0)
        dgamma = knobs.get("dgamma", lambda dy, x_hat: np.sum(dy * x_hat, axis=0))
        dbeta = knobs.get("dbeta", lambda dy: np.sum(dy, axis=0))
        grads = [dx, dgamma(dy, x_hat), dbeta(dy)]
        return knobs.get("order", tuple)(grads)

    return wrong


def forward_keeping_x(x, gamma, beta, eps):
    y, cache = forward(x, gamma, beta, eps)
    return y, (cache, x)


def backward_dgamma_raw(dy, cache):
    cache, x = cache
    dx, _, dbeta = backward(dy, cache)
    return dx, np.sum(dy * x, axis=0), dbeta


def backward_dgamma_centred(dy, cache):
    dx, _, dbeta = backward_staged(dy, cache)
    return dx, np.sum(dy * cache["xc"], axis=0), dbeta


class LayerWith(Layer):
    """The layer with one thing changed."""

    knobs = {}

    def __init__(self, num_features):
        super().__init__(
            num_features,
            self.knobs.get("momentum", 0.99),
            self.knobs.get("epsilon", 1e-3),
        )
        if "moving_variance" in self.knobs:
            self.moving_variance = self.knobs["moving_variance"](num_features)

    def __call__(self, x, training=False):
        training = self.knobs.get("training", lambda t: t)(training)
        if training and self.knobs.get("frozen"):
            keep = self.moving_mean, self.moving_variance
            y = super().__call__(x, training)
            self.moving_mean, self.moving_variance = keep
            return y
        if training and self.knobs.get("unbiased"):
            y = super().__call__(x, training)
            a, var = self.momentum, x.var(axis=0, ddof=1)
            self.moving_variance = self.moving_variance - (1 - a) * x.var(axis=0)
            self.moving_variance = self.moving_variance + (1 - a) * var
            return y
        if training and self.knobs.get("moving_in_training"):
            y = (
                self.gamma
                * (x - self.moving_mean)
                / np.sqrt(self.moving_variance + self.epsilon)
            )
            super().__call__(x, training)
            return y + self.beta
        if not training and self.knobs.get("batch_in_inference"):
            mu, var = x.mean(axis=0), x.var(axis=0)
            return self.gamma * (x - mu) / np.sqrt(var + self.epsilon) + self.beta
        return super().__call__(x, training)


class TrainingByDefault(Layer):
    def __call__(self, x, training=True):
        return super().__call__(x, training)


class ScalarMovingMean(Layer):
    def __init__(self, num_features):
        super().__init__(num_features)
        self.moving_mean = 0.0


def layer_with(**knobs):
    return type("LayerWith", (LayerWith,), {"knobs": knobs})


class IgnoresItsSettings(Layer):
    """Takes momentum and epsilon, and uses Keras's defaults whatever they are."""

    knobs = {}

    def __init__(self, num_features, momentum=0.99, epsilon=1e-3):
        super().__init__(
            num_features,
            0.99 if "momentum" in self.knobs else momentum,
            1e-3 if "epsilon" in self.knobs else epsilon,
        )


def ignoring(*names):
    return type("Ignores", (IgnoresItsSettings,), {"knobs": dict.fromkeys(names)})


class LayerWithUpdate(Layer):
    """The moving statistics moved towards the wrong target, or y with the variance
    around the moving mean."""

    target = "x_hat"

    def __call__(self, x, training=False):
        if not training:
            return super().__call__(x)
        mu, var = x.mean(axis=0), x.var(axis=0)
        a, eps = self.momentum, self.epsilon
        if self.target == "around moving mean":
            var = ((x - self.moving_mean) ** 2).mean(axis=0)
        y = self.gamma * (x - mu) / np.sqrt(var + eps) + self.beta
        new_var = ((x - mu) / np.sqrt(var + eps)).var(axis=0)
        if self.target != "x_hat":
            new_var = var
        self.moving_mean = a * self.moving_mean + (1 - a) * mu
        self.moving_variance = a * self.moving_variance + (1 - a) * new_var
        return y


class EpsilonOutsideInInference(Layer):
    def __call__(self, x, training=False):
        if training:
            return super().__call__(x, training)
        x_hat = (x - self.moving_mean) / (np.sqrt(self.moving_variance) + self.epsilon)
        return self.gamma * x_hat + self.beta


class FirstBatchOnly(Layer):
    """Keeps normalizing with the statistics of the first batch it trained on."""

    def __call__(self, x, training=False):
        if not training:
            return super().__call__(x)
        if not hasattr(self, "first"):
            self.first = x.mean(axis=0), x.var(axis=0)
        mu, var = self.first
        self.moving_mean = 0.99 * self.moving_mean + 0.01 * mu
        self.moving_variance = 0.99 * self.moving_variance + 0.01 * var
        return self.gamma * (x - mu) / np.sqrt(var + 1e-3) + self.beta


class InferenceWith(Layer):
    """Inference divided by the variance itself, with γ and β swapped, or without
    the moving mean."""

    swap, center = False, True

    def __call__(self, x, training=False):
        if training:
            return super().__call__(x, training)
        if not self.center:
            x_hat = x / np.sqrt(self.moving_variance + self.epsilon)
            return self.gamma * x_hat + self.beta
        centred = x - self.moving_mean
        if self.swap:
            return self.beta * centred / np.sqrt(
                self.moving_variance + self.epsilon
            ) + (self.gamma)
        return self.gamma * centred / (self.moving_variance + self.epsilon) + self.beta


class UnbiasedInTraining(Layer):
    def __call__(self, x, training=False):
        y = super().__call__(x, training)
        if not training:
            return y
        mu, var = x.mean(axis=0), x.var(axis=0, ddof=1)
        return self.gamma * (x - mu) / np.sqrt(var + self.epsilon) + self.beta


def trainable_with(**changes):
    """TrainableLayer with a method changed."""
    return type("Trainable", (TrainableLayer,), changes)


class OnlyFeatures(Layer):
    def __init__(self, num_features):
        super().__init__(num_features)


class NoDgamma(TrainableLayer):
    def backward(self, dy):
        dx = super().backward(dy)
        del self.dgamma
        return dx


class TrainableStale(TrainableLayer):
    """The pairs made in __init__, and backward that rebinds the gradients."""

    def __init__(self, num_features, momentum=0.99, epsilon=1e-3):
        super().__init__(num_features, momentum, epsilon)
        self.dgamma, self.dbeta = np.zeros(num_features), np.zeros(num_features)
        self.pairs = [(self.gamma, self.dgamma), (self.beta, self.dbeta)]

    def params(self):
        return self.pairs


# ---- mistakes a learner made (issue 27's second trial), each in its own words ----


class TAccumulate(TrainableLayer):
    """Gradients added up over the steps."""

    def backward(self, dy):
        dgamma, dbeta = self.dgamma, self.dbeta
        dx = super().backward(dy)
        self.dgamma, self.dbeta = dgamma + self.dgamma, dbeta + self.dbeta
        return dx


class TInferenceCaches(TrainableLayer):
    """x_hat and 1/std kept from every call, inference ones too."""

    def __call__(self, x, training=False):
        y = super().__call__(x, training)
        if not training:
            self.x_hat = (x - self.moving_mean) / np.sqrt(
                self.moving_variance + self.epsilon
            )
            self.inv_std = 1 / np.sqrt(self.moving_variance + self.epsilon)
        return y


class TStepInBackward(TrainableLayer):
    def backward(self, dy):
        dx = super().backward(dy)
        self.gamma -= 0.1 * self.dgamma
        self.beta -= 0.1 * self.dbeta
        return dx


class TCacheOnce(TrainableLayer):
    def __call__(self, x, training=False):
        keep = getattr(self, "x_hat", None), getattr(self, "inv_std", None)
        y = super().__call__(x, training)
        if keep[0] is not None:
            self.x_hat, self.inv_std = keep
        return y


class TNoInitGrads(TrainableLayer):
    def __init__(self, num_features, momentum=0.99, epsilon=1e-3):
        Layer.__init__(self, num_features, momentum, epsilon)


class TFloat32Params(TrainableLayer):
    """gamma and beta kept in float32, as Keras keeps them."""

    def __call__(self, x, training=False):
        self.gamma32 = self.gamma.astype(np.float32)
        y = super().__call__(x, training)
        return y

    def backward(self, dy):
        x_hat = self.x_hat
        self.dbeta = dy.sum(axis=0)
        self.dgamma = (dy * x_hat).sum(axis=0)
        bracket = dy - dy.mean(axis=0) - x_hat * (dy * x_hat).mean(axis=0)
        return self.gamma32 * self.inv_std * bracket


class TMovingInBackward(TrainableLayer):
    def backward(self, dy):
        dx = super().backward(dy)
        inv = 1 / np.sqrt(self.moving_variance + self.epsilon)
        return dx / self.inv_std * inv


def compact_scaled(power):
    """The compact backward with s**power in place of s."""

    def wrong(dy, cache):
        x_hat, gamma, var, eps = cache
        s = (var + eps) ** -0.5
        bracket = dy - dy.mean(0) - x_hat * (dy * x_hat).mean(0)
        return gamma * s**power * bracket, (dy * x_hat).sum(0), dy.sum(0)

    return wrong


def backward_mutating_cache(dy, cache):
    x_centered, inv_std = cache["x_centered"], cache["inv_std"]
    x_centered *= inv_std  # x_hat, made in the cache's own array
    return backward(dy, (x_centered, cache["gamma"], 1 / inv_std**2 - 1e-3, 1e-3))


def forward_nodes(x, gamma, beta, eps):
    """Workbook page 2's forward pass, its cache a dict of the nodes."""
    mu = x.mean(axis=0)
    x_centered = x - mu
    inv_std = 1 / np.sqrt((x_centered**2).mean(axis=0) + eps)
    x_hat = x_centered * inv_std
    cache = {"x_centered": x_centered, "inv_std": inv_std, "x_hat": x_hat}
    return gamma * x_hat + beta, cache | {"gamma": gamma}


def backward_unsummed_node(dy, cache):
    """Staged, with dinv_std not summed over the batch."""
    x_centered, inv_std = cache["x_centered"], cache["inv_std"]
    x_hat, gamma = cache["x_hat"], cache["gamma"]
    m = dy.shape[0]
    dx_hat = gamma * dy
    dinv_std = dx_hat * x_centered
    dvar = -0.5 * inv_std**3 * dinv_std
    dx_centered = inv_std * dx_hat + 2 / m * x_centered * dvar
    dmu = -dx_centered.sum(axis=0)
    dx = dx_centered + dmu / m
    return dx, (dy * x_hat).sum(axis=0), dy.sum(axis=0)


class MovingTowards(Layer):
    """A moving statistic moved towards the wrong target."""

    target = "std"

    def __call__(self, x, training=False):
        if not training:
            return super().__call__(x)
        mu, var = x.mean(axis=0), x.var(axis=0)
        x_hat = (x - mu) / np.sqrt(var + self.epsilon)
        a = self.momentum
        mean_target = x_hat.mean(axis=0) if self.target == "x_hat mean" else mu
        self.moving_mean = a * self.moving_mean + (1 - a) * mean_target
        variance_target = {
            "std": np.sqrt(var),
            "var + eps": var + self.epsilon,
            "second moment": (x**2).mean(axis=0),
            "around the new mean": ((x - self.moving_mean) ** 2).mean(axis=0),
        }.get(self.target, var)
        self.moving_variance = a * self.moving_variance + (1 - a) * variance_target
        return self.gamma * x_hat + self.beta


class TrainsOnUpdatedMoving(Layer):
    def __call__(self, x, training=False):
        if training:
            super().__call__(x, training)
        return super().__call__(x)


class InferenceWithoutBeta(Layer):
    def __call__(self, x, training=False):
        y = super().__call__(x, training)
        return y if training else y - self.beta


def forward_returning(order):
    def wrong(x, gamma, beta, eps):
        y, cache = forward(x, gamma, beta, eps)
        return ({"x_hat": cache[0]}, y) if order == "cache first" else (y, cache)

    return wrong


def forward_times_std(x, gamma, beta, eps):
    mu, var = x.mean(axis=0), x.var(axis=0)
    return gamma * (x - mu) * np.sqrt(var + eps) + beta, None


def forward_variance_sum(x, gamma, beta, eps):
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).sum(axis=0)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta, None


def forward_sixteen(x, gamma, beta, eps):
    mu = x.sum(axis=0) / 16
    var = ((x - mu) ** 2).sum(axis=0) / 16
    return gamma * (x - mu) / np.sqrt(var + eps) + beta, None


def compact_with(**changes):
    """The compact backward with sums for means, the dy term over m, or means over
    the whole array."""

    def wrong(dy, cache):
        x_hat, gamma, var, eps = cache
        m = len(dy)
        s = 1 / np.sqrt(var + eps)
        axis = changes.get("axis", 0)
        mean_dy, mean_dyx = dy.mean(axis=axis), (dy * x_hat).mean(axis=axis)
        if changes.get("sums"):
            mean_dy, mean_dyx = m * mean_dy, m * mean_dyx
        first = dy / m if changes.get("dy_over_m") else dy
        dx = gamma * s * (first - mean_dy - x_hat * mean_dyx)
        return dx, (dy * x_hat).sum(0), dy.sum(0)

    return wrong


def forward_by(scale=None, numerator_eps=False):
    """The forward pass dividing by another scale, or with ε added to x - mu."""

    def wrong(x, gamma, beta, eps):
        mu = x.mean(axis=0)
        centred = x - mu
        if numerator_eps:
            return gamma * (centred + eps) / np.sqrt(x.var(axis=0)) + beta, None
        return gamma * centred / scale(centred, eps) + beta, None

    return wrong


def spatial_by(kind):
    """Per-channel statistics gone wrong: H taken for C, a transpose undone by
    reshape, or the variance over axis 0 only."""

    def wrong(x, gamma, beta, eps):
        if kind == "mixed":
            mu = x.mean(axis=(0, 1, 2))
            var = ((x - mu) ** 2).mean(axis=0)
            return gamma * (x - mu) / np.sqrt(var + eps) + beta, None
        if kind == "by H":
            rows = x.reshape(-1, x.shape[1])
            x_hat = (rows - rows.mean(0)) / np.sqrt(rows.var(0) + eps)
            return gamma * x_hat.reshape(x.shape) + beta, None
        xt = x.transpose(0, 3, 1, 2)
        mu = xt.mean(axis=(0, 2, 3), keepdims=True)
        var = xt.var(axis=(0, 2, 3), keepdims=True)
        return gamma * ((xt - mu) / np.sqrt(var + eps)).reshape(x.shape) + beta, None

    return wrong


class MovedFromInitial(Layer):
    def __call__(self, x, training=False):
        y = super().__call__(x, training)
        if training:
            a = self.momentum
            self.moving_mean = (1 - a) * x.mean(axis=0)
            self.moving_variance = a + (1 - a) * x.var(axis=0)
        return y


def not_implemented(*args):
    raise NotImplementedError


def _compact(
    dy,
    cache,
    s_eps=True,
    scale=1.0,
    sign_var=1.0,
    mean_scale=1.0,
    centred=False,
    scaled=3,
    m_axis=0,
    whole=False,
):
    """The compact backward with one thing changed: s without eps, a constant factor,
    the variance term's weight, the mean term's weight, x_centered for x_hat, or
    gamma * s on the first ``scaled`` terms only; as a reader writes it, m read from
    dy's shape."""
    x_hat, gamma, var, eps = cache
    s = 1 / np.sqrt(var + (eps if s_eps else 0.0))
    m = dy.shape[m_axis]
    xh = x_hat / s if centred else x_hat
    mean_dy = dy.mean() if whole else dy.sum(0) / m
    terms = [dy, -mean_scale * mean_dy, -sign_var * xh * (dy * xh).sum(0) / m]
    dx = sum(gamma * s * t if i < scaled else t for i, t in enumerate(terms))
    return scale * dx, (dy * x_hat).sum(axis=0), dy.sum(axis=0)


# ---- mistakes the mutation runs asked for: each shows a part of a check no other
# ---- mistake reaches (a message, a number it quotes, or the input it names)


class TKeepsInferenceAddsDgamma(TInferenceCaches):
    """Two mistakes at once: x_hat kept from inference calls too, and dgamma added up
    over the steps (dbeta set anew); the second step's dgamma shows both."""

    def backward(self, dy):
        dgamma = self.dgamma
        dx = super().backward(dy)
        self.dgamma = dgamma + self.dgamma
        return dx


class TNoXKept(TrainableLayer):
    """backward recomputes x_hat from self.x, which __call__ never stored."""

    def backward(self, dy):
        self.x_hat = (self.x - self.x.mean(axis=0)) * self.inv_std
        return super().backward(dy)


class TKeepsThreeGradients(TrainableLayer):
    """backward keeps its three results; params() unpacks two of them."""

    def backward(self, dy):
        dx = super().backward(dy)
        self.grads = (self.dgamma, self.dbeta, dx)
        return dx

    def params(self):
        dgamma, dbeta = getattr(self, "grads", (self.dgamma, self.dbeta))
        return [(self.gamma, dgamma), (self.beta, dbeta)]


class VarianceMomentumSwapped(Layer):
    """moving_mean right; moving_variance with the momentum the wrong way round."""

    def __call__(self, x, training=False):
        if not training:
            return super().__call__(x)
        keep = self.moving_variance
        y = super().__call__(x, training)
        a = self.momentum
        self.moving_variance = (1 - a) * keep + a * x.var(axis=0)
        return y


class MovingOf(Layer):
    """The moving statistics moved towards those of y, or the moving variance
    towards the mean absolute deviation."""

    target = "y"

    def __call__(self, x, training=False):
        if not training:
            return super().__call__(x)
        mean, variance = self.moving_mean, self.moving_variance
        y = super().__call__(x, training)
        a = self.momentum
        if self.target == "y":
            self.moving_mean = a * mean + (1 - a) * y.mean(axis=0)
            self.moving_variance = a * variance + (1 - a) * y.var(axis=0)
        else:
            spread = np.abs(x - x.mean(axis=0)).mean(axis=0)
            self.moving_variance = a * variance + (1 - a) * spread
        return y


def backward_dx_hat(dx_hat_of):
    """The compact backward with gamma * dy replaced by ``dx_hat_of(dy, gamma)`` (a
    name the staged diagnosis does not read)."""

    def wrong(dy, cache):
        x_hat, gamma, var, eps = cache
        scaled = dx_hat_of(dy, gamma)
        bracket = scaled - scaled.mean(0) - x_hat * (scaled * x_hat).mean(0)
        return bracket / np.sqrt(var + eps), (dy * x_hat).sum(0), dy.sum(0)

    return wrong


def backward_var_of_all(dy, cache):
    """s = 1 / sqrt(var + eps) from the variance of the whole array."""
    (x_hat, gamma, var, eps), x = cache
    s = 1 / np.sqrt(x.var() + eps)
    bracket = dy - dy.mean(0) - x_hat * (dy * x_hat).mean(0)
    return gamma * s * bracket, (dy * x_hat).sum(0), dy.sum(0)


def backward_mean_var(dy, cache):
    """One s for all the features, from the mean of their variances."""
    x_hat, gamma, var, eps = cache
    s = 1 / np.sqrt(np.mean(var) + eps)
    bracket = dy - dy.mean(0) - x_hat * (dy * x_hat).mean(0)
    return gamma * s * bracket, (dy * x_hat).sum(0), dy.sum(0)


def staged_with(**knobs):
    """Workbook page 2's staged backward on forward_staged's cache, dsq = dvar / m
    kept per feature, with one thing changed: ε fixed in a recomputed inv_std, dx_hat
    from ``dx_hat(dy, gamma)``, dmu's sign or dmu not summed, per-feature gradients
    kept as (1, D) (``keepdims``)."""
    keep = knobs.get("keepdims", False)

    def wrong(dy, cache):
        x_centered, inv_std = cache["xc"], cache["inv"]
        x_hat, gamma = cache["x_hat"], cache["gamma"]
        m = dy.shape[0]
        if "eps" in knobs:
            inv_std = 1 / np.sqrt((x_centered**2).mean(axis=0) + knobs["eps"])
        std = 1 / inv_std
        dx_hat = knobs.get("dx_hat", lambda dy, gamma: gamma * dy)(dy, gamma)
        dinv_std = (dx_hat * x_centered).sum(axis=0, keepdims=keep)
        dstd = -dinv_std / std**2
        dvar = 0.5 * dstd / std
        dsq = dvar / m
        dx_centered = inv_std * dx_hat + 2 * x_centered * dsq
        dmu = knobs.get("dmu_sign", -1) * dx_centered.sum(axis=0, keepdims=keep)
        if knobs.get("dmu_unsummed"):
            dmu = -dx_centered
        dx = dx_centered + dmu / m
        return dx, (dy * x_hat).sum(axis=0), dy.sum(axis=0)

    return wrong


class InferenceUnscaled(Layer):
    def __call__(self, x, training=False):
        if training:
            return super().__call__(x, training)
        return (x - self.moving_mean) / np.sqrt(self.moving_variance + 1e-3) + self.beta


class EpsilonInTraining(Layer):
    """ε written as a number into the training branch: Keras's, or PyTorch's."""

    eps = 1e-3

    def __call__(self, x, training=False):
        y = super().__call__(x, training)  # the moving statistics, right
        if not training:
            return y
        mu, var = x.mean(axis=0), x.var(axis=0)
        return self.gamma * (x - mu) / np.sqrt(var + self.eps) + self.beta


class InitFull(Layer):
    def __init__(self, num_features, momentum=0.99, epsilon=1e-3):
        super().__init__(num_features, momentum, epsilon)
        self.moving_variance = np.full(num_features)


class CentresXInPlace(Layer):
    def __call__(self, x, training=False):
        if training:
            x -= x.mean(axis=0)
        return super().__call__(x, training)


class ComputesInFloat32(Layer):
    """y rounded to float32 (computed as on a GPU) and given back in x's dtype, in
    training calls or in inference calls."""

    mode = False

    def __call__(self, x, training=False):
        y = super().__call__(x, training)
        return y.astype(np.float32).astype(x.dtype) if training == self.mode else y


def spatial_sizes_fixed(x, gamma, beta, eps):
    m = 6 * 3 * 4  # N * H * W of the first input
    mu = x.sum(axis=(0, 1, 2)) / m
    var = ((x - mu) ** 2).sum(axis=(0, 1, 2)) / m
    return gamma * (x - mu) / np.sqrt(var + eps) + beta, None


def forward_mean_per_example(x, gamma, beta, eps):
    mu = x.mean(axis=1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(x.var(axis=0) + eps) + beta, None


MISTAKES = {
    # forward: what is computed
    "no ε": (check_forward, [forward_with(eps=0.0)], "formula without ε"),
    "ε outside the root": (
        check_forward,
        [forward_with(eps_outside=True)],
        "ε added to the standard deviation",
    ),
    "ε fixed at 1e-5": (check_forward, [forward_with(eps=1e-5)], "fixed at 1e-05"),
    "ε fixed at 1e-3": (
        check_forward,
        [forward_with(eps=1e-3)],
        r"^forward: ε is fixed at 0\.001 in the code.+\nOn x of small variance",
    ),
    "unbiased variance": (check_forward, [forward_with(ddof=1)], "unbiased variance"),
    "variance, not its root": (
        check_forward,
        [forward_with(no_root=True)],
        "division by the variance itself",
    ),
    "not centred": (check_forward, [forward_with(uncentred=True)], "x not centred"),
    "ε squared": (check_forward, [forward_with(eps_power=2)], r"ε squared"),
    "ε subtracted": (check_forward, [forward_with(eps_sign=-1)], r"ε subtracted"),
    "ε after the division": (
        check_forward,
        [forward_with(eps_after=True)],
        "ε added after the division",
    ),
    "β inside the scaling": (
        check_forward,
        [forward_with(output=lambda x_hat, g, b: g * (x_hat + b))],
        r"β is added inside the scaling",
    ),
    "float32 inside": (
        check_forward,
        [forward_computed_in(np.float32)],
        "computed in float32 and converted back to float64",
    ),
    "float16 inside": (
        check_forward,
        [forward_computed_in(np.float16)],
        "computed in float16 and converted back to float64",
    ),
    "a float32 array inside": (
        check_forward,
        [forward_float32_constant],
        "float32's rounding \\(float64's is about 1e-16\\)",
    ),
    "mean and variance over other axes": (
        check_forward,
        [forward_mixed_axes],
        r"your mean is over axis=0, your variance over axis=1",
    ),
    "right only for an even batch": (
        check_forward,
        [forward_pairs],
        r"forward raised ValueError: .+\non an odd batch with ε = 0\.001 "
        r"\(x of shape \(7, 3\), float64\)",
    ),
    "variance of the uncentred x": (
        check_forward,
        [forward_with(uncentred_var=True)],
        r"mean\(x\*\*2\), without subtracting",
    ),
    "one-pass variance": (
        check_forward,
        [forward_with(one_pass=True)],
        "loses its digits",
    ),
    "per example (layer norm)": (check_forward, [forward_with(axis=1)], "per example"),
    "one statistic for the array": (
        check_forward,
        [forward_with(axis=None)],
        "one mean and one variance for the whole array",
    ),
    "γ and β swapped": (
        check_forward,
        [forward_with(swap=True)],
        "γ and β are swapped",
    ),
    "β missing": (
        check_forward,
        [forward_with(output=lambda x_hat, g, b: g * x_hat)],
        "β is not added",
    ),
    "γ missing": (
        check_forward,
        [forward_with(output=lambda x_hat, g, b: x_hat + b)],
        "not scaled by γ",
    ),
    "γ and β missing": (
        check_forward,
        [forward_with(output=lambda x_hat, g, b: x_hat)],
        "your output is x_hat",
    ),
    # forward: what is returned
    "x changed in place": (check_forward, [forward_in_place], "changed its argument x"),
    "returns y alone": (
        check_forward,
        [lambda *a: forward(*a)[0]],
        "returned one array: it should return \\(y, cache\\)",
    ),
    "returns None": (check_forward, [lambda *a: None], "returned None"),
    "y is a list": (
        check_forward,
        [lambda *a: (forward(*a)[0].tolist(), None)],
        "^forward gave a list for y",
    ),
    "y of the wrong shape": (
        check_forward,
        [lambda *a: (forward(*a)[0].mean(axis=0), None)],
        r"^forward gave y of shape \(5,\); expected \(16, 5\)",
    ),
    "y in float64": (
        check_forward,
        [lambda x, *a: forward(x.astype(np.float64), *a)],
        "^forward gave y of dtype float64 for x of dtype float32",
    ),
    "raises": (
        check_forward,
        [lambda x, g, b, e: x.mean(axis=2)],
        r"^forward raised AxisError: .+\non x with ε = 0\.001 \(x of shape \(16, 5\), "
        r"float64\)",
    ),
    "not implemented": (check_forward, [not_implemented], "not implemented yet"),
    # backward
    "no path through the mean": (
        check_backward,
        [forward, backward_with(no_mean=True)],
        "the sum of dx over the batch should be 0 .* path through the mean",
    ),
    "no path through the variance": (
        check_backward,
        [forward, backward_with(no_var=True)],
        "path through the variance var is missing",
    ),
    "statistics as constants": (
        check_backward,
        [forward, backward_with(no_mean=True, no_var=True)],
        "mu and var treated as constants",
    ),
    "unbiased variance in the backward": (
        check_backward,
        [forward, backward_with(ddof=1)],
        "derivative of the unbiased variance",
    ),
    "no ε in the backward": (
        check_backward,
        [forward, backward_with(eps=0.0)],
        "gradient without ε",
    ),
    "γ missing from dx": (
        check_backward,
        [forward, backward_with(no_gamma=True)],
        "missing the factor γ",
    ),
    "dγ from x": (
        check_backward,
        [forward_staged, backward_dgamma_centred],
        "dgamma uses the centred x",
    ),
    "dγ wrong otherwise": (
        check_backward,
        [forward, backward_with(dgamma=lambda dy, x_hat: np.zeros(5) + 1e-3)],
        "dgamma is wrong",
    ),
    "dγ a mean": (
        check_backward,
        [forward, backward_with(dgamma=lambda dy, x_hat: np.mean(dy * x_hat, axis=0))],
        "dgamma is the mean",
    ),
    "dβ a mean": (
        check_backward,
        [forward, backward_with(dbeta=lambda dy: np.mean(dy, axis=0))],
        "dbeta is the mean",
    ),
    "dγ not summed": (
        check_backward,
        [forward, backward_with(dgamma=lambda dy, x_hat: dy * x_hat)],
        r"dgamma of shape \(16, 5\), the shape of x",
    ),
    "dβ summed over features": (
        check_backward,
        [forward, backward_with(dbeta=lambda dy: dy.sum(axis=1))],
        "summed over the features",
    ),
    "dγ and dβ swapped": (
        check_backward,
        [forward, backward_with(order=lambda g: (g[0], g[2], g[1]))],
        "dgamma and dbeta are swapped",
    ),
    "two values returned": (
        check_backward,
        [forward, backward_with(order=lambda g: tuple(g[:2]))],
        "^backward returned 2 value",
    ),
    "ε left out of s": (
        check_backward,
        [forward, lambda dy, c: _compact(dy, c, s_eps=False)],
        r"^backward: dx leaves ε out of s",
    ),
    "the x_hat term added": (
        check_backward,
        [forward, lambda dy, c: _compact(dy, c, sign_var=-1.0)],
        r"^backward: dx has the x_hat term's sign flipped",
    ),
    "-1/2 missing": (
        check_backward,
        [forward, lambda dy, c: _compact(dy, c, sign_var=-2.0)],
        r"^backward: dx matches dvar without the factor -1/2",
    ),
    "1/m missing in the variance path": (
        check_backward,
        [forward, lambda dy, c: _compact(dy, c, sign_var=len(dy))],
        r"^backward: the path through the variance lacks 1/m",
    ),
    "1/m missing in the mean path": (
        check_backward,
        [forward, lambda dy, c: _compact(dy, c, mean_scale=len(dy))],
        r"^backward: the path through the mean lacks 1/m",
    ),
    "1/(m - 1) in the mean path": (
        check_backward,
        [forward, lambda dy, c: _compact(dy, c, mean_scale=len(dy) / (len(dy) - 1))],
        r"^backward: the path through the mean divides by m - 1",
    ),
    "m from the features' axis": (
        check_backward,
        [forward, lambda dy, c: _compact(dy, c, m_axis=1)],
        r"^backward: dx matches m = x.shape\[1\] = 5, the number of features",
    ),
    "x_centered for x_hat": (
        check_backward,
        [forward, lambda dy, c: _compact(dy, c, centred=True)],
        r"^backward: dx uses x_centered where the formula has x_hat",
    ),
    "γ s on dy alone": (
        check_backward,
        [forward, lambda dy, c: _compact(dy, c, scaled=1)],
        r"^backward: γ \* s multiplies dy alone",
    ),
    "γ s on dy - mean(dy) alone": (
        check_backward,
        [forward, lambda dy, c: _compact(dy, c, scaled=2)],
        r"^backward: γ \* s multiplies \(dy - mean\(dy\)\) alone",
    ),
    "dγ from the raw x": (
        check_backward,
        [forward_keeping_x, backward_dgamma_raw],
        r"^backward: dgamma uses x: it is sum\(dy \* x_hat\)",
    ),
    "backward not implemented": (
        check_backward,
        [forward, not_implemented],
        "backward is not implemented yet",
    ),
    "forward wrong under backward": (
        check_backward,
        [forward_with(ddof=1), backward],
        "which backward needs right first.*unbiased",
    ),
    # per channel
    "per position": (
        check_spatial_forward,
        [forward],
        "over the batch axis only, one per position",
    ),
    "per example and channel (instance norm)": (
        check_spatial_forward,
        [forward_with(axis=(1, 2))],
        "instance normalization",
    ),
    "channels first": (
        check_spatial_forward,
        [forward_with(axis=(0, 2, 3))],
        "treat axis 1 as the channels",
    ),
    "per example, per channel (layer norm)": (
        check_spatial_forward,
        [forward_with(axis=(1, 2, 3))],
        r"your statistics are per example \(over H, W and C\): that is layer "
        "normalization",
    ),
    "over N and H only": (
        check_spatial_forward,
        [forward_with(axis=(0, 1))],
        r"your statistics are over N and H only",
    ),
    "over the channels": (
        check_spatial_forward,
        [forward_with(axis=3)],
        r"over the channels \(axis 3\)",
    ),
    "divided by N, per channel": (
        check_spatial_forward,
        [spatial_divided_by_n],
        r"divide sums over N, H and W by N",
    ),
    "a reshape that mixes channels": (
        check_spatial_forward,
        [spatial_reshaped],
        r"x.reshape\(C, -1\), which mixes the channels",
    ),
    "no ε, per channel": (
        check_spatial_forward,
        [forward_with(axis=(0, 1, 2), eps=0.0)],
        "formula without ε",
    ),
    # the layer
    "momentum the wrong way round": (
        check_layer,
        [layer_with(momentum=0.01)],
        r"^layer\(x, training=True\) moved moving_mean 0\.99 of the way.+"
        "weighs the batch instead of the old value",
    ),
    "momentum 0.9": (
        check_layer,
        [layer_with(momentum=0.9)],
        r"^layer\(x, training=True\) moved moving_mean 0\.1 of the way",
    ),
    "moving statistics never updated": (
        check_layer,
        [layer_with(frozen=True)],
        "did not change moving_mean",
    ),
    "unbiased moving variance": (
        check_layer,
        [layer_with(unbiased=True)],
        "towards the unbiased variance",
    ),
    "updated in inference": (
        check_layer,
        [layer_with(training=lambda t: True)],
        "layer\\(x, training=False\\) changed moving_mean",
    ),
    "training by default": (
        check_layer,
        [TrainingByDefault],
        "called without training, changed moving_mean",
    ),
    "batch statistics in inference": (
        check_layer,
        [layer_with(batch_in_inference=True)],
        r"^layer\(x, training=False\), a new layer: in inference it normalizes with "
        "the batch's own statistics",
    ),
    "moving statistics in training": (
        check_layer,
        [layer_with(moving_in_training=True)],
        r"^layer\(x, training=True\): with training=True it normalizes with the "
        "moving statistics",
    ),
    "PyTorch's ε": (check_layer, [layer_with(epsilon=1e-5)], "PyTorch's default"),
    "moving statistics updated in place": (
        check_layer,
        [LayerInPlace],
        r"^layer\(x, training=True\) changed moving_mean in place: an array a caller "
        r"kept",
    ),
    "__init__ takes only num_features": (
        check_layer,
        [OnlyFeatures],
        r"^OnlyFeatures\(5, momentum=0\.9, epsilon=0\.01\) raised TypeError: .+\n"
        r"__init__ should take momentum and epsilon as keywords",
    ),
    "momentum ignored": (
        check_layer,
        [ignoring("momentum")],
        r"^layer\(x, training=True\) of Ignores\(5, momentum=0\.9, epsilon=0\.01\) "
        r"moved moving_mean 0\.01 of the way.+not the momentum=0\.9 it was built with",
    ),
    "epsilon ignored": (
        check_layer,
        [ignoring("epsilon")],
        r"not the epsilon=0\.01 it was built with",
    ),
    "moving variance of x_hat": (
        check_layer,
        [type("Towards", (LayerWithUpdate,), {"target": "x_hat"})],
        r"moved moving_variance towards the variance of x_hat",
    ),
    "variance around the moving mean": (
        check_layer,
        [type("Around", (LayerWithUpdate,), {"target": "around moving mean"})],
        r"^layer\(x, training=True\): your variance matches mean\(x\*\*2\), without "
        r"subtracting the mean",
    ),
    "variance itself in inference": (
        check_layer,
        [InferenceWith],
        r"in inference it divides by sqrt\(moving_variance\) \+ epsilon or by "
        r"moving_variance \+ epsilon \(the same while moving_variance is 1\)",
    ),
    "moving mean left out in inference": (
        check_layer,
        [type("NoMean", (InferenceWith,), {"center": False})],
        r"^layer\(x, training=False\), after two training calls: in inference it "
        r"does not subtract moving_mean",
    ),
    "the first batch's statistics kept": (
        check_layer,
        [FirstBatchOnly],
        r"^layer\(x, training=True\): y is wrong\.\nOn a second batch, 2 x \+ 1",
    ),
    "params() pairs γ with None": (
        check_trainable_layer,
        [
            trainable_with(
                params=lambda self: [(self.gamma, None), (self.beta, self.dbeta)]
            )
        ],
        r"^layer\.params\(\) pairs gamma with None: pair it with dgamma, an array of "
        r"shape \(5,\)",
    ),
    "params() pairs γ with twice dγ": (
        check_trainable_layer,
        [
            trainable_with(
                params=lambda self: [
                    (self.gamma, 2 * self.dgamma),
                    (self.beta, self.dbeta),
                ]
            )
        ],
        r"^layer\.params\(\) pairs gamma with a gradient that is not dgamma of the "
        r"last backward\.\nOn x with ε = 0\.001 \(x of shape \(16, 5\), float64\), "
        r"dgamma\[",
    ),
    "params() lists γ twice": (
        check_trainable_layer,
        [
            trainable_with(
                params=lambda self: [
                    (self.gamma, self.dgamma),
                    (self.beta, self.dbeta),
                    (self.gamma, self.dgamma),
                ]
            )
        ],
        r"^one step p -= 0\.1 \* g over layer\.params\(\) did not move the output",
    ),
    "gradients added up over steps": (
        check_trainable_layer,
        [TAccumulate],
        r"^layer\.backward\(dy\) adds each step's dgamma to the last",
    ),
    "what inference computed kept for backward": (
        check_trainable_layer,
        [TInferenceCaches],
        r"^layer\.backward\(dy\) after a training call and then an inference call "
        r"uses what the inference call computed",
    ),
    "a step taken inside backward": (
        check_trainable_layer,
        [TStepInBackward],
        r"^layer\.backward\(dy\) changed gamma: backward only computes",
    ),
    "the first call's x_hat kept": (
        check_trainable_layer,
        [TCacheOnce],
        r"^layer\.backward\(dy\) on the second training call uses the x_hat of the "
        r"first",
    ),
    "no gradients before the first backward": (
        check_trainable_layer,
        [TNoInitGrads],
        r"^layer\.params\(\), before any training call, raised AttributeError.+\n"
        r"A network lists its parameters before the first step",
    ),
    "γ in float32 in a float64 network": (
        check_trainable_layer,
        [TFloat32Params],
        r"^layer\.backward\(dy\): the result is off by \S+ of its size, float32's "
        r"rounding",
    ),
    "the moving variance in backward": (
        check_trainable_layer,
        [TMovingInBackward],
        r"^layer\.backward\(dy\): dx is the right dx times a factor that differs "
        r"from feature to feature",
    ),
    "std for s": (
        check_backward,
        [forward, compact_scaled(-1)],
        r"^backward: dx matches std = sqrt\(var \+ eps\) where the formula has s",
    ),
    "s squared": (
        check_backward,
        [forward, compact_scaled(2)],
        r"^backward: dx matches s\*\*2 where the formula has s",
    ),
    "the cache changed in place": (
        check_backward,
        [forward_nodes, backward_mutating_cache],
        r"^backward changed cache\['x_centered'\] in place",
    ),
    "a node not summed": (
        check_backward,
        [forward_nodes, backward_unsummed_node],
        r"^backward: dinv_std, the gradient of inv_std, has shape \(16, 5\): it has "
        r"the shape of inv_std, \(D,\), one per feature, here \(5,\) \(right "
        r"before it: dx_hat\)",
    ),
    "sums for means": (
        check_backward,
        [forward, compact_with(sums=True)],
        r"^backward: dx uses sums where the formula has means",
    ),
    "the dy term over m": (
        check_backward,
        [forward, compact_with(dy_over_m=True)],
        r"^backward: the dy term lacks the factor m",
    ),
    "means over the whole array": (
        check_backward,
        [forward, compact_with(axis=None)],
        r"^backward: dx takes mean\(dy\) and mean\(dy \* x_hat\) over the whole",
    ),
    "moving variance towards std": (
        check_layer,
        [type("TowardsStd", (MovingTowards,), {"target": "std"})],
        r"moved moving_variance towards the standard deviation, sqrt\(var\)",
    ),
    "moving mean towards the mean of x_hat": (
        check_layer,
        [type("TowardsXhatMean", (MovingTowards,), {"target": "x_hat mean"})],
        r"moved moving_mean towards the mean of x_hat \(0 after normalizing\)",
    ),
    "moving variance towards mean(x**2)": (
        check_layer,
        [type("TowardsSecondMoment", (MovingTowards,), {"target": "second moment"})],
        r"moved moving_variance towards mean\(x\*\*2\), without subtracting the mean",
    ),
    "moving variance towards var + ε": (
        check_layer,
        [type("TowardsVarEps", (MovingTowards,), {"target": "var + eps"})],
        r"moved moving_variance towards var \+ epsilon",
    ),
    "variance around the updated moving mean": (
        check_layer,
        [type("AroundNew", (MovingTowards,), {"target": "around the new mean"})],
        r"a variance around the moving mean just updated",
    ),
    "training with the updated moving statistics": (
        check_layer,
        [TrainsOnUpdatedMoving],
        r"^layer\(x, training=True\): with training=True it normalizes with the "
        r"moving statistics just updated",
    ),
    "β missing in inference": (
        check_layer,
        [InferenceWithoutBeta],
        r"in inference β is not added",
    ),
    "(cache, y) returned": (
        check_forward,
        [forward_returning("cache first")],
        r"^forward returned y second: return \(y, cache\)",
    ),
    "multiplied by the standard deviation": (
        check_forward,
        [forward_times_std],
        r"^forward: your output multiplies by the standard deviation",
    ),
    "variance a sum": (
        check_forward,
        [forward_variance_sum],
        r"^forward: your variance is a sum over the batch",
    ),
    "the batch size fixed at 16": (
        check_forward,
        [forward_sixteen],
        r"^forward: y is right on the inputs of shape \(16, 5\) but wrong on an odd "
        r"batch with ε = 0\.001 of shape \(7, 3\): is a size fixed in your code",
    ),
    "sqrt(std + ε)": (
        check_forward,
        [forward_by(lambda c, eps: np.sqrt(np.sqrt((c**2).mean(0)) + eps))],
        r"^forward: your output divides by sqrt\(std \+ eps\)",
    ),
    "the mean absolute deviation": (
        check_forward,
        [forward_by(lambda c, eps: np.abs(c).mean(0) + eps)],
        r"^forward: your scale is the mean absolute deviation",
    ),
    "ε added to x - mu": (
        check_forward,
        [forward_by(numerator_eps=True)],
        r"^forward: ε is added to x - mu",
    ),
    "variance divided by D": (
        check_forward,
        [forward_by(lambda c, eps: np.sqrt((c**2).sum(0) / c.shape[1] + eps))],
        r"^forward: your variance divides by x\.shape\[1\], the number of features",
    ),
    "variance over the whole array": (
        check_forward,
        [forward_by(lambda c, eps: np.sqrt((c**2).mean() + eps))],
        r"^forward: your mean is over axis=0, your variance over axis=\(0, 1\)",
    ),
    "variance over N only, per channel": (
        check_spatial_forward,
        [spatial_by("mixed")],
        r"^forward: your mean is over axis=\(0, 1, 2\), your variance over axis=0",
    ),
    "H taken for the channels": (
        check_spatial_forward,
        [spatial_by("by H")],
        r"^forward: your statistics come from x\.reshape\(-1, x\.shape\[1\]\)",
    ),
    "a transpose undone by reshape": (
        check_spatial_forward,
        [spatial_by("transpose")],
        r"^forward: your output goes back from \(N, C, H, W\) to \(N, H, W, C\) by "
        r"reshape",
    ),
    "one mean over the whole array": (
        check_backward,
        [forward, lambda dy, c: _compact(dy, c, whole=True)],
        r"^backward: dx takes a mean over the whole array where it needs one per "
        r"feature",
    ),
    "1/2 missing": (
        check_backward,
        [forward, lambda dy, c: _compact(dy, c, sign_var=2.0)],
        r"^backward: dx matches dvar without the factor 1/2",
    ),
    "moved from the initial values": (
        check_layer,
        [MovedFromInitial],
        r"^layer\(x, training=True\) moved moving_mean from its initial value \(0\), "
        r"not from its current one",
    ),
    "γ and β swapped in inference": (
        check_layer,
        [type("Swapped", (InferenceWith,), {"swap": True})],
        r"in inference γ and β are swapped",
    ),
    "ε outside the root in inference": (
        check_layer,
        [EpsilonOutsideInInference],
        r"in inference it divides by sqrt\(moving_variance\) \+ epsilon or by "
        r"moving_variance \+ epsilon \(the same while moving_variance is 1\)",
    ),
    "unbiased variance inside the layer": (
        check_layer,
        [UnbiasedInTraining],
        r"^layer\(x, training=True\): your output matches the unbiased variance",
    ),
    # the layer in a network: backward and params()
    "params() gives copies": (
        check_trainable_layer,
        [
            trainable_with(
                params=lambda self: [
                    (self.gamma.copy(), self.dgamma),
                    (self.beta.copy(), self.dbeta),
                ]
            )
        ],
        r"^layer\.params\(\) gives a copy of gamma, not the array itself",
    ),
    "params() pairs crosswise": (
        check_trainable_layer,
        [
            trainable_with(
                params=lambda self: [(self.gamma, self.dbeta), (self.beta, self.dgamma)]
            )
        ],
        r"^layer\.params\(\) pairs gamma with dbeta, crosswise",
    ),
    "params() leaves out β": (
        check_trainable_layer,
        [trainable_with(params=lambda self: [(self.gamma, self.dgamma)])],
        r"^layer\.params\(\) leaves out beta",
    ),
    "params() holds the zeros of __init__": (
        check_trainable_layer,
        [TrainableStale],
        r"^layer\.params\(\) pairs gamma with zeros, not the dgamma the last backward",
    ),
    "params() returns None": (
        check_trainable_layer,
        [trainable_with(params=lambda self: None)],
        r"^layer\.params\(\) returned None: return a list of \(parameter, gradient\)",
    ),
    "backward sets no dgamma": (
        check_trainable_layer,
        [NoDgamma],
        r"^layer\.backward\(dy\) did not set self\.dgamma",
    ),
    "backward without the mean path": (
        check_trainable_layer,
        [
            trainable_with(
                backward=lambda self, dy: (
                    TrainableLayer.backward(self, dy)
                    + self.gamma * self.inv_std * dy.mean(axis=0)
                )
            )
        ],
        r"^layer\.backward\(dy\): the sum of dx over the batch should be 0",
    ),
    "no ε in inference": (
        check_layer,
        [layer_with(epsilon=0.0)],
        "in inference it divides by sqrt\\(moving_variance\\) without epsilon, or not "
        "at all",
    ),
    "moving variance starts at 0": (
        check_layer,
        [layer_with(moving_variance=np.zeros)],
        "moving_variance starts at",
    ),
    "a scalar moving mean": (
        check_layer,
        [ScalarMovingMean],
        r"moving_mean should be a NumPy array of shape \(5,\)",
    ),
    "attributes missing": (
        check_layer,
        [type("Empty", (), {"__init__": lambda self, n: None})],
        "has no attribute gamma",
    ),
    "layer returns nothing": (
        check_layer,
        [type("Silent", (Layer,), {"__call__": lambda self, x, training=False: None})],
        "gave None for y: did it forget a return",
    ),
    "layer raises": (
        check_layer,
        [
            type(
                "Broken",
                (Layer,),
                {"__call__": lambda self, x, training=False: x[9, 9]},
            )
        ],
        r"layer\(x, training=False\) raised IndexError",
    ),
    "layer not implemented": (
        check_layer,
        [type("Blank", (), {"__init__": not_implemented})],
        "Blank\\(5\\) is not implemented yet",
    ),
    # asked for by the mutation runs
    "dgamma added up, x_hat kept from inference": (
        check_trainable_layer,
        [TKeepsInferenceAddsDgamma],
        r"^layer\.backward\(dy\): dgamma is wrong\.\nOn a second batch, 2 x \+ 1, ",
    ),
    "backward reads an x never kept": (
        check_trainable_layer,
        [TNoXKept],
        r"^layer\.backward\(dy\) raised AttributeError: .+\non x with ε = 0\.001",
    ),
    "params() unpacks three gradients": (
        check_trainable_layer,
        [TKeepsThreeGradients],
        r"^layer\.params\(\) raised ValueError: .+\non x with ε = 0\.001",
    ),
    "params() gives (name, parameter, gradient)": (
        check_trainable_layer,
        [
            trainable_with(
                params=lambda self: [
                    ("gamma", self.gamma, self.dgamma),
                    ("beta", self.beta, self.dbeta),
                ]
            )
        ],
        r"^layer\.params\(\) returned \[\('gamma', array",
    ),
    "dgamma not summed in the layer": (
        check_trainable_layer,
        [
            trainable_with(
                backward=lambda self, dy: (
                    TrainableLayer.backward(self, dy),
                    setattr(self, "dgamma", dy * self.x_hat),
                )[0]
            )
        ],
        r"^layer\.backward\(dy\) gave dgamma of shape \(16, 5\), the shape of x",
    ),
    "momentum off in its seventh digit": (
        check_layer,
        [layer_with(momentum=0.99 + 1e-7)],
        r"^layer\(x, training=True\) moved moving_mean 0\.0099999 of the way from its "
        r"old value to the batch's; with momentum 0\.99 it moves 0\.01 of the way",
    ),
    "moving variance's momentum the wrong way round": (
        check_layer,
        [VarianceMomentumSwapped],
        r"^layer\(x, training=True\) moved moving_variance 0\.99 of the way.+"
        "weighs the batch instead of the old value",
    ),
    "moving statistics of y": (
        check_layer,
        [MovingOf],
        r"^layer\(x, training=True\) moved moving_mean towards another value than "
        r"the batch's mean\.",
    ),
    "moving variance towards the mean absolute deviation": (
        check_layer,
        [type("MovingOfSpread", (MovingOf,), {"target": "spread"})],
        r"^layer\(x, training=True\) moved moving_variance towards another value "
        r"than the batch's variance\.",
    ),
    "γ twice in dx": (
        check_backward,
        [forward, backward_dx_hat(lambda dy, gamma: gamma * gamma * dy)],
        r"^backward: dx matches γ twice",
    ),
    "|γ| in dx": (
        check_backward,
        [forward, backward_dx_hat(lambda dy, gamma: np.abs(gamma) * dy)],
        r"^backward: dx matches \|γ\| where the formula has γ",
    ),
    "s from the variance of the whole array": (
        check_backward,
        [forward_keeping_x, backward_var_of_all],
        r"^backward: dx is the right dx times a factor that differs from feature to "
        r"feature \(feature \d: ",
    ),
    "s from the mean of the variances": (
        check_backward,
        [forward, backward_mean_var],
        r"^backward: dx is the right dx times a factor that differs from feature to "
        r"feature \(feature \d: ",
    ),
    "the 2 of d(x_centered**2) missing": (
        check_backward,
        [forward, lambda dy, c: _compact(dy, c, sign_var=0.5)],
        r"^backward: the sum of dx \* x_hat over the batch should be .+ the path "
        "through the variance var is wrong",
    ),
    "the mean term's sign flipped": (
        check_backward,
        [forward, lambda dy, c: _compact(dy, c, mean_scale=-1.0)],
        r"^backward: the sum of dx over the batch should be 0 .+ the path through "
        "the mean mu is wrong",
    ),
    "dgamma a list": (
        check_backward,
        [forward, backward_with(dgamma=lambda dy, x_hat: list((dy * x_hat).sum(0)))],
        r"^backward gave a list for dgamma",
    ),
    "a staged backward with ε fixed at 1e-3": (
        check_backward,
        [forward_staged, staged_with(eps=1e-3)],
        r"^backward: dstd, the gradient of std, is the first of your intermediate "
        r"gradients that is wrong \(right before it: dx_hat, dinv_std\).+"
        r"\nOn x of small variance with ε = 0\.5",
    ),
    "a staged backward with |γ| in dx_hat": (
        check_backward,
        [forward_staged, staged_with(dx_hat=lambda dy, gamma: np.abs(gamma) * dy)],
        r"^backward: dx_hat, the gradient of x_hat, is the first of your intermediate "
        r"gradients that is wrong \(right before it: none\)",
    ),
    "a staged backward with dx_hat summed": (
        check_backward,
        [forward_staged, staged_with(dx_hat=lambda dy, gamma: (gamma * dy).sum(0))],
        r"^backward: dx_hat, the gradient of x_hat, has shape \(5,\): it has the shape "
        r"of x_hat, \(N, D\), as x, here \(16, 5\) \(right before it: none\)",
    ),
    "a staged backward with dmu not summed": (
        check_backward,
        [forward_staged, staged_with(dmu_unsummed=True)],
        r"^backward: dmu, the gradient of mu, has shape \(16, 5\): it has the shape "
        r"of mu, \(D,\), one per feature, here \(5,\) \(right before it: dx_hat, "
        r"dinv_std, dstd, dvar, dsq, dx_centered\)",
    ),
    "a staged backward in (1, D) with dmu's sign flipped": (
        check_backward,
        [forward_staged, staged_with(keepdims=True, dmu_sign=1)],
        r"^backward: dmu, the gradient of mu, is the first of your intermediate "
        r"gradients that is wrong \(right before it: dx_hat, dinv_std, dstd, dvar, "
        r"dsq, dx_centered\)",
    ),
    "γ missing in inference": (
        check_layer,
        [InferenceUnscaled],
        r"^layer\(x, training=False\), a new layer: in inference x_hat is not scaled",
    ),
    "Keras's ε written into training": (
        check_layer,
        [EpsilonInTraining],
        r"^layer\(x, training=True\) of EpsilonInTraining\(5, momentum=0\.9, "
        r"epsilon=0\.01\): it matches epsilon 0\.001, Keras's default",
    ),
    "PyTorch's ε written into training": (
        check_layer,
        [type("EpsilonInTraining", (EpsilonInTraining,), {"eps": 1e-5})],
        r"^layer\(x, training=True\): it matches epsilon 1e-5 \(PyTorch's default\)",
    ),
    "np.full without its value in __init__": (
        check_layer,
        [InitFull],
        r"^InitFull\(5\) raised TypeError: .+\non a new layer\.",
    ),
    "x centred in place in training": (
        check_layer,
        [CentresXInPlace],
        r"^layer\(x, training=True\) changed its argument x in place: work on new "
        r"arrays \(x - mu makes one",
    ),
    "y in float32 from a layer": (
        check_layer,
        [
            type(
                "Float32Out",
                (Layer,),
                {
                    "__call__": lambda self, x, training=False: Layer.__call__(
                        self, x, training
                    ).astype(np.float32)
                },
            )
        ],
        r"^layer\(x, training=False\) gave y of dtype float32 for x of dtype float64",
    ),
    "inference rounded to float32": (
        check_layer,
        [ComputesInFloat32],
        r"^layer\(x, training=False\), a new layer: every value of your output is a "
        r"float32 number",
    ),
    "training rounded to float32": (
        check_layer,
        [type("TrainsInFloat32", (ComputesInFloat32,), {"mode": True})],
        r"^layer\(x, training=True\): every value of your output is a float32 number",
    ),
    "sizes fixed, per channel": (
        check_spatial_forward,
        [spatial_sizes_fixed],
        r"^forward: y is right on the inputs of shape \(6, 3, 4, 5\) but wrong on an "
        r"odd batch with ε = 0\.001 of shape \(3, 5, 2, 4\)",
    ),
    "mean per example, variance per feature": (
        check_forward,
        [forward_mean_per_example],
        r"^forward: your mean is over axis=1, your variance over axis=0: take both "
        r"over axis=0\.",
    ),
}


@pytest.mark.parametrize("name", MISTAKES)
def test_each_mistake_fails_with_its_own_message(name):
    check, functions, message = MISTAKES[name]
    with pytest.raises(CheckFailed, match=re.compile(message, re.DOTALL)):
        check(*functions)


def test_the_mistake_library_is_large():
    assert len(MISTAKES) >= 20
    assert {m[0] for m in MISTAKES.values()} == {
        check_forward,
        check_backward,
        check_spatial_forward,
        check_layer,
        check_trainable_layer,
    }


def failure(name):
    check, functions, _ = MISTAKES[name]
    with pytest.raises(CheckFailed) as caught:
        check(*functions)
    return str(caught.value)


def test_messages_are_specific():
    # the first line names the mistake; the rest says where (it may repeat)
    first_lines = [failure(name).splitlines()[0] for name in MISTAKES]
    assert len(set(first_lines)) >= len(first_lines) - 3


def test_a_failure_says_where_expected_against_received():
    message = failure("no ε")
    assert re.search(r"y\[\d+, \d+\] is \S+; expected \S+", message)
    assert "float64" in message


def test_an_exception_of_the_readers_code_is_chained():
    check, functions, _ = MISTAKES["raises"]
    with pytest.raises(CheckFailed) as caught:
        check(*functions)
    assert isinstance(caught.value.__cause__, np.exceptions.AxisError)


def test_an_unrecognised_mistake_is_described():
    def odd(x, gamma, beta, eps):
        y, cache = forward(x, gamma, beta, eps)
        return y + 0.1 * x, cache

    with pytest.raises(CheckFailed, match=r"y is wrong\.\nOn x with ε = 0.001"):
        check_forward(odd)


def test_check_failed_is_an_assertion_error():
    assert issubclass(CheckFailed, AssertionError)


@pytest.mark.parametrize(
    "check", [check_forward, check_spatial_forward, check_backward, check_layer]
)
def test_a_check_wants_callables(check):
    with pytest.raises(TypeError, match="must be"):
        check(*[42] * (2 if check is check_backward else 1))


def test_check_backward_wants_a_callable_backward():
    with pytest.raises(TypeError, match="backward must be callable"):
        check_backward(forward, "backward")


DIFFERENCE = re.compile(
    r"^On (?P<case>.+ \(x of shape \(.+\), float(32|64)\)|a second batch.+), "
    r"(?P<name>\w+)\[[\d, ]+\] is (?P<got>\S+); expected (?P<want>\S+)\.$"
)
ERROR_SIZE = re.compile(
    r"^Largest error \S+, relative to max\(1, max\|(\w+)\|\) = \S+: \S+; "
    r"the check allows (1e-09 in float64|0\.0002 in float32)\.$"
)


def where(message):
    """The lines of a failure that say where, against what, and how far: or None."""
    lines = message.splitlines()
    found = [i for i, line in enumerate(lines) if line.startswith("On ")]
    return (lines[found[-1]], lines[found[-1] + 1]) if found else None


@pytest.mark.parametrize("name", MISTAKES)
def test_a_wrong_number_is_located_and_the_function_named(name):
    message = failure(name)
    check, functions, _ = MISTAKES[name]
    first = message.splitlines()[0]
    if where(message):  # a wrong value: where, against what, and how far
        located, size = where(message)
        assert DIFFERENCE.match(located), located
        assert ERROR_SIZE.match(size), size
        got, want = DIFFERENCE.match(located).group("got", "want")
        assert got != want
        callers = ("forward", "backward", "layer", "one step")
        assert first.startswith(callers), first


def test_the_location_is_the_largest_difference():
    def one_wrong(x, gamma, beta, eps):
        y, cache = forward(x, gamma, beta, eps)
        y = y.copy()
        y[3, 2] += 0.5
        y[4, 1] += 0.1
        return y, cache

    with pytest.raises(CheckFailed) as caught:
        check_forward(one_wrong)
    located, size = where(str(caught.value))
    received, expected = map(float, DIFFERENCE.match(located).group("got", "want"))
    assert "y[3, 2]" in located and abs(received - expected - 0.5) < 1e-5
    assert size.startswith("Largest error 0.5, ")


def test_the_missing_mean_path_is_reported_with_the_readers_own_sum():
    from bnbook.workbook.cases import _cases

    message = failure("no path through the mean")
    feature, value = re.search(r"for feature (\d+) it is ([\d.]+)", message).groups()
    case = _cases((16, 5))[0]
    y, cache = forward(case.x, case.gamma, case.beta, case.eps)
    dy = np.random.default_rng(1).standard_normal(case.x.shape)
    dx = backward_with(no_mean=True)(dy, cache)[0]
    sums = np.abs(dx.sum(axis=0))
    assert int(feature) == int(np.argmax(sums))
    assert float(value) == pytest.approx(sums.max(), rel=1e-2)


def test_a_float32_near_miss_is_printed_with_digits_that_differ():
    # float32 arithmetic on float64 input: right to 6 digits, wrong to float64's
    # rounding; the message shows digits enough to tell the two numbers apart.
    def float32_inside(x, gamma, beta, eps):
        y, cache = forward(x.astype(np.float32), gamma, beta, eps)
        return y.astype(x.dtype), cache

    located, size = where(failure_of(check_forward, float32_inside))
    got, want = DIFFERENCE.match(located).group("got", "want")
    assert got != want and len(got) > len("-3.48762")
    relative = float(re.search(r": (\S+); the check allows", size)[1])
    assert 1e-9 < relative < 1e-5


def failure_of(check, *functions):
    with pytest.raises(CheckFailed) as caught:
        check(*functions)
    return str(caught.value)


def test_a_backward_that_returns_no_tuple_is_told_how_many_values():
    with pytest.raises(CheckFailed, match="returned 1 value"):
        check_backward(forward, lambda dy, cache: {"dx": dy})


def off_by(function, index, factor=1 + 1e-6):
    """``function`` with its ``index``-th result a millionth too large."""

    def wrong(*args):
        results = list(function(*args))
        results[index] = results[index] * factor
        return tuple(results)

    return wrong


class LayerOffInTraining(Layer):
    def __call__(self, x, training=False):
        y = super().__call__(x, training)
        return y * (1 + 1e-6) if training else y


class LayerOffInInference(Layer):
    def __call__(self, x, training=False):
        y = super().__call__(x, training)
        return y if training else y * (1 + 1e-6)


@pytest.mark.parametrize(
    "check, functions",
    [
        (check_forward, [off_by(forward, 0)]),
        (check_backward, [forward, off_by(backward, 0)]),
        (check_backward, [forward, off_by(backward, 1)]),
        (check_backward, [forward, off_by(backward, 2)]),
        (check_layer, [type("Off", (Layer,), {"__call__": off_by(Layer.__call__, 0)})]),
        (check_layer, [LayerOffInTraining]),
        (check_layer, [LayerOffInInference]),
        (check_layer, [layer_with(momentum=0.99 + 1e-7)]),
    ],
)
def test_float64_results_must_be_right_to_rounding(check, functions):
    # a millionth off is far above float64's rounding, far below float32's tolerance
    with pytest.raises(CheckFailed):
        check(*functions)


@pytest.mark.parametrize("index, name", [(1, "dgamma"), (2, "dbeta")])
def test_a_gradient_of_the_wrong_shape_is_named(index, name):
    def wrong(dy, cache):
        grads = list(backward(dy, cache))
        grads[index] = grads[index][None, :]
        return tuple(grads)

    with pytest.raises(CheckFailed, match=rf"^backward gave {name} of shape \(1, 5\)"):
        check_backward(forward, wrong)
    with pytest.raises(CheckFailed, match=r"^backward gave None for dx"):
        check_backward(forward, lambda dy, cache: (None, *backward(dy, cache)[1:]))


def test_swapped_means_both_swapped():
    def dgamma_twice(dy, cache):
        dx, dgamma, _ = backward(dy, cache)
        return dx, dgamma, dgamma

    with pytest.raises(CheckFailed) as caught:
        check_backward(forward, dgamma_twice)
    assert "swapped" not in str(caught.value)
    assert str(caught.value).startswith("backward: dbeta is wrong.")


def test_the_one_pass_variance_fails_on_the_large_mean_in_float32():
    message = failure("one-pass variance")
    case = "x of mean 1000 and standard deviation 1 (x of shape (16, 5), float32)"
    assert f"On {case}, y[" in message


def test_an_exception_in_backward_names_the_input():
    def broken(dy, cache):
        raise ValueError("no")

    with pytest.raises(
        CheckFailed, match=r"^backward raised ValueError: no\non x with"
    ):
        check_backward(forward, broken)


def test_a_result_that_is_no_array_is_named_with_its_type():
    with pytest.raises(CheckFailed, match=r"^forward gave y of type float: expected"):
        check_forward(lambda *a: (3.0, None))
    with pytest.raises(CheckFailed, match="returned 1 value"):
        check_backward(forward, lambda dy, cache: {"dx": dy, "dgamma": dy})


def test_the_second_training_call_brings_a_new_batch():
    with pytest.raises(CheckFailed, match=r"^layer\(x, training=True\): y is wrong"):
        check_layer(FirstBatchOnly)


def test_the_variance_path_message_gives_the_sum_that_eps_leaves():
    # With eps > 0, sum(dx * x_hat) is gamma * s * sum(dy * x_hat) * eps / (var + eps),
    # not 0: the message quotes that value, and the reader's, for one feature.
    message = failure("no path through the variance")
    found = re.search(r"for feature (\d+) it is (\S+) instead of (\S+):", message)
    assert found, message
    received, expected = float(found[2]), float(found[3])
    assert received != expected
    assert "eps / (var + eps)" in message


def test_the_sum_of_dx_times_x_hat_is_the_eps_term():
    rng = np.random.default_rng(3)
    x, dy = rng.normal(2.0, 0.4, (16, 5)), rng.normal(size=(16, 5))
    gamma, eps = rng.normal(size=5), 0.5
    _, cache = forward(x, gamma, np.zeros(5), eps)
    dx = backward(dy, cache)[0]
    x_hat, var = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps), x.var(axis=0)
    s = 1 / np.sqrt(var + eps)
    expected = gamma * s * np.sum(dy * x_hat, axis=0) * eps / (var + eps)
    np.testing.assert_allclose(np.sum(dx * x_hat, axis=0), expected, rtol=1e-10)
    assert np.all(np.abs(expected) > 1e-3)  # not 0


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (
            lambda dy, c: backward(dy, c)[::-1],
            r"^backward returned an array of x's shape \(16, 5\) as value 3 of 3: "
            r"return \(dx, dgamma, dbeta\) in that order",
        ),
        (
            lambda dy, c: _compact(dy, c, scale=16.0),
            r"^backward: dx is 16 times the right dx everywhere",
        ),
        (
            lambda dy, c: _compact(dy, c, sign_var=0.5),
            r"^backward: the sum of dx \* x_hat .* the path through the variance var "
            r"is wrong",
        ),
        (
            lambda dy, c: _compact(dy, c, mean_scale=3.0),
            r"^backward: the sum of dx over the batch should be 0 .* the path through "
            r"the mean mu is wrong",
        ),
    ],
)
def test_a_wrong_backward_is_told_what_is_wrong(wrong, message):
    with pytest.raises(CheckFailed, match=re.compile(message, re.DOTALL)):
        check_backward(forward, wrong)
    with pytest.raises(CheckFailed) as caught:
        check_backward(forward, wrong)
    if "x's shape" not in message:  # and where, against what
        assert DIFFERENCE.match(where(str(caught.value))[0])


def backward_staged_book(dy, cache, power=3, dmu_sign=-1):
    """Workbook page 2's staged backward, with dvar's power or dmu's sign changed."""
    x_centered, inv_std = cache["xc"], cache["inv"]
    x_hat, gamma = cache["x_hat"], cache["gamma"]
    m = dy.shape[0]
    dbeta = dy.sum(axis=0)
    dgamma = (dy * x_hat).sum(axis=0)
    dx_hat = gamma * dy
    dinv_std = (dx_hat * x_centered).sum(axis=0)
    dvar = -0.5 * inv_std**power * dinv_std
    dx_centered = inv_std * dx_hat + 2 / m * x_centered * dvar
    dmu = dmu_sign * dx_centered.sum(axis=0)
    dx = dx_centered + dmu / m
    return dx, dgamma, dbeta


@pytest.mark.parametrize(
    "knobs, node, right",
    [
        ({"power": 2}, "dvar, the gradient of var", "dx_hat, dinv_std"),
        ({"dmu_sign": 1}, "dmu, the gradient of mu", "dx_hat, dinv_std, dvar, dx_c"),
    ],
)
def test_a_staged_backward_is_told_its_first_wrong_node(knobs, node, right):
    check_backward(forward_staged, backward_staged_book)  # right as it stands

    # the same function with other defaults: the check reads its variables
    defaults = {"power": 3, "dmu_sign": -1} | knobs
    wrong = types.FunctionType(
        backward_staged_book.__code__, globals(), "wrong", tuple(defaults.values())
    )
    message = failure_of(check_backward, forward_staged, wrong)
    assert message.startswith(
        f"backward: {node}, is the first of your intermediate gradients that is "
        f"wrong (right before it: {right}"
    ), message
    assert re.search(rf"^On .+, {node.split(',')[0]}\[", message, re.MULTILINE)


def ipython_traceback(check, *functions):
    """The traceback IPython shows a reader for a failed check, as plain text."""
    from IPython.core import ultratb

    try:
        check(*functions)
    except CheckFailed:
        kind, value, traceback = sys.exc_info()
    formatter = ultratb.AutoFormattedTB(mode="Context", theme_name="nocolor")
    return formatter.text(kind, value, traceback)


def reader_raises(x, gamma, beta, eps):
    return x[9, 9, 9], None  # the reader's own line, shown to them


@pytest.mark.parametrize(
    "check, functions, most_lines",
    [
        (check_forward, [forward_with(eps=0.0)], 20),
        (check_backward, [forward, backward_with(no_mean=True)], 20),
        (check_layer, [layer_with(momentum=0.9)], 20),
        (check_trainable_layer, [NoDgamma], 20),
        (check_forward, [reader_raises], 30),
    ],
)
def test_ipython_shows_the_message_and_one_frame_of_the_check(
    check, functions, most_lines
):
    text = ipython_traceback(check, *functions)
    lines = text.splitlines()
    assert len(lines) <= most_lines, text
    tracebacks = text.count("Traceback (most recent call last)")
    assert text.count("bnbook/workbook/") == 1, text  # the line that raises
    if tracebacks == 2:  # the reader's code raised: their line is shown
        assert "return x[9, 9, 9], None" in text


class RecordsDtypes(TrainableLayer):
    """The right layer, noting the dtype of every array a check hands it."""

    seen = []

    def __call__(self, x, training=False):
        self.seen.append(x.dtype)
        return super().__call__(x, training)

    def backward(self, dy):
        self.seen.append(dy.dtype)
        return super().backward(dy)


@pytest.mark.parametrize("check", [check_layer, check_trainable_layer])
def test_a_float64_layer_is_handed_float64_arrays_only(check):
    RecordsDtypes.seen.clear()
    check(RecordsDtypes)
    assert set(RecordsDtypes.seen) == {np.dtype(np.float64)}
    assert len(RecordsDtypes.seen) >= 8


def test_the_inputs_include_an_odd_batch_and_unequal_sides():
    from bnbook.workbook.cases import DENSE, SPATIAL, _cases

    for shapes in (DENSE, SPATIAL):
        cases = _cases(*shapes)
        assert any(len(c.x) % 2 == 1 for c in cases)
        assert all(len(set(c.x.shape)) == len(c.x.shape) for c in cases)


# Every message in full, as stored in workbook_messages.json: a change of wording, or
# of a number it quotes (to 4 significant digits), shows up here. After a deliberate
# change: BNBOOK_UPDATE_MESSAGES=1 pytest tests/unit/test_workbook.py -k as_stored
STORED = pathlib.Path(__file__).with_name("workbook_messages.json")
NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?|-?\d+e[-+]?\d+")


def rounded(message):
    return NUMBER.sub(lambda m: f"{float(m[0]):.4g}", message)


def all_messages(capsys):
    messages = {name: rounded(failure(name)) for name in MISTAKES}
    for check, functions in [
        (check_forward, [forward]),
        (check_backward, [forward, backward]),
        (check_spatial_forward, [spatial_forward]),
        (check_layer, [Layer]),
        (check_trainable_layer, [TrainableLayer]),
    ]:
        check(*functions)
        messages[f"{check.__name__} passed"] = capsys.readouterr().out
    return messages


def test_every_message_is_as_stored(capsys):
    messages = all_messages(capsys)
    if os.environ.get("BNBOOK_UPDATE_MESSAGES"):
        text = json.dumps(messages, indent=1, ensure_ascii=False)
        STORED.write_text(text + "\n", encoding="utf-8")
    stored = json.loads(STORED.read_text(encoding="utf-8"))
    assert set(messages) == set(stored)
    for name, message in messages.items():
        assert message == stored[name], name


def backward_cs231n(dy, cache, power=2):
    """CS231n's staged backward, its nodes named as there; dsqrtvar's power changed
    if ``power`` is not 2."""
    xc, inv, std, x_hat = cache["xc"], cache["inv"], cache["std"], cache["x_hat"]
    m = dy.shape[0]
    dbeta = dy.sum(axis=0)
    dgamma = np.sum(dy * x_hat, axis=0)
    dxhat = dy * cache["gamma"]
    divar = np.sum(dxhat * xc, axis=0)
    dxmu1 = dxhat * inv
    dsqrtvar = -divar / std**power
    dvar = 0.5 * dsqrtvar / std
    dsq = np.ones_like(dy) * dvar / m
    dxmu2 = 2 * xc * dsq
    dx1 = dxmu1 + dxmu2
    dmu = -np.sum(dx1, axis=0)
    dx = dx1 + np.ones_like(dy) * dmu / m
    return dx, dgamma, dbeta


def test_cs231n_names_are_read_too():
    check_backward(forward_staged, backward_cs231n)  # right as it stands
    wrong = types.FunctionType(backward_cs231n.__code__, globals(), "wrong", (1,))
    message = failure_of(check_backward, forward_staged, wrong)
    assert message.startswith(
        "backward: dsqrtvar, the gradient of std, is the first of your intermediate "
        "gradients that is wrong (right before it: dxhat, divar): "
    ), message
    assert "dstd = -dinv_std / std**2" in message


def test_a_wrong_dsq_is_named():
    def wrong(dy, cache):
        xc, inv, std, x_hat = cache["xc"], cache["inv"], cache["std"], cache["x_hat"]
        m = dy.shape[0]
        dxhat = dy * cache["gamma"]
        divar = np.sum(dxhat * xc, axis=0)
        dvar = 0.5 * (-divar / std**2) / std
        dsq = np.ones_like(dy) * dvar  # 1/m missing
        dx1 = dxhat * inv + 2 * xc * dsq
        dx = dx1 - np.sum(dx1, axis=0) / m
        return dx, np.sum(dy * x_hat, axis=0), dy.sum(axis=0)

    message = failure_of(check_backward, forward_staged, wrong)
    assert "lacks 1/m" in message.splitlines()[0]  # a known mistake comes first
    nodes = {"dxhat", "divar", "dvar", "dsq"}
    from bnbook.workbook.cases import _cases
    from bnbook.workbook.staged import _first_wrong_node

    case = _cases((16, 5))[0]
    dy = np.random.default_rng(1).standard_normal(case.x.shape)
    _, cache = forward_staged(case.x, case.gamma, case.beta, case.eps)
    local = {}
    from bnbook.workbook.calls import _locals_of

    with _locals_of(wrong, local):
        wrong(dy, cache)
    assert nodes <= set(local)
    text = _first_wrong_node(local, case, dy)
    assert text.startswith("dsq, the gradient of sq, is the first"), text


# ---- the checks' helpers, where a behaviour is clearest on its own ----


def test_a_class_is_asked_for_by_the_type_given():
    with pytest.raises(TypeError, match="^layer_class must be a class, got int$"):
        check_layer(42)


def test_the_inputs_are_those_the_passed_lines_name():
    from bnbook.workbook.cases import DENSE, _cases

    shape = "(x of shape (16, 5), float{})"
    assert [(c.name, c.x.dtype, c.eps) for c in _cases(*DENSE)] == [
        ("x with ε = 0.001 " + shape.format(64), np.float64, 1e-3),
        ("x of small variance with ε = 0.5 " + shape.format(64), np.float64, 0.5),
        ("x with ε = 0.001 " + shape.format(32), np.float32, 1e-3),
        (
            "x of mean 1000 and standard deviation 1 " + shape.format(32),
            np.float32,
            1e-3,
        ),
        ("an odd batch with ε = 0.001 (x of shape (7, 3), float64)", np.float64, 1e-3),
    ]


def test_a_nan_in_an_argument_is_no_change_in_place():
    from bnbook.workbook.calls import _call

    a = np.array([np.nan, 1.0])
    assert _call(np.nansum, "f", "a case", a=a) == 1.0  # no CheckFailed


def test_the_readers_code_runs_without_numpy_warnings():
    # a NaN or an inf the reader's code makes is for the check to tell, not NumPy
    from bnbook.workbook.calls import _call

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(_call(np.sqrt, "f", "a case", a=-np.ones(2))).all()


def test_only_the_readers_own_variables_are_read():
    from bnbook.workbook.calls import _locals_of

    def helper():
        hidden = 1
        return hidden

    def reader():
        seen = helper()
        return seen

    local = {}
    with _locals_of(reader, local):
        reader()
    assert local["seen"] == 1 and "hidden" not in local


def test_a_nan_is_the_largest_difference():
    from bnbook.workbook.report import _difference

    received, expected = np.array([[0.5, np.nan, 3.0]]), np.array([[0.25, 0.5, 0.75]])
    assert _difference("y", received, expected, "a case") == (
        "On a case, y[0, 1] is nan; expected 0.5.\nLargest error inf, relative to "
        "max(1, max|y|) = 1: inf; the check allows 1e-09 in float64."
    )


def test_a_lower_precision_is_one_below_the_outputs():
    from bnbook.workbook.report import _precision

    # float32 values that are no float16 numbers: nothing to say (float32's own
    # rounding is no lower precision)
    received = np.array([0.1, 0.3], dtype=np.float32)
    assert _precision(received, None, received.astype(np.float64)) is None
    # float32 numbers in float64, one too large for float16: no warning on the way
    received = np.array([1e6, 0.1], dtype=np.float32).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        message = _precision(received, None, received + 1e-3)
    assert message.startswith("every value of your output is a float32 number")


def test_the_momentum_message_adds_a_cause_only_where_one_fits():
    from bnbook.workbook.moving import _momentum_message

    what, name = "layer(x, training=True)", "moving_mean"
    assert _momentum_message(what, name, 0.5, 0.9) == (
        "layer(x, training=True) moved moving_mean 0.5 of the way from its old value "
        "to the batch's; with momentum 0.9 it moves 0.1 of the way: moving = momentum "
        "* moving + (1 - momentum) * batch."
    )
    assert _momentum_message(what, name, 0.01, 0.9).endswith(
        " It moves as with Keras's default 0.99, not the momentum=0.9 it was built "
        "with: use self.momentum."
    )


def test_a_broken_sum_is_told_to_float64_rounding():
    from bnbook.workbook.backward import _broken_sum, _gradients
    from bnbook.workbook.cases import DENSE, _cases
    from bnbook.workbook.reference import _normalized

    case = _cases(*DENSE)[0]
    dy = np.random.default_rng(1).standard_normal(case.x.shape)
    expected = _gradients(case, dy)[0]
    assert _broken_sum(expected, case, expected) is None
    # a millionth added to each dx: sum(dx) is 1.6e-5, not 0
    message = _broken_sum(expected + 1e-6, case, expected)
    assert message.startswith("the sum of dx over the batch should be 0"), message
    # a millionth of x_hat added: sum(dx) stays 0, sum(dx * x_hat) moves by 1.6e-5
    message = _broken_sum(expected + 1e-6 * _normalized(case), case, expected)
    assert message.startswith("the sum of dx * x_hat over the batch"), message


@pytest.mark.parametrize("swapped", ["dgamma", "dbeta"])
def test_gradients_swapped_to_a_millionth_are_not_swapped(swapped):
    def nearly_swapped(dy, cache):
        dx, dgamma, dbeta = backward(dy, cache)
        off = 1 + 1e-6
        if swapped == "dgamma":
            return dx, dbeta * off, dgamma
        return dx, dbeta, dgamma * off

    message = failure_of(check_backward, forward, nearly_swapped)
    assert message.startswith("backward: dbeta is wrong."), message


def test_dgamma_first_and_dx_second_is_told_the_order():
    def wrong(dy, cache):
        dx, dgamma, dbeta = backward(dy, cache)
        return dgamma, dx, dbeta

    assert failure_of(check_backward, forward, wrong).startswith(
        "backward returned an array of x's shape (16, 5) as value 2 of 3: return "
        "(dx, dgamma, dbeta) in that order, dx first."
    )


def test_a_second_step_is_told_its_own_mistakes_at_float64_rounding():
    from bnbook.workbook.backward import _gradients
    from bnbook.workbook.cases import DENSE, _cases
    from bnbook.workbook.trainable import _check_second_step

    case = _cases(*DENSE)[0]
    second = case._replace(x=case.x * 2 + 1)
    rng = np.random.default_rng(1)
    dy_first, dy = rng.standard_normal(case.x.shape), rng.standard_normal(case.x.shape)
    earlier = (case, _gradients(case, dy_first))
    dx, dgamma, _ = _gradients(second, dy)
    added, stale = dgamma + earlier[1][1], _gradients(case, dy)[0]

    def check(layer_dgamma, layer_dx):
        layer = types.SimpleNamespace(dgamma=layer_dgamma)
        _check_second_step(layer, layer_dx, second, dy, earlier)

    with pytest.raises(CheckFailed, match="adds each step's dgamma"):
        check(added, dx)
    with pytest.raises(CheckFailed, match="uses the x_hat of the first"):
        check(dgamma, stale)
    # a millionth off them is not those mistakes: nothing raised here (the check of
    # the gradients that follows says what is wrong)
    check(added * (1 + 1e-6), dx)
    check(dgamma, stale * (1 + 1e-6))


@pytest.mark.parametrize("paired", ["dgamma", "dbeta"])
def test_a_gradient_a_millionth_off_is_not_the_gradient(paired):
    from bnbook.workbook.trainable import _check_pair

    layer = types.SimpleNamespace(gamma=np.ones(3), beta=np.zeros(3))
    right = {"gamma": np.array([1.0, 2.0, 3.0]), "beta": np.array([-1.0, 0.5, 4.0])}
    g = right[paired[1:]] * (1 + 1e-6)
    pairs = [(layer.gamma, g), (layer.beta, right["beta"])]
    with pytest.raises(
        CheckFailed,
        match=r"^layer\.params\(\) pairs gamma with a gradient that is not dgamma",
    ):
        _check_pair(pairs, layer, "gamma", right, "beta", "a case")


def test_a_staged_backward_in_one_by_d_passes_as_it_stands():
    check_backward(forward_staged, staged_with())
    check_backward(forward_staged, staged_with(keepdims=True))


def test_a_nan_where_a_wrong_formula_has_one_matches_it():
    # ε subtracted, sqrt(var - eps), is NaN where var < eps; a reader's y that is NaN
    # there too matches it
    from bnbook.workbook.report import _close

    nan = np.array([np.nan, 1.0])
    assert _close(nan, nan.copy(), np.float64)
    assert not _close(nan, np.array([0.0, 1.0]), np.float64)


def test_the_known_mistakes_nans_print_no_warnings():
    # on the small variance with ε = 0.5, the formula of ε subtracted takes the square
    # root of negative numbers: the reader is told what is wrong, without NumPy's noise
    from bnbook.workbook.cases import DENSE, _cases
    from bnbook.workbook.forward_mistakes import _forward_mistakes
    from bnbook.workbook.reference import _y
    from bnbook.workbook.report import _diagnose

    case = _cases(*DENSE)[1]
    expected = _y(case)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        failed = _diagnose(
            "y", expected + 0.1, case, expected, _forward_mistakes(case), "forward"
        )
    assert str(failed).startswith("forward: y is wrong.\nOn x of small variance")


@pytest.mark.parametrize("name", ["gamma", "beta"])
def test_a_parameter_changed_in_place_is_named(name):
    def wrong(x, gamma, beta, eps):
        y, cache = forward(x, gamma, beta, eps)
        {"gamma": gamma, "beta": beta}[name][...] = 0  # as gamma *= s would
        return y, cache

    assert failure_of(check_forward, wrong).startswith(
        f"forward changed its argument {name} in place: work on new arrays (a = a * s "
        "makes one; a *= s changes the caller's array)."
    )


def test_a_profiler_set_before_a_check_is_set_after_it():
    from bnbook.workbook.calls import _locals_of

    def profiler(frame, event, arg):
        pass

    before = sys.getprofile()
    sys.setprofile(profiler)
    try:
        with _locals_of(forward, {}):
            forward(np.ones((2, 1)), np.ones(1), np.zeros(1), 1e-3)
        assert sys.getprofile() is profiler
    finally:
        sys.setprofile(before)
