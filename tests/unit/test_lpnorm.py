"""l_p batch norm (Santurkar et al., 2018): the scale, gradients, the layer, errors."""

import functools

import numpy as np
import pytest
from naming import raises_naming

from bnbook.batchnorm import BatchNorm, batch_norm_backward, batch_norm_forward
from bnbook.folding import fold_into_dense
from bnbook.gradcheck import numerical_gradient, relative_error
from bnbook.layers import Dense
from bnbook.lpnorm import LpBatchNorm, lp_norm_backward, lp_norm_forward
from bnbook.mlp import build_mlp, loss_and_grads


def _case(n=5, c=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 3.0, size=(n, c))
    return x, rng.uniform(0.5, 2.0, c), rng.normal(size=c), rng.normal(size=(n, c))


PS = [1, 2, np.inf]


@pytest.mark.parametrize("before_centering", [False, True], ids=["centered", "raw"])
@pytest.mark.parametrize("p", PS, ids=["l1", "l2", "linf"])
def test_lp_norm_gradients_match_finite_differences(p, before_centering):
    x, gamma, beta, dy = _case(n=7, c=4, seed=11)
    options = {"p": p, "before_centering": before_centering}
    _, cache = lp_norm_forward(x, gamma, beta, **options)
    # Away from the kinks: no |z| near 0 (p = 1), a unique largest |z| (p = inf).
    top2 = np.sort(np.abs(cache.z), axis=0)[-2:]
    assert np.abs(cache.z).min() > 1e-3 and np.all(top2[1] - top2[0] > 1e-3)
    dx, dgamma, dbeta = lp_norm_backward(dy, cache)

    def forward(x_=x, gamma_=gamma, beta_=beta):
        return lp_norm_forward(x_, gamma_, beta_, **options)[0]

    assert relative_error(dx, numerical_gradient(forward, x, dy)) < 1e-7
    numeric_gamma = numerical_gradient(lambda g: forward(gamma_=g), gamma, dy)
    assert relative_error(dgamma, numeric_gamma) < 1e-7
    numeric_beta = numerical_gradient(lambda b: forward(beta_=b), beta, dy)
    assert relative_error(dbeta, numeric_beta) < 1e-7


@pytest.mark.parametrize("before_centering", [False, True], ids=["centered", "raw"])
@pytest.mark.parametrize("p", PS, ids=["l1", "l2", "linf"])
def test_lp_norm_gradients_hold_for_images_on_any_axis(p, before_centering):
    rng = np.random.default_rng(12)
    x, dy = rng.normal(1.0, 2.0, size=(3, 2, 4, 5)), rng.normal(size=(3, 2, 4, 5))
    gamma, beta = rng.uniform(0.5, 2.0, 2), rng.normal(size=2)
    options = {"p": p, "axis": 1, "before_centering": before_centering}
    y, cache = lp_norm_forward(x, gamma, beta, **options)
    assert y.shape == x.shape and cache.scale.shape == (1, 2, 1, 1)
    dx, dgamma, dbeta = lp_norm_backward(dy, cache)

    def forward(x_):
        return lp_norm_forward(x_, gamma, beta, **options)[0]

    assert relative_error(dx, numerical_gradient(forward, x, dy)) < 1e-7
    assert dgamma.shape == dbeta.shape == (2,)


@pytest.mark.parametrize("epsilon", [1e-3, 0.5])
def test_lp_norm_with_p_2_is_batch_norm(epsilon):
    # The same epsilon placement, sqrt(s**2 + epsilon) = sqrt(var + epsilon): the
    # same forward and backward passes, to rounding.
    x, gamma, beta, dy = _case(seed=13)
    y, cache = lp_norm_forward(x, gamma, beta, p=2, epsilon=epsilon)
    y_bn, cache_bn = batch_norm_forward(x, gamma, beta, epsilon=epsilon)
    np.testing.assert_allclose(y, y_bn, rtol=1e-13, atol=1e-13)
    ours, theirs = lp_norm_backward(dy, cache), batch_norm_backward(dy, cache_bn)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def _expected_scale(z, p):
    """The average l_p norm of each column, from numpy's vector norm."""
    return np.linalg.norm(z, ord=p, axis=0) / len(z) ** (1 / p)


