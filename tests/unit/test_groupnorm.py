"""Group norm and layer norm: normalization, gradients, Keras parity, errors."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.gradcheck import numerical_gradient, relative_error
from bnbook.groupnorm import (
    GroupNorm,
    LayerNorm,
    group_norm_backward,
    group_norm_forward,
)


def _case(n=5, c=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 3.0, size=(n, c))
    return x, rng.uniform(0.5, 2.0, c), rng.normal(size=c), rng.normal(size=(n, c))


def test_group_norm_normalizes_each_example_and_group():
    x, gamma, beta, _ = _case()
    y, cache = group_norm_forward(x, np.ones(6), np.zeros(6), groups=2)
    groups = y.reshape(5, 2, 3)
    np.testing.assert_allclose(groups.mean(axis=-1), 0.0, atol=1e-12)
    var = x.reshape(5, 2, 3).var(axis=-1)
    np.testing.assert_allclose(groups.var(axis=-1), var / (var + 1e-3), rtol=1e-12)
    y2, _ = group_norm_forward(x, gamma, beta, groups=2)
    np.testing.assert_allclose(y2, gamma * cache.x_hat + beta, rtol=1e-12)


def test_group_norm_does_not_mix_examples():
    x, gamma, beta, _ = _case()
    y_all, _ = group_norm_forward(x, gamma, beta, groups=3)
    y_one, _ = group_norm_forward(x[2:3], gamma, beta, groups=3)
    np.testing.assert_allclose(y_all[2:3], y_one, rtol=1e-12)


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_group_norm_gradients_match_finite_differences(groups):
    x, gamma, beta, dy = _case(seed=groups)
    _, cache = group_norm_forward(x, gamma, beta, groups=groups)
    dx, dgamma, dbeta = group_norm_backward(dy, cache)

    def forward(x_=x, gamma_=gamma, beta_=beta):
        return group_norm_forward(x_, gamma_, beta_, groups=groups)[0]

    assert relative_error(dx, numerical_gradient(forward, x, dy)) < 1e-7
    numeric_gamma = numerical_gradient(lambda g: forward(gamma_=g), gamma, dy)
    assert relative_error(dgamma, numeric_gamma) < 1e-7
    assert (
        relative_error(dbeta, numerical_gradient(lambda b: forward(beta_=b), beta, dy))
        < 1e-7
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layer_and_group_norm_match_keras(dtype, tf_keras):
    tf, keras = tf_keras
    assert GroupNorm().groups == keras.layers.GroupNormalization().groups  # 32
    tol = {"float32": 1e-5, "float64": 1e-10}[dtype]
    x, gamma, beta, dy = (a.astype(dtype) for a in _case(n=8, c=12, seed=4))
    for ours, theirs in (
        (LayerNorm(), keras.layers.LayerNormalization(dtype=dtype)),
        (GroupNorm(groups=4), keras.layers.GroupNormalization(groups=4, dtype=dtype)),
    ):
        theirs.build((None, 12))
        theirs.gamma.assign(gamma)
        theirs.beta.assign(beta)
        ours.build(12, np.dtype(dtype))
        ours.gamma, ours.beta = gamma, beta
        xv = tf.Variable(x)
        with tf.GradientTape() as tape:
            y_k = theirs(xv, training=True)
            loss = tf.reduce_sum(y_k * dy)
        dx_k, dgamma_k, dbeta_k = tape.gradient(loss, [xv, theirs.gamma, theirs.beta])
        y = ours(x, training=True)
        dx = ours.backward(dy)
        for a, b in (
            (y, y_k),
            (dx, dx_k),
            (ours.dgamma, dgamma_k),
            (ours.dbeta, dbeta_k),
        ):
            np.testing.assert_allclose(a, np.asarray(b), rtol=tol, atol=tol)
        np.testing.assert_allclose(ours(x), y, rtol=0, atol=0)  # no mode difference


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (
            lambda: group_norm_forward(
                np.ones((2, 6)), np.ones(6), np.zeros(6), groups=4
            ),
            ValueError,
            "groups",
        ),
        (
            lambda: group_norm_forward(
                np.ones((2, 6)), np.ones(6), np.zeros(6), groups=6
            ),
            ValueError,
            "groups",
        ),
        (
            lambda: group_norm_forward(
                np.ones((2, 6)), np.ones(6), np.zeros(6), groups=2.0
            ),
            TypeError,
            "groups",
        ),
        (
            lambda: group_norm_forward(
                np.ones((2, 3, 6)), np.ones(6), np.zeros(6), groups=2
            ),
            ValueError,
            "shape",
        ),
        (
            lambda: group_norm_forward(
                np.ones((2, 6)), np.ones(5), np.zeros(6), groups=2
            ),
            ValueError,
            "gamma",
        ),
        (
            lambda: group_norm_forward(
                np.ones((2, 6)), np.ones(6), np.zeros(6), groups=2, epsilon=-1.0
            ),
            ValueError,
            "epsilon",
        ),
        (lambda: group_norm_backward(np.ones((2, 6)), None), TypeError, "cache"),
        (lambda: GroupNorm(groups="4"), TypeError, "groups"),
        (lambda: GroupNorm(groups=4)(np.ones((2, 6))), ValueError, "groups"),
        (lambda: LayerNorm().backward(np.ones((2, 6))), RuntimeError, "call"),
        (
            lambda: group_norm_forward(["a"], np.ones(6), np.zeros(6), groups=2),
            TypeError,
            "^x must be",
        ),
        (
            lambda: group_norm_forward(np.ones((2, 6)), np.ones(6), [0] * 5, groups=2),
            ValueError,
            "^beta must have shape",
        ),
        (
            lambda: group_norm_backward(np.ones((2, 6)), None),
            TypeError,
            "^cache must be the GroupNormCache returned by group_norm_forward",
        ),
        (
            lambda: group_norm_forward(
                np.ones((2, 6)), np.ones(6), np.zeros(6), groups=0
            ),
            ValueError,
            "^groups must divide",
        ),
        (lambda: GroupNorm(groups=2.0), TypeError, "^groups must be an int"),
        (
            lambda: GroupNorm(groups=2)(np.ones((2, 5, 6))),
            ValueError,
            "^x must have shape",
        ),
        (lambda: GroupNorm(groups=2)(["a"]), TypeError, "^x must be"),
        (
            lambda: LayerNorm().backward(np.ones((2, 6))),
            RuntimeError,
            "^backward needs a preceding call",
        ),
    ],
)
def test_bad_input_is_a_clear_error(call, error, name):
    with raises_naming(error, name):
        call()


def test_group_norm_backward_checks_dy():
    x, gamma, beta, _ = _case()
    _, cache = group_norm_forward(x, gamma, beta, groups=2)
    with pytest.raises(ValueError, match="dy"):
        group_norm_backward(np.ones((5, 4)), cache)


@pytest.mark.parametrize("make", [LayerNorm, lambda: GroupNorm(groups=3)])
def test_group_and_layer_norm_build_from_the_features_and_keep_float32(make):
    x, *_ = _case(n=4, c=6)  # 4 examples, 6 features: build must take the features
    layer = make()
    y = layer(x.astype(np.float32))
    assert layer.gamma.shape == layer.beta.shape == (6,)
    assert y.dtype == layer.gamma.dtype == layer.beta.dtype == np.float32
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == layer.dgamma.dtype == layer.dbeta.dtype == np.float32
    y64, _ = group_norm_forward(x.astype(np.float32), np.ones(6), np.zeros(6), groups=2)
    assert y64.dtype == np.float32  # float64 gamma and beta are cast to the input's


@pytest.mark.parametrize("groups", [1, 3])
def test_group_norm_uses_its_epsilon(groups):
    x, gamma, beta, _ = _case()
    eps = 0.5
    y, _ = group_norm_forward(x, gamma, beta, groups=groups, epsilon=eps)
    g = x.reshape(5, groups, 6 // groups)
    x_hat = (g - g.mean(axis=-1, keepdims=True)) / np.sqrt(
        g.var(axis=-1, keepdims=True) + eps
    )
    np.testing.assert_allclose(y, gamma * x_hat.reshape(5, 6) + beta, rtol=1e-12)
    layer = LayerNorm(epsilon=eps) if groups == 1 else GroupNorm(groups, epsilon=eps)
    layer.build(6, np.float64)
    layer.gamma[...], layer.beta[...] = gamma, beta
    np.testing.assert_allclose(layer(x), y, rtol=1e-12)


@pytest.mark.parametrize("make", [LayerNorm, lambda: GroupNorm(groups=2)])
def test_a_fresh_layer_builds_in_the_dtype_of_its_input(make):
    layer = make()
    layer(np.random.default_rng(0).normal(size=(4, 6)), training=True)
    assert layer.gamma.dtype == layer.beta.dtype == np.float64


def test_groups_of_two_features_are_the_smallest():
    x = np.random.default_rng(5).normal(size=(3, 6))
    y, _ = group_norm_forward(x, np.ones(6), np.zeros(6), groups=3)  # pairs
    np.testing.assert_allclose(
        np.abs(y),
        np.sqrt(1 / (1 + 4e-3 / (x[:, ::2] - x[:, 1::2]) ** 2)).repeat(2, axis=1),
        rtol=1e-12,
    )
    y32, _ = group_norm_forward(x.astype(np.float32), np.ones(6), np.zeros(6), groups=3)
    assert y32.dtype == np.float32


def test_defaults_are_kerass():
    # keras.layers.GroupNormalization(groups=32, epsilon=1e-3), LayerNormalization
    assert (GroupNorm().groups, GroupNorm().epsilon, LayerNorm().epsilon) == (
        32,
        1e-3,
        1e-3,
    )
