"""The NumPy batch-norm transform: values, gradients, dtypes, layouts and errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from naming import raises_naming

from bnbook.batchnorm import (
    BatchNorm,
    BatchNormCache,
    batch_norm_backward,
    batch_norm_backward_staged,
    batch_norm_forward,
    batch_norm_inference,
)
from bnbook.gradcheck import numerical_gradient, relative_error

# ---------------------------------------------------------------------------------
# A float64 reference, written differently from the module: features to the last
# axis, flattened to (m, C), statistics with np.mean and np.var.
# ---------------------------------------------------------------------------------


def reference_forward(x, gamma, beta, axis, epsilon):
    x = np.asarray(x, dtype=np.float64)
    moved = np.moveaxis(x, axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    x_hat = (flat - flat.mean(axis=0)) / np.sqrt(flat.var(axis=0) + epsilon)
    y = np.asarray(gamma, np.float64) * x_hat + np.asarray(beta, np.float64)
    return np.moveaxis(y.reshape(moved.shape), -1, axis)


def random_case(shape, axis, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    c = shape[axis]
    x = rng.normal(2.0, 3.0, size=shape).astype(dtype)
    gamma = rng.uniform(0.5, 2.0, size=c).astype(dtype)
    beta = rng.normal(size=c).astype(dtype)
    return x, gamma, beta


# ---------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------


def test_forward_by_hand():
    x = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 16.0]])
    y, _ = batch_norm_forward(x, np.ones(2), np.zeros(2), epsilon=0.0)
    # feature 0: mean 3, variance 8/3; feature 1: mean 12, variance 8
    expected = np.array(
        [
            [-2 / np.sqrt(8 / 3), -2 / np.sqrt(8)],
            [0, -2 / np.sqrt(8)],
            [2 / np.sqrt(8 / 3), 4 / np.sqrt(8)],
        ]
    )
    np.testing.assert_allclose(y, expected, rtol=1e-15)


def test_forward_standardizes_then_scales_and_shifts():
    x, gamma, beta = random_case((64, 5), -1)
    eps = 1e-3
    y, cache = batch_norm_forward(x, gamma, beta, epsilon=eps)
    var = x.var(axis=0)
    np.testing.assert_allclose(cache.x_hat.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(cache.x_hat.var(axis=0), var / (var + eps), rtol=1e-12)
    np.testing.assert_allclose(y, gamma * cache.x_hat + beta, rtol=1e-14)
    np.testing.assert_allclose(cache.mu.ravel(), x.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(cache.var.ravel(), var, rtol=1e-13)


def test_identity_is_recoverable():
    x, _, _ = random_case((32, 4), -1)
    eps = 1e-3
    gamma = np.sqrt(x.var(axis=0) + eps)
    beta = x.mean(axis=0)
    y, _ = batch_norm_forward(x, gamma, beta, epsilon=eps)
    np.testing.assert_allclose(y, x, rtol=1e-12)


def test_conv_layouts_agree():
    x_nhwc, gamma, beta = random_case((4, 5, 6, 3), -1)
    y_nhwc, _ = batch_norm_forward(x_nhwc, gamma, beta)
    x_nchw = np.transpose(x_nhwc, (0, 3, 1, 2))
    y_nchw, _ = batch_norm_forward(x_nchw, gamma, beta, axis=1)
    np.testing.assert_allclose(np.transpose(y_nchw, (0, 2, 3, 1)), y_nhwc, rtol=1e-13)
    # per channel: statistics over N, H and W together
    flat = x_nhwc.reshape(-1, 3)
    expected = gamma * (flat - flat.mean(0)) / np.sqrt(flat.var(0) + 1e-3) + beta
    np.testing.assert_allclose(y_nhwc.reshape(-1, 3), expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.int64, np.float64),
        (np.int32, np.float64),
    ],
)
def test_dtypes(dtype, expected):
    x = (np.arange(24).reshape(6, 4) % 5).astype(dtype)
    y, cache = batch_norm_forward(x, np.ones(4), np.zeros(4))
    assert y.dtype == expected and cache.x_hat.dtype == expected
    dx, dgamma, dbeta = batch_norm_backward(np.ones_like(y), cache)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == expected
    assert (
        batch_norm_inference(x, np.ones(4), np.zeros(4), np.zeros(4), np.ones(4)).dtype
        == expected
    )


def test_float32_parameters_and_python_epsilon_keep_float32():
    x = np.ones((4, 2), np.float32) * np.arange(4, dtype=np.float32)[:, None]
    y, _ = batch_norm_forward(x, np.ones(2), np.zeros(2), epsilon=np.float64(1e-3))
    assert y.dtype == np.float32


def test_two_pass_variance_survives_a_large_mean_in_float32():
    rng = np.random.default_rng(0)
    x = (1e4 + rng.normal(size=(256, 3))).astype(np.float32)
    _, cache = batch_norm_forward(x, np.ones(3), np.zeros(3))
    true_var = x.astype(np.float64).var(axis=0)
    np.testing.assert_allclose(cache.var.ravel(), true_var, rtol=1e-3)
    naive = (x**2).mean(axis=0) - x.mean(axis=0) ** 2  # what the module must not do
    assert np.max(np.abs(naive - true_var) / true_var) > 0.1


# ---------------------------------------------------------------------------------
# Backward
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "axis"), [((6, 3), -1), ((3, 2, 2, 2), -1), ((2, 3, 2, 2), 1)]
)
def test_gradients_four_ways_agree(shape, axis):
    x, gamma, beta = random_case(shape, axis, seed=1)
    dy = np.random.default_rng(2).normal(size=shape)
    _, cache = batch_norm_forward(x, gamma, beta, axis=axis)
    dx, dgamma, dbeta = batch_norm_backward(dy, cache)
    dx_s, dgamma_s, dbeta_s = batch_norm_backward_staged(dy, cache)

    def f(x_):
        return batch_norm_forward(x_, gamma, beta, axis=axis)[0]

    def f_gamma(g):
        return batch_norm_forward(x, g, beta, axis=axis)[0]

    def f_beta(b):
        return batch_norm_forward(x, gamma, b, axis=axis)[0]

    assert relative_error(dx, dx_s) < 1e-12
    assert (
        relative_error(dgamma, dgamma_s) < 1e-14
        and relative_error(dbeta, dbeta_s) < 1e-14
    )
    assert relative_error(dx, numerical_gradient(f, x, dy)) < 1e-7
    assert relative_error(dgamma, numerical_gradient(f_gamma, gamma, dy)) < 1e-7
    assert relative_error(dbeta, numerical_gradient(f_beta, beta, dy)) < 1e-7


def test_gradient_check_catches_a_wrong_backward():
    x, gamma, beta = random_case((5, 2), -1, seed=3)
    dy = np.random.default_rng(4).normal(size=x.shape)
    _, cache = batch_norm_forward(x, gamma, beta)
    wrong_dx = gamma * cache.inv_std * dy  # forgets that mu and var depend on x
    numeric = numerical_gradient(
        lambda x_: batch_norm_forward(x_, gamma, beta)[0], x, dy
    )
    assert relative_error(wrong_dx, numeric) > 1e-2


def test_gradient_of_x_sums_to_zero_per_feature():
    # y does not change when a constant is added to a feature, so dx sums to 0.
    x, gamma, beta = random_case((16, 3), -1, seed=5)
    _, cache = batch_norm_forward(x, gamma, beta)
    dx, _, _ = batch_norm_backward(np.random.default_rng(6).normal(size=x.shape), cache)
    np.testing.assert_allclose(dx.sum(axis=0), 0, atol=1e-12)


# ---------------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------------


def test_inference_equals_training_with_the_batch_statistics():
    x, gamma, beta = random_case((20, 4), -1, seed=7)
    y_train, cache = batch_norm_forward(x, gamma, beta)
    y_inf = batch_norm_inference(x, gamma, beta, cache.mu.ravel(), cache.var.ravel())
    np.testing.assert_allclose(y_inf, y_train, rtol=1e-12, atol=1e-12)


def test_inference_is_an_affine_map_per_feature():
    x, gamma, beta = random_case((3, 2, 5), 1, seed=8)
    mean, var = np.array([1.0, -2.0]), np.array([4.0, 0.25])
    y = batch_norm_inference(x, gamma, beta, mean, var, axis=1, epsilon=0.0)
    expected = (
        gamma[None, :, None] * (x - mean[None, :, None]) / np.sqrt(var)[None, :, None]
    )
    np.testing.assert_allclose(y, expected + beta[None, :, None], rtol=1e-13)
    # works on a single example: no batch statistics are needed
    one = batch_norm_inference(x[:1], gamma, beta, mean, var, axis=1, epsilon=0.0)
    np.testing.assert_allclose(one, y[:1], rtol=1e-15)


# ---------------------------------------------------------------------------------
# The layer
# ---------------------------------------------------------------------------------


def test_layer_defaults_are_keras_defaults():
    layer = BatchNorm()
    layer(np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(layer.gamma, np.ones(3))
    np.testing.assert_array_equal(layer.beta, np.zeros(3))
    np.testing.assert_array_equal(layer.moving_mean, np.zeros(3))
    np.testing.assert_array_equal(layer.moving_variance, np.ones(3))
    assert layer.gamma.dtype == np.float32
    assert "momentum=0.99" in repr(layer)


def test_layer_moving_statistics_follow_the_momentum():
    rng = np.random.default_rng(9)
    layer = BatchNorm(momentum=0.9)
    mean, var = np.zeros(3), np.ones(3)
    for _ in range(5):
        x = rng.normal(4.0, 2.0, size=(10, 3))
        layer(x, training=True)
        mean = 0.9 * mean + 0.1 * x.mean(axis=0)
        var = 0.9 * var + 0.1 * x.var(axis=0)  # biased, as in Keras
    np.testing.assert_allclose(layer.moving_mean, mean, rtol=1e-13)
    np.testing.assert_allclose(layer.moving_variance, var, rtol=1e-13)
    y = layer(x)  # inference: the moving statistics, not the batch's
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-12)


def test_layer_momentum_one_freezes_and_zero_copies():
    x = np.random.default_rng(10).normal(5, 1, size=(8, 2))
    frozen, copier = BatchNorm(momentum=1.0), BatchNorm(momentum=0.0)
    frozen(x, training=True)
    copier(x, training=True)
    np.testing.assert_array_equal(frozen.moving_mean, 0.0)
    np.testing.assert_allclose(copier.moving_mean, x.mean(axis=0), rtol=1e-14)


def test_layer_backward_matches_the_function():
    x, gamma, beta = random_case((12, 4), -1, seed=11)
    dy = np.random.default_rng(12).normal(size=x.shape)
    layer = BatchNorm()
    layer(x, training=True)
    layer.gamma, layer.beta = gamma, beta
    layer(x, training=True)
    dx = layer.backward(dy)
    _, cache = batch_norm_forward(x, gamma, beta)
    dx_ref, dgamma_ref, dbeta_ref = batch_norm_backward(dy, cache)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-13)
    np.testing.assert_allclose(layer.dgamma, dgamma_ref, rtol=1e-13)
    np.testing.assert_allclose(layer.dbeta, dbeta_ref, rtol=1e-13)


@pytest.mark.parametrize(
    ("center", "scale"), [(False, True), (True, False), (False, False)]
)
def test_layer_without_center_or_scale(center, scale):
    x = np.random.default_rng(13).normal(3, 2, size=(16, 3))
    layer = BatchNorm(center=center, scale=scale)
    y = layer(x, training=True)
    assert (layer.beta is None) == (not center) and (layer.gamma is None) == (not scale)
    np.testing.assert_allclose(
        y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3), rtol=1e-12
    )
    layer.backward(np.ones_like(x))
    assert (layer.dbeta is None) == (not center) and (layer.dgamma is None) == (
        not scale
    )


def test_layer_conv_axis():
    x = np.random.default_rng(14).normal(size=(2, 3, 4, 4))
    layer = BatchNorm(axis=1)
    y = layer(x, training=True)
    assert layer.moving_mean.shape == (3,)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)


# ---------------------------------------------------------------------------------
# Property tests against the float64 reference
# ---------------------------------------------------------------------------------


@st.composite
def cases(draw):
    ndim = draw(st.integers(2, 5))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    axis = draw(st.integers(-ndim, ndim - 1))
    if np.prod(shape) // shape[axis] < 2:  # training mode needs m >= 2
        shape = (
            (shape[0] + 1,) + shape[1:]
            if axis % ndim != 0
            else shape[:1] + (shape[1] + 1,) + shape[2:]
        )
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int64]))
    if dtype is np.int64:
        x = draw(hnp.arrays(dtype, shape, elements=st.integers(-50, 50)))
    else:  # large offsets and tiny spreads too: where one-pass variances fail
        z = draw(hnp.arrays(np.float64, shape, elements=st.floats(-100, 100)))
        offset = draw(st.sampled_from([0.0, 1e3, -1e4]))
        spread = draw(st.sampled_from([1.0, 1e-2, 1e-4]))
        x = (offset + spread * z).astype(dtype)
    c = shape[axis]
    gamma = draw(hnp.arrays(np.float64, (c,), elements=st.floats(-3, 3)))
    beta = draw(hnp.arrays(np.float64, (c,), elements=st.floats(-3, 3)))
    epsilon = draw(st.sampled_from([1e-5, 1e-3, 0.1, 1.0]))
    return x, gamma, beta, axis, epsilon


def rounding_tolerance(x, gamma, beta, axis, epsilon, dtype):
    """Per-feature bound on |y - y_ref| for a forward pass computed in ``dtype``.

    Rounding x - mu costs about one ulp of max|x|; dividing by sqrt(var + eps)
    magnifies it, gamma scales it, and beta adds its own ulp. (The float64 reference
    rounds too, so float64 gets the same bound with its own ulp.)
    """
    moved = np.moveaxis(np.asarray(x, np.float64), axis, -1).reshape(-1, x.shape[axis])
    magnify = np.abs(moved).max(axis=0) / np.sqrt(moved.var(axis=0) + epsilon)
    ulp = np.finfo(dtype).eps
    atol = 64 * ulp * ((1 + magnify) * np.abs(gamma) + np.abs(beta) + 1)
    shape = [1] * x.ndim
    shape[axis] = -1
    return atol.reshape(shape)


@settings(max_examples=200)
@given(cases())
def test_forward_matches_the_float64_reference(case):
    x, gamma, beta, axis, epsilon = case
    y, _ = batch_norm_forward(x, gamma, beta, axis=axis, epsilon=epsilon)
    expected_dtype = np.float32 if x.dtype == np.float32 else np.float64
    assert y.dtype == expected_dtype and y.shape == x.shape
    ref = reference_forward(x, gamma, beta, axis, epsilon)
    tol = rounding_tolerance(x, gamma, beta, axis, epsilon, expected_dtype)
    assert np.all(np.abs(y - ref) <= tol)


@settings(max_examples=100)
@given(cases())
def test_inference_matches_the_float64_reference(case):
    x, gamma, beta, axis, epsilon = case
    c = x.shape[axis]
    mean, var = np.linspace(-1, 1, c), np.linspace(0.5, 2, c)
    y = batch_norm_inference(x, gamma, beta, mean, var, axis=axis, epsilon=epsilon)
    shape = [1] * x.ndim
    shape[axis] = c
    ref = (x.astype(np.float64) - mean.reshape(shape)) / np.sqrt(var + epsilon).reshape(
        shape
    )
    ref = gamma.reshape(shape) * ref + beta.reshape(shape)
    tol = 1e-5 if x.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, ref, rtol=tol, atol=tol * 100)


@settings(max_examples=50)
@given(cases())
def test_compact_and_staged_backward_agree(case):
    x, gamma, beta, axis, epsilon = case
    x = x.astype(np.float64)
    _, cache = batch_norm_forward(x, gamma, beta, axis=axis, epsilon=epsilon)
    dy = np.random.default_rng(0).normal(size=x.shape)
    for a, b in zip(
        batch_norm_backward(dy, cache),
        batch_norm_backward_staged(dy, cache),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.abs(a).max() + 1e-12)


# ---------------------------------------------------------------------------------
# Bad input: the error type, and a message that names the argument
# ---------------------------------------------------------------------------------

X = np.ones((4, 3))
G, B = np.ones(3), np.zeros(3)


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: batch_norm_forward(X, G, B, axis=2), ValueError, "axis"),
        (lambda: batch_norm_forward(X, G, B, axis=-3), ValueError, "axis"),
        (lambda: batch_norm_forward(X, G, B, axis=1.0), TypeError, "axis"),
        (lambda: batch_norm_forward(X, G, B, axis=True), TypeError, "axis"),
        (
            lambda: batch_norm_forward(np.ones(4), np.ones(4), np.zeros(4)),
            ValueError,
            "x",
        ),
        (lambda: batch_norm_forward(X, np.ones(2), B), ValueError, "gamma"),
        (lambda: batch_norm_forward(X, np.ones((3, 1)), B), ValueError, "gamma"),
        (lambda: batch_norm_forward(X, G, np.zeros(4)), ValueError, "beta"),
        (
            lambda: batch_norm_forward(
                np.array([["a", "b"], ["c", "d"]]), G[:2], B[:2]
            ),
            TypeError,
            "x",
        ),
        (lambda: batch_norm_forward(X.astype(object), G, B), TypeError, "x"),
        (lambda: batch_norm_forward(X.astype(bool), G, B), TypeError, "x"),
        (lambda: batch_norm_forward(X + 1j, G, B), TypeError, "x"),
        (lambda: batch_norm_forward(X, ["a", "b", "c"], B), TypeError, "gamma"),
        (lambda: batch_norm_forward(X, G, B, epsilon=-1e-3), ValueError, "epsilon"),
        (
            lambda: batch_norm_forward(X, G, B, epsilon=float("nan")),
            ValueError,
            "epsilon",
        ),
        (lambda: batch_norm_forward(X, G, B, epsilon="0.001"), TypeError, "epsilon"),
        (lambda: batch_norm_forward(np.ones((1, 3)), G, B), ValueError, "m=1"),
        (
            lambda: batch_norm_forward(np.ones((1, 3, 1)), G, B, axis=1),
            ValueError,
            "m=1",
        ),
        (
            lambda: batch_norm_backward(
                np.ones((4, 2)), batch_norm_forward(X, G, B)[1]
            ),
            ValueError,
            "dy",
        ),
        (
            lambda: batch_norm_backward(np.ones((4, 3)), {"x_hat": X}),
            TypeError,
            "cache",
        ),
        (lambda: batch_norm_backward_staged(np.ones((4, 3)), None), TypeError, "cache"),
        (
            lambda: batch_norm_inference(X, G, B, np.zeros(2), np.ones(3)),
            ValueError,
            "moving_mean",
        ),
        (
            lambda: batch_norm_inference(X, G, B, np.zeros(3), np.ones(4)),
            ValueError,
            "moving_variance",
        ),
        (
            lambda: batch_norm_inference(X, G, B, np.zeros(3), -np.ones(3)),
            ValueError,
            "moving_variance",
        ),
        (
            lambda: batch_norm_inference(X, G, B, np.zeros(3), np.ones(3), axis=5),
            ValueError,
            "axis",
        ),
        (
            lambda: batch_norm_inference(X, G, B, np.zeros(3), np.ones(3), epsilon=-1),
            ValueError,
            "epsilon",
        ),
        (
            lambda: batch_norm_inference(np.ones(3), G, B, np.zeros(3), np.ones(3)),
            ValueError,
            "x",
        ),
        (lambda: BatchNorm(momentum=1.5), ValueError, "momentum"),
        (lambda: BatchNorm(momentum=-0.1), ValueError, "momentum"),
        (lambda: BatchNorm(momentum="0.9"), TypeError, "momentum"),
        (lambda: BatchNorm(epsilon=-1.0), ValueError, "epsilon"),
        (lambda: BatchNorm(axis="channels"), TypeError, "axis"),
        (lambda: BatchNorm(center=1), TypeError, "center"),
        (lambda: BatchNorm(scale=None), TypeError, "scale"),
        (lambda: BatchNorm()(X, training="yes"), TypeError, "training"),
        (lambda: BatchNorm(axis=3)(X, training=True), ValueError, "axis"),
        (lambda: BatchNorm()(np.ones((1, 3)), training=True), ValueError, "m=1"),
        (lambda: BatchNorm().backward(X), RuntimeError, "training=True"),
        (
            lambda: batch_norm_forward(np.ones((4, 0)), np.ones(0), np.ones(0)),
            ValueError,
            r"^x of shape \(4, 0\) gives m=0 value",
        ),
        (
            lambda: batch_norm_forward(np.ones((1, 3)), G, B),
            ValueError,
            "^x of shape .* gives m=1 value.* training mode needs at least 2, because the variance of "
            "one value is 0 and every output would be beta",
        ),
        (lambda: batch_norm_forward(["a"], G, B), TypeError, "^x must be"),
        (
            lambda: batch_norm_backward(np.ones((4, 3)), None),
            TypeError,
            "^cache must be the BatchNormCache returned by batch_norm_forward, got "
            "NoneType",
        ),
        (
            lambda: batch_norm_backward_staged(X, {}),
            TypeError,
            "^cache must be the BatchNormCache returned by batch_norm_forward, got dict",
        ),
        (
            lambda: batch_norm_backward(["a"], batch_norm_forward(X, G, B)[1]),
            TypeError,
            "^dy must be",
        ),
        (
            lambda: batch_norm_inference(X, G, B, np.zeros(3), -np.ones(3)),
            ValueError,
            "^moving_variance must be >= 0 everywhere",
        ),
        (lambda: BatchNorm(axis=1.0), TypeError, "^axis must be an int"),
        (lambda: BatchNorm(center=1), TypeError, "^center must be a bool, got int"),
        (
            lambda: BatchNorm(scale=None),
            TypeError,
            "^scale must be a bool, got NoneType",
        ),
        (lambda: BatchNorm()(X, training=1), TypeError, "^training must be a bool"),
        (lambda: BatchNorm()(["a"]), TypeError, "^x must be"),
        (lambda: BatchNorm().calibrate(["a"]), TypeError, "^x must be"),
        (
            lambda: BatchNorm().backward(X),
            RuntimeError,
            "^backward needs a preceding call with training=True",
        ),
    ],
)
def test_bad_input_is_a_clear_error(call, error, name):
    with raises_naming(error, name):
        call()


def test_cache_is_a_named_tuple_of_the_graph_nodes():
    x = X * np.arange(4)[:, None]
    _, cache = batch_norm_forward(x, G, B, epsilon=0.5)
    assert isinstance(cache, BatchNormCache)
    assert cache.x_hat.shape == (4, 3) and cache.mu.shape == (1, 3)
    np.testing.assert_allclose(cache.mu, x.mean(axis=0, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(cache.x_centered, x - cache.mu, rtol=1e-12)
    np.testing.assert_allclose(cache.var, x.var(axis=0, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(cache.inv_std, 1 / np.sqrt(cache.var + 0.5), rtol=1e-12)
    np.testing.assert_allclose(
        cache.x_hat, cache.x_centered * cache.inv_std, rtol=1e-12
    )
    np.testing.assert_array_equal(cache.gamma.ravel(), G)
    assert (cache.epsilon, cache.axis, cache.reduce_axes) == (0.5, 1, (0,))


def test_staged_backward_node_gradients_match_finite_differences():
    """Each node's gradient, against central differences of the graph below it."""
    x, gamma, beta = random_case((5, 2), -1, seed=15)
    eps = 1e-3
    dy = np.random.default_rng(16).normal(size=x.shape)
    _, c = batch_norm_forward(x, gamma, beta, epsilon=eps)
    *_, nodes = batch_norm_backward_staged(dy, c, return_nodes=True)

    def from_x_hat(x_hat):
        return gamma * x_hat + beta

    def from_inv_std(inv_std):
        return gamma * c.x_centered * inv_std + beta

    def from_var(var):
        return gamma * c.x_centered / np.sqrt(var + eps) + beta

    def from_x_centered(xc):
        return gamma * xc / np.sqrt((xc**2).mean(axis=0) + eps) + beta

    def from_mu(mu):
        xc = x - mu
        return gamma * xc / np.sqrt((xc**2).mean(axis=0) + eps) + beta

    for name, f, point in [
        ("x_hat", from_x_hat, c.x_hat),
        ("inv_std", from_inv_std, c.inv_std),
        ("var", from_var, c.var),
        ("x_centered", from_x_centered, c.x_centered),
        ("mu", from_mu, c.mu),
    ]:
        assert relative_error(nodes[name], numerical_gradient(f, point, dy)) < 1e-7, (
            name
        )
    np.testing.assert_array_equal(nodes["x"], batch_norm_backward_staged(dy, c)[0])