@pytest.mark.parametrize("p", PS, ids=["l1", "l2", "linf"])
def test_lp_norm_divides_by_the_average_lp_norm(p):
    x, gamma, beta, _ = _case(n=8, c=3, seed=14)
    c = x - x.mean(axis=0)
    s = _expected_scale(c, p)
    y, cache = lp_norm_forward(x, gamma, beta, p=p, epsilon=0.25)
    np.testing.assert_allclose(cache.scale.ravel(), s, rtol=1e-12)
    x_hat = c / np.sqrt(s**2 + 0.25)
    np.testing.assert_allclose(y, gamma * x_hat + beta, rtol=1e-12)
    # Without epsilon, x_hat has an average l_p norm of exactly 1.
    _, cache = lp_norm_forward(x, gamma, beta, p=p, epsilon=0.0)
    np.testing.assert_allclose(_expected_scale(cache.x_hat, p), 1.0, rtol=1e-12)
    np.testing.assert_allclose(cache.x_hat.mean(axis=0), 0.0, atol=1e-12)


@pytest.mark.parametrize("p", PS, ids=["l1", "l2", "linf"])
def test_lp_norm_ignores_scale_and_shift_of_its_input(p):
    x, gamma, beta, _ = _case(seed=15)
    a, b = np.array([3.0, 0.1, -2.0, 7.0, -0.5, 1.0]), np.arange(6.0) - 10.0
    options = {"p": p, "epsilon": 0.0}
    _, cache = lp_norm_forward(x, gamma, beta, **options)
    _, moved = lp_norm_forward(a * x + b, gamma, beta, **options)
    np.testing.assert_allclose(moved.x_hat, np.sign(a) * cache.x_hat, rtol=1e-9)
    # Taken before centering, the scale still ignores a factor but not a shift.
    options["before_centering"] = True
    _, raw = lp_norm_forward(x, gamma, beta, **options)
    _, scaled = lp_norm_forward(a * x, gamma, beta, **options)
    np.testing.assert_allclose(scaled.x_hat, np.sign(a) * raw.x_hat, rtol=1e-9)
    _, shifted = lp_norm_forward(x + b, gamma, beta, **options)
    assert not np.allclose(shifted.x_hat, raw.x_hat, rtol=1e-3)


@pytest.mark.parametrize("p", PS, ids=["l1", "l2", "linf"])
def test_before_centering_takes_the_norm_of_the_uncentered_input(p):
    x, gamma, beta, _ = _case(n=8, c=3, seed=16)
    y, cache = lp_norm_forward(x, gamma, beta, p=p, before_centering=True)
    s = _expected_scale(x, p)
    np.testing.assert_allclose(cache.scale.ravel(), s, rtol=1e-12)
    x_hat = (x - x.mean(axis=0)) / np.sqrt(s**2 + 1e-3)
    np.testing.assert_allclose(y, gamma * x_hat + beta, rtol=1e-12)
    if p == 2:  # s**2 = var + mu**2: batch norm with a larger, per-feature epsilon
        np.testing.assert_allclose(s**2, x.var(axis=0) + x.mean(axis=0) ** 2)


def test_lp_norm_of_a_constant_feature_has_a_finite_gradient():
    x, gamma, beta, dy = _case(seed=17)
    x[:, 0] = 3.0  # s = 0 for every p: sigma = sqrt(epsilon)
    for p in PS:
        y, cache = lp_norm_forward(x, gamma, beta, p=p)
        np.testing.assert_allclose(y[:, 0], beta[0], atol=1e-12)
        assert np.all(np.isfinite(lp_norm_backward(dy, cache)[0]))


