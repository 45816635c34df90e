"""Batch renormalization: Keras parity, the corrections r and d, errors."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.gradcheck import numerical_gradient, relative_error
from bnbook.renorm import BatchRenorm


@pytest.mark.parametrize(
    "clipping", [{}, {"rmin": 0.8, "rmax": 1.25, "dmax": 0.5}], ids=["free", "clipped"]
)
def test_batch_renorm_matches_keras_renorm(clipping, tf_keras):
    tf, keras = tf_keras
    rng = np.random.default_rng(7)
    options = {"momentum": 0.9, "renorm_momentum": 0.8}
    theirs = keras.layers.BatchNormalization(
        renorm=True, renorm_clipping=clipping or None, dtype="float64", **options
    )
    theirs.build((None, 5))
    ours = BatchRenorm(**options, **clipping)
    ours.build(5, np.float64)
    gamma, beta = rng.uniform(0.5, 2.0, 5), rng.normal(size=5)
    theirs.gamma.assign(gamma)
    theirs.beta.assign(beta)
    ours.gamma, ours.beta = gamma, beta
    for _ in range(4):  # the corrections move away from 1 and 0 after the first step
        x, dy = rng.normal(1.0, 2.0, size=(6, 5)), rng.normal(size=(6, 5))
        xv = tf.Variable(x)
        with tf.GradientTape() as tape:
            y_k = theirs(xv, training=True)
            loss = tf.reduce_sum(y_k * dy)
        grads = tape.gradient(loss, [xv, theirs.gamma, theirs.beta])
        y = ours(x, training=True)
        dx = ours.backward(dy)
        for a, b in zip((y, dx, ours.dgamma, ours.dbeta), (y_k, *grads), strict=True):
            np.testing.assert_allclose(a, np.asarray(b), rtol=1e-9, atol=1e-9)
        for name in ("moving_mean", "moving_variance", "renorm_mean", "renorm_stddev"):
            np.testing.assert_allclose(
                getattr(ours, name), getattr(theirs, name).numpy(), rtol=1e-9
            )
    x = rng.normal(size=(6, 5))
    np.testing.assert_allclose(ours(x), theirs(x, training=False).numpy(), rtol=1e-9)


def test_batch_renorm_corrects_to_the_moving_statistics():
    # Unclipped, its training output is the input normalized by the renorm statistics.
    layer = BatchRenorm(renorm_momentum=0.5)
    layer.build(3, np.float64)
    rng = np.random.default_rng(1)
    layer(rng.normal(4.0, 2.0, size=(10, 3)), training=True)
    mean, std = layer.renorm_mean.copy(), layer.renorm_stddev.copy()
    x = rng.normal(4.0, 2.0, size=(10, 3))
    np.testing.assert_allclose(layer(x, training=True), (x - mean) / std, rtol=1e-12)


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: BatchRenorm(renorm_momentum=2.0), ValueError, "momentum"),
        (lambda: BatchRenorm(rmin=2.0, rmax=1.0), ValueError, "rmax"),
        (lambda: BatchRenorm(dmax=-1.0), ValueError, "dmax"),
        (lambda: BatchRenorm(rmin=-0.5), ValueError, "^rmin must be >= 0"),
        (lambda: BatchRenorm(rmax=-0.5), ValueError, "^rmax must be >= 0"),
        (lambda: BatchRenorm()(np.ones((2, 3, 4)), training=True), ValueError, "shape"),
        (
            lambda: BatchRenorm().backward(np.ones((2, 3))),
            RuntimeError,
            "training=True",
        ),
        (lambda: BatchRenorm()(["a"], training=True), TypeError, "^x must be"),
        (
            lambda: BatchRenorm().backward(np.ones((2, 3))),
            RuntimeError,
            "^backward needs a preceding call with training=True",
        ),
    ],
)
def test_bad_input_is_a_clear_error(call, error, name):
    with raises_naming(error, name):
        call()


def test_batch_renorm_keeps_its_moving_std_in_step_with_set_statistics():
    layer = BatchRenorm()
    layer.build(2, np.float64)
    layer.set_moving_statistics(np.array([1.0, 2.0]), np.array([4.0, 9.0]))
    np.testing.assert_allclose(layer.moving_stddev, np.sqrt([4.001, 9.001]))
    np.testing.assert_allclose(
        layer(np.array([[3.0, 2.0]])), [[2.0 / np.sqrt(4.001), 0.0]]
    )


@pytest.mark.parametrize("make", [BatchRenorm])
def test_a_fresh_layer_builds_in_the_dtype_of_its_input(make):
    layer = make()
    layer(np.random.default_rng(0).normal(size=(4, 6)), training=True)
    assert layer.gamma.dtype == layer.beta.dtype == np.float64


def test_a_fresh_batch_renorm_builds_from_the_features():
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    layer = BatchRenorm(epsilon=0.5)
    y = layer(x, training=True)
    assert layer.gamma.shape == (6,) and y.dtype == np.float32
    assert all(v.dtype == np.float32 for v in layer.state().values())
    # the first step: renorm statistics 0 and 1, so r = sigma_B and d = mu_B
    sigma = np.sqrt(x.astype(np.float64).var(axis=0) + 0.5)
    r, d = layer._rd
    np.testing.assert_allclose(r, sigma, rtol=1e-6)
    np.testing.assert_allclose(d, x.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, x, atol=1e-5)  # x_hat * sigma_B + mu_B is x


def test_batch_renorm_clips_d_from_below_and_above():
    layer = BatchRenorm(rmin=1.0, rmax=1.0, dmax=0.0)  # equal bounds are allowed
    layer.build(2, np.float64)
    layer.renorm_mean = np.array([10.0, -10.0])
    layer(np.random.default_rng(0).normal(size=(5, 2)), training=True)
    r, d = layer._rd
    np.testing.assert_array_equal(r, [1.0, 1.0])
    np.testing.assert_array_equal(d, [0.0, 0.0])
    layer = BatchRenorm(dmax=0.5)
    layer.build(2, np.float64)
    layer.renorm_mean = np.array([10.0, -10.0])
    layer(np.random.default_rng(0).normal(size=(5, 2)), training=True)
    np.testing.assert_array_equal(layer._rd[1], [-0.5, 0.5])


def test_an_rmax_below_one_is_allowed_and_caps_r():
    layer = BatchRenorm(rmax=0.5)
    x = np.random.default_rng(4).normal(size=(8, 3))
    layer(x, training=True)
    r, _ = layer._correction(x.mean(axis=0), np.sqrt(x.var(axis=0) + 1e-3))
    np.testing.assert_array_equal(r, 0.5)  # sigma_B ~ 1 = renorm_stddev at first


def test_batch_renorm_by_hand_without_keras():
    """Three training steps against the formulas of the class docstring, written out
    here once more: the output, both pairs of moving statistics, and the gradients."""
    rng = np.random.default_rng(23)
    layer = BatchRenorm(momentum=0.9, renorm_momentum=0.7, rmax=1.3, dmax=0.4)
    layer.build(3, np.float64)
    layer.gamma, layer.beta = rng.uniform(0.5, 2.0, 3), rng.normal(size=3)
    eps, mean, std, r_mean, r_std = (
        1e-3,
        np.zeros(3),
        np.ones(3),
        np.zeros(3),
        np.ones(3),
    )
    for _ in range(3):
        x, dy = rng.normal(1.0, 2.0, size=(6, 3)), rng.normal(size=(6, 3))
        mu, sigma = x.mean(axis=0), np.sqrt(x.var(axis=0) + eps)
        r = np.minimum(sigma / r_std, 1.3)
        d = np.clip((mu - r_mean) / r_std, -0.4, 0.4)
        x_hat = (x - mu) / sigma
        y = layer(x, training=True)
        np.testing.assert_allclose(
            y, layer.gamma * (x_hat * r + d) + layer.beta, rtol=1e-12
        )
        r_mean, r_std = 0.7 * r_mean + 0.3 * mu, 0.7 * r_std + 0.3 * sigma
        mean, std = 0.9 * mean + 0.1 * mu, 0.9 * std + 0.1 * sigma
        np.testing.assert_allclose(layer.renorm_mean, r_mean, rtol=1e-12)
        np.testing.assert_allclose(layer.renorm_stddev, r_std, rtol=1e-12)
        np.testing.assert_allclose(layer.moving_mean, mean, rtol=1e-12)
        np.testing.assert_allclose(layer.moving_stddev, std, rtol=1e-12)
        np.testing.assert_allclose(layer.moving_variance, std**2 - eps, rtol=1e-12)
        dx = layer.backward(dy)
        np.testing.assert_allclose(
            layer.dgamma, (dy * (x_hat * r + d)).sum(axis=0), rtol=1e-12
        )
        np.testing.assert_allclose(layer.dbeta, dy.sum(axis=0), rtol=1e-12)

        def frozen(x_, r=r, d=d):  # r and d held constant, as in the backward pass
            z = (x_ - x_.mean(axis=0)) / np.sqrt(x_.var(axis=0) + eps)
            return layer.gamma * (z * r + d) + layer.beta

        assert relative_error(dx, numerical_gradient(frozen, x, dy)) < 1e-7