def test_layer_cache_is_that_of_its_last_training_call():
    layer, x = BatchNorm(), X * np.arange(4)[:, None]
    assert layer.cache is None
    layer(x, training=True)
    _, expected = batch_norm_forward(x, np.ones(3), np.zeros(3))
    np.testing.assert_array_equal(layer.cache.x_hat, expected.x_hat)
    layer(2 * x)  # inference keeps the training cache
    np.testing.assert_array_equal(layer.cache.x_hat, expected.x_hat)


def test_a_zero_moving_variance_is_valid_inference():
    y = batch_norm_inference(X, G, B, np.zeros(3), np.zeros(3), epsilon=0.25)
    np.testing.assert_allclose(y, X / 0.5)


@pytest.mark.parametrize(("center", "scale"), [(True, True), (False, False)])
def test_a_float32_layer_stays_float32(center, scale):
    layer = BatchNorm(center=center, scale=scale, momentum=0.5)
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(8, 3)).astype(np.float32)
    y = layer(x, training=True)
    arrays = [y, layer(x), layer.moving_mean, layer.moving_variance, layer.calibrate(x)]
    arrays += [p for p, _ in layer.params()]
    assert all(a.dtype == np.float32 for a in arrays)
    assert len(layer.params()) == center + scale
    layer.backward(np.ones_like(x))
    assert all(g.dtype == np.float32 for _, g in layer.params())
    assert layer.dgamma is None if not scale else layer.dgamma.shape == (3,)