def test_with_two_examples_every_p_gives_the_same_output():
    # m = 2 is enough: the centered values are +-d/2, and every average l_p norm d/2.
    x = np.array([[1.0, -3.0], [4.0, 5.0]])
    d = np.array([3.0, 8.0])
    expected = np.array([[-1.0], [1.0]]) * (d / 2) / np.sqrt(d**2 / 4 + 1e-3)
    for p in PS:
        y, _ = lp_norm_forward(x, np.ones(2), np.zeros(2), p=p)
        np.testing.assert_allclose(y, expected, rtol=1e-12)


@pytest.mark.parametrize("p", PS, ids=["l1", "l2", "linf"])
def test_lp_batch_norm_follows_and_infers_with_the_moving_statistics(p):
    rng = np.random.default_rng(18)
    layer = LpBatchNorm(p=p, momentum=0.5, epsilon=0.1)
    layer.build(3, np.float64)
    layer.gamma[...], layer.beta[...] = [0.5, 1.0, 2.0], [0.0, 1.0, -1.0]
    mean, square = np.zeros(3), np.ones(3)
    for _ in range(3):
        x = rng.normal(2.0, 3.0, size=(10, 3))
        y = layer(x, training=True)
        y_batch, cache = lp_norm_forward(x, layer.gamma, layer.beta, p=p, epsilon=0.1)
        np.testing.assert_array_equal(y, y_batch)  # training: the batch statistics
        mean = 0.5 * mean + 0.5 * x.mean(axis=0)
        square = 0.5 * square + 0.5 * cache.scale.ravel() ** 2
    np.testing.assert_allclose(layer.moving_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance, square, rtol=1e-12)
    x = rng.normal(2.0, 3.0, size=(4, 3))
    expected = layer.gamma * (x - mean) / np.sqrt(square + 0.1) + layer.beta
    saved = {k: v.copy() for k, v in layer.state().items()}
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12)
    for k, v in layer.state().items():  # inference leaves the statistics alone
        np.testing.assert_array_equal(v, saved[k])
    dense = fold_into_dense(Dense.from_weights(np.eye(3), None), layer)
    np.testing.assert_allclose(dense(x), expected, rtol=1e-12)  # folds as batch norm


@pytest.mark.parametrize("before_centering", [False, True], ids=["centered", "raw"])
@pytest.mark.parametrize("p", PS, ids=["l1", "l2", "linf"])
def test_lp_batch_norm_calibrate_makes_inference_equal_training(p, before_centering):
    x, *_ = _case(n=12, c=3, seed=19)
    layer = LpBatchNorm(p=p, before_centering=before_centering)
    y = layer.calibrate(x)
    np.testing.assert_allclose(y, layer(x, training=True), rtol=1e-12, atol=1e-12)
    s = _expected_scale(x if before_centering else x - x.mean(axis=0), p)
    np.testing.assert_allclose(layer.moving_variance, s**2, rtol=1e-12)


def test_lp_batch_norm_with_p_2_is_batch_norm_moving_statistics_included():
    rng = np.random.default_rng(20)
    ours, bn = LpBatchNorm(p=2, momentum=0.5), BatchNorm(momentum=0.5)
    for _ in range(3):
        x, dy = rng.normal(1.0, 2.0, size=(8, 4)), rng.normal(size=(8, 4))
        np.testing.assert_allclose(
            ours(x, training=True), bn(x, training=True), rtol=1e-12, atol=1e-12
        )
        np.testing.assert_allclose(
            ours.backward(dy), bn.backward(dy), rtol=1e-11, atol=1e-12
        )
    np.testing.assert_allclose(ours.dgamma, bn.dgamma, rtol=1e-12)
    np.testing.assert_allclose(ours.moving_mean, bn.moving_mean, rtol=1e-12)
    np.testing.assert_allclose(ours.moving_variance, bn.moving_variance, rtol=1e-12)
    x = rng.normal(1.0, 2.0, size=(8, 4))
    np.testing.assert_allclose(ours(x), bn(x), rtol=1e-12)  # inference too


def test_lp_batch_norm_builds_an_mlp_through_a_partial():
    rng = np.random.default_rng(21)
    model = build_mlp((5, 4, 4, 3), norm=functools.partial(LpBatchNorm, p=1), seed=1)
    norms = [la for la in model.layers if isinstance(la, LpBatchNorm)]
    assert len(norms) == 2 and all(la.p == 1 for la in norms)
    assert model.layers[0].b is None  # it centers, so the bias before it goes
    x, labels = rng.normal(size=(6, 5)), np.array([0, 1, 2, 0, 1, 2])
    own = [p.copy() for p, _ in model.params()]
    _, grads = loss_and_grads(model, x, labels)
    for k in range(len(own)):

        def loss_of(v, k=k):
            values = [*own]
            values[k] = v
            return np.array(loss_and_grads(model, x, labels, at=values)[0])

        numeric = numerical_gradient(loss_of, own[k], np.array(1.0))
        assert relative_error(grads[k], numeric) < 1e-6, k
    for _ in range(3):
        model(rng.normal(1.0, 2.0, size=(10, 5)), training=True)
    x = rng.normal(size=(4, 5))
    np.testing.assert_allclose(model.folded()(x), model(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("p", PS, ids=["l1", "l2", "linf"])
def test_lp_batch_norm_keeps_float32(p):
    x, *_ = _case(n=4, c=6)
    layer = LpBatchNorm(p=p, scale=False)
    y = layer(x.astype(np.float32), training=True)
    assert y.dtype == np.float32 and layer.gamma is None
    assert all(v.dtype == np.float32 for v in layer.state().values())
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == layer.dbeta.dtype == np.float32 and layer.dgamma is None
    assert layer(x.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: LpBatchNorm(p=3), ValueError, "p"),
        (lambda: LpBatchNorm(p=np.nan), ValueError, "p"),
        (lambda: LpBatchNorm(p="1"), TypeError, "p"),
        (lambda: LpBatchNorm(p=True), TypeError, "p"),
        (lambda: LpBatchNorm(), TypeError, "p"),
        (lambda: LpBatchNorm(p=1, momentum=2.0), ValueError, "momentum"),
        (lambda: LpBatchNorm(p=1, before_centering=1), TypeError, "before_centering"),
        (
            lambda: lp_norm_forward(np.ones((4, 3)), np.ones(3), np.zeros(3), p=0.5),
            ValueError,
            "p",
        ),
        (
            lambda: lp_norm_forward(np.ones((1, 3)), np.ones(3), np.zeros(3), p=1),
            ValueError,
            "x",
        ),
        (
            lambda: lp_norm_forward(np.ones((4, 3)), np.ones(2), np.zeros(3), p=1),
            ValueError,
            "gamma",
        ),
        (
            lambda: lp_norm_forward(
                np.ones((4, 3)), np.ones(3), np.zeros(3), p=1, epsilon=-1.0
            ),
            ValueError,
            "epsilon",
        ),
        (
            lambda: lp_norm_forward(
                np.ones((4, 3)), np.ones(3), np.zeros(3), p=1, axis=2
            ),
            ValueError,
            "axis",
        ),
        (lambda: lp_norm_backward(np.ones((4, 3)), None), TypeError, "cache"),
        (lambda: LpBatchNorm(p=1).backward(np.ones((2, 3))), RuntimeError, "call"),
    ],
)
def test_lp_norm_bad_input_is_a_clear_error(call, error, name):
    with raises_naming(error, name):
        call()