def test_build_makes_parameters_of_the_given_dtype():
    layer = BatchNorm()
    assert layer.gamma is None and layer.dgamma is None and layer.dbeta is None
    layer.build(3, np.float32)
    for a in (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance):
        assert a.dtype == np.float32 and a.shape == (3,)
    np.testing.assert_array_equal(layer.moving_variance, 1.0)


@pytest.mark.parametrize("eps", [1e-3, 0.5])
def test_the_three_forward_passes_agree(eps):
    """bare.forward (chapter 3's first), the workbook's reference and
    batch_norm_forward are written apart on purpose; they compute the same."""
    from bnbook import bare
    from bnbook.workbook.cases import Case
    from bnbook.workbook.reference import _y

    rng = np.random.default_rng(11)
    x = rng.normal(3.0, 2.0, size=(9, 4))
    gamma, beta = rng.uniform(0.5, 2.0, 4), rng.normal(size=4)
    y, _ = batch_norm_forward(x, gamma, beta, epsilon=eps)
    y_bare, _ = bare.forward(x, gamma, beta, eps)
    y_workbook = _y(Case("x", x, gamma, beta, eps, (0,)))
    np.testing.assert_allclose(y_bare, y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y_workbook, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_a_layer_without_gamma_and_beta_keeps_the_dtype_of_its_input(training):
    layer = BatchNorm(center=False, scale=False)
    x = np.random.default_rng(6).normal(size=(5, 3)).astype(np.float32)
    assert layer(x, training=training).dtype == np.float32