def test_lp_norm_messages_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"^p must be 1, 2 or np.inf, got 3"):
        LpBatchNorm(p=3)
    with pytest.raises(TypeError, match=r"^p must be 1, 2 or np.inf, got str"):
        lp_norm_forward(np.ones((4, 3)), np.ones(3), np.zeros(3), p="inf")
    x, gamma, beta, _ = _case()
    _, cache = lp_norm_forward(x, gamma, beta, p=1)
    with pytest.raises(ValueError, match="^dy must have the shape of x"):
        lp_norm_backward(np.ones((5, 4)), cache)
    with pytest.raises(TypeError, match="^cache must be the LpNormCache returned by"):
        lp_norm_backward(np.ones((5, 6)), None)
    layer = LpBatchNorm(p=np.inf)
    layer.build(6, np.float64)
    layer.set_moving_statistics(np.zeros(6), -np.ones(6))
    with pytest.raises(ValueError, match="^moving_variance must be >= 0"):
        layer(x)
    with pytest.raises(RuntimeError, match="^backward needs a preceding call with"):
        layer.backward(np.ones((5, 6)))
    assert repr(LpBatchNorm(p=np.inf)).startswith("LpBatchNorm(p=inf, axis=-1,")
    assert LpBatchNorm(p=2.0).p == 2 and LpBatchNorm(p=float("inf")).p == np.inf


@pytest.mark.parametrize("p", PS, ids=["l1", "l2", "linf"])
def test_only_the_centered_form_cancels_the_bias_before_it(p):
    x = np.random.default_rng(22).normal(size=(8, 3))
    for before_centering in (False, True):
        layer = LpBatchNorm(p=p, before_centering=before_centering)
        shifted = layer(x + 1.0, training=True) - layer(x, training=True)
        assert layer.cancels_bias == (np.abs(shifted).max() < 1e-12)
        assert layer.cancels_bias is not before_centering
    uncentred = functools.partial(LpBatchNorm, p=p, before_centering=True)
    model = build_mlp((5, 4, 3), norm=uncentred, seed=1)
    assert model.layers[0].b is not None  # the bias is kept: it is not cancelled


def test_lp_norm_names_its_own_arguments():
    x = np.ones((4, 3))
    with raises_naming(TypeError, "^before_centering must be a bool"):
        lp_norm_forward(x, np.ones(3), np.zeros(3), p=1, before_centering=1)
    with raises_naming(TypeError, "^x must be"):
        lp_norm_forward(["a"] * 4, np.ones(3), np.zeros(3), p=1)
    with raises_naming(
        TypeError, "^cache must be the LpNormCache returned by lp_norm_"
    ):
        lp_norm_backward(x, None)
    _, cache = lp_norm_forward(np.eye(4, 3), np.ones(3), np.zeros(3), p=1, epsilon=0.5)
    assert cache.epsilon == 0.5 and cache.axis == 1 and cache.reduce_axes == (0,)


def test_a_tie_for_the_largest_deviation_shares_the_subgradient():
    from bnbook.lpnorm import _squared_scale_gradient

    z = np.array([[-1.0], [1.0], [0.5]])  # two examples at s = max|z| = 1
    grad = _squared_scale_gradient(z, np.array([[1.0]]), np.inf, (0,))
    np.testing.assert_array_equal(grad, [[-1.0], [1.0], [0.0]])  # 2 s sign / 2 each


@pytest.mark.parametrize("before_centering", [False, True], ids=["centered", "raw"])
def test_lp_batch_norm_calibrates_images_on_the_channel_axis(before_centering):
    x = np.random.default_rng(21).normal(1.0, 2.0, size=(4, 3, 2, 2))
    layer = LpBatchNorm(p=1, axis=1, before_centering=before_centering)
    y = layer.calibrate(x)
    np.testing.assert_allclose(y, layer(x, training=True), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.moving_mean, x.mean(axis=(0, 2, 3)), rtol=1e-12)
    with raises_naming(TypeError, "^x must be"):
        layer.calibrate([["a"]])
