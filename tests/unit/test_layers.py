"""The one layer interface: every layer, checked the same way."""

import copy

import numpy as np
import pytest
from naming import raises_naming

from bnbook.batchnorm import BatchNorm
from bnbook.deep import ScalarBias, Scale, WSDense
from bnbook.ghost import GhostBatchNorm
from bnbook.gradcheck import numerical_gradient, relative_error
from bnbook.groupnorm import GroupNorm, LayerNorm
from bnbook.layers import (
    Dense,
    Dropout,
    Layer,
    NoiseInjection,
    ReLU,
    Residual,
    Sequential,
)
from bnbook.lpnorm import LpBatchNorm
from bnbook.renorm import BatchRenorm

N, C = 6, 4


def _built(layer):
    layer.build(C, np.float64)
    return layer


# name: (a fresh layer, how many parameter arrays it trains); one line per layer
LAYERS = {
    "dense": (lambda: Dense(C, C, np.random.default_rng(0)), 2),
    "dense without bias": (
        lambda: Dense(C, C, np.random.default_rng(0), bias=False),
        1,
    ),
    "relu": (ReLU, 0),
    "batch norm": (lambda: _built(BatchNorm(momentum=0.5)), 2),
    "layer norm": (lambda: _built(LayerNorm()), 2),
    "group norm": (lambda: _built(GroupNorm(groups=2)), 2),
    "noise": (lambda: NoiseInjection(np.random.default_rng(0)), 0),
    "sequential": (
        lambda: Sequential(
            [Dense(C, C, np.random.default_rng(1)), _built(BatchNorm()), ReLU()]
        ),
        4,
    ),
    "residual": (
        lambda: Residual(
            [
                Dense(C, C, np.random.default_rng(1), bias=False),
                _built(BatchNorm()),
                ReLU(),
            ]
        ),
        3,
    ),
    "batch renorm": (lambda: _built(BatchRenorm(momentum=0.5, renorm_momentum=0.5)), 2),
    "lp batch norm": (lambda: _built(LpBatchNorm(p=1, momentum=0.5)), 2),
    "ghost batch norm": (lambda: _built(GhostBatchNorm(ghost_size=3, momentum=0.5)), 2),
    "dropout": (lambda: Dropout(0.6, np.random.default_rng(0)), 0),
    "scale": (lambda: Scale(0.7), 1),
    "fixed scale": (lambda: Scale(0.7, trainable=False), 0),
    "scalar bias": (ScalarBias, 1),
    "weight-standardized dense": (lambda: WSDense(C, C, np.random.default_rng(0)), 3),
}


def make(name):
    return LAYERS[name][0]()


# Renorm's gradient holds its corrections r and d constant, as Keras's does: it is not
# the gradient of its output (test_renorm.py checks it against Keras instead).
TRUE_GRADIENT = [name for name in LAYERS if name != "batch renorm"]


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 2.0, size=(N, C)), rng.normal(size=(N, C))


@pytest.mark.parametrize("name", TRUE_GRADIENT)
def test_backward_is_the_gradient_of_the_input(name):
    layer, (x, dy) = make(name), _inputs()
    before = layer.state()  # so that the noise layer draws the same noise every time
    layer(x, training=True)
    dx = layer.backward(dy)

    def f(v):
        layer.set_state(before)
        return layer(v, training=True)

    assert relative_error(dx, numerical_gradient(f, x, dy)) < 1e-7


@pytest.mark.parametrize("name", TRUE_GRADIENT)
def test_params_pairs_each_array_with_its_gradient(name):
    layer, (x, dy) = make(name), _inputs()
    assert len(layer.params()) == LAYERS[name][1]
    before = layer.state()
    layer(x, training=True)
    layer.backward(dy)
    for k, (p, g) in enumerate(layer.params()):
        assert g.shape == p.shape, k
        dp = g.copy()

        def f(v, p=p):
            saved = p.copy()
            p[...] = v  # the pair holds the array itself: changing it changes the layer
            try:
                layer.set_state(before)
                return layer(x, training=True)
            finally:
                p[...] = saved

        # (a bias before batch norm has a zero gradient: compare absolutely there)
        np.testing.assert_allclose(
            dp, numerical_gradient(f, p, dy), rtol=1e-6, atol=1e-8
        )


@pytest.mark.parametrize("name", list(LAYERS))
def test_state_restores_what_a_training_call_changes(name):
    layer, (x, _) = make(name), _inputs()
    saved = layer.state()
    first = layer(x, training=True)
    layer(x + 1.0, training=True)  # moves the moving statistics, draws new noise
    layer.set_state(saved)
    np.testing.assert_array_equal(layer(x, training=True), first)
    before = copy.deepcopy(layer.state())
    layer(x + 2.0)  # inference changes no state: the next training call is the same
    _assert_same_state(layer.state(), before)


def _assert_same_state(state, expected):
    """Equal states: dicts (or lists of dicts) of arrays or generator states."""
    if isinstance(state, list):
        assert len(state) == len(expected)
        for s, e in zip(state, expected, strict=True):
            _assert_same_state(s, e)
        return
    assert state.keys() == expected.keys()
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, expected[key])
        else:
            assert value == expected[key], key


@pytest.mark.parametrize("name", ["relu", "dense", "layer norm"])
def test_layers_without_buffers_have_an_empty_state(name):
    layer = make(name)
    assert layer.state() == {}
    layer.set_state({})
    with pytest.raises(ValueError, match=f"^{type(layer).__name__} has no state"):
        layer.set_state({"moving_mean": np.zeros(C)})


def test_the_state_of_batch_norm_and_renorm_names_their_buffers():
    bn = make("batch norm")
    assert set(bn.state()) == {"moving_mean", "moving_variance"}
    renorm = make("batch renorm")
    assert set(renorm.state()) == {
        "moving_mean",
        "moving_variance",
        "moving_stddev",
        "renorm_mean",
        "renorm_stddev",
    }
    x, _ = _inputs()
    saved = renorm.state()
    renorm(x, training=True)
    assert all(not np.array_equal(renorm.state()[k], saved[k]) for k in saved)
    renorm.set_state(saved)
    for k, v in renorm.state().items():
        np.testing.assert_array_equal(v, saved[k])


def test_the_base_class_defaults():
    layer = Layer()
    assert layer.params() == [] and layer.state() == {}
    assert not layer.cancels_bias and BatchNorm.cancels_bias
    assert BatchRenorm.cancels_bias and not LayerNorm.cancels_bias
    with pytest.raises(NotImplementedError):
        layer(np.ones((2, 2)))
    with pytest.raises(NotImplementedError):
        layer.backward(np.ones((2, 2)))


def test_sequential_keeps_every_input_gradient():
    model, (x, dy) = make("sequential"), _inputs()
    model(x, training=True)
    dx = model.backward(dy)
    assert len(model.input_grads) == len(model.layers)
    np.testing.assert_array_equal(model.input_grads[0], dx)
    dense, bn, relu = model.layers
    expected_relu = relu.backward(dy)
    np.testing.assert_array_equal(model.input_grads[2], expected_relu)
    np.testing.assert_array_equal(model.input_grads[1], bn.backward(expected_relu))


def test_sequential_computes_in_float64():
    model = Sequential([ReLU()])  # nothing in it would cast
    assert model(np.ones((3, C), np.float32)).dtype == np.float64
    assert model.calibrate(np.ones((3, C), np.int64)).dtype == np.float64


def test_a_dense_layer_is_he_initialized_with_a_zero_bias_by_default():
    dense = Dense(400, 300, np.random.default_rng(0))
    np.testing.assert_array_equal(dense.b, np.zeros(300))
    np.testing.assert_allclose(dense.W.std(), np.sqrt(2 / 400), rtol=0.01)


def test_residual_adds_its_input_and_passes_the_gradient_on():
    block, (x, dy) = make("residual"), _inputs()
    chain = Sequential(block.layers)
    np.testing.assert_array_equal(block(x, training=True), x + chain(x, training=True))
    np.testing.assert_array_equal(block.backward(dy), dy + chain.backward(dy))


def test_noise_injection_draws_in_the_order_of_algorithm_1():
    x = np.random.default_rng(0).normal(size=(7, 5))
    layer = NoiseInjection(np.random.default_rng(3))
    y = layer(x, training=True)
    rng = np.random.default_rng(3)  # the same draws, by hand
    mu = rng.uniform(-0.5, 0.5, size=5)
    sigma = rng.uniform(1.0, 1.25, size=5)
    m = rng.uniform(mu - 0.1, mu + 0.1, size=(7, 5))
    s = rng.normal(sigma, 0.1, size=(7, 5))
    np.testing.assert_array_equal(y, s * x + m)
    np.testing.assert_array_equal(layer.calibrate(x), x)  # no noise in inference mode
    with pytest.raises(RuntimeError, match="^backward needs a preceding call with"):
        NoiseInjection(np.random.default_rng(0)).backward(x)


def test_noise_injection_follows_algorithm_1():
    layer = NoiseInjection(np.random.default_rng(0))
    x = np.ones((20000, 3))
    y = layer(x, training=True)
    s = layer._s
    # per unit: s ~ N(sigma, 0.1) with sigma in [1, 1.25]; m within 0.1 of mu in [-0.5, 0.5]
    assert np.all((s.mean(axis=0) > 0.99) & (s.mean(axis=0) < 1.26))
    np.testing.assert_allclose(s.std(axis=0), 0.1, rtol=0.05)
    assert np.ptp(s.mean(axis=0)) > 0.05  # sigma differs between units
    m = y - s * x
    assert np.all(m.max(axis=0) - m.min(axis=0) <= 0.2 + 1e-12)
    assert np.all(np.abs(m) <= 0.6)
    assert np.ptp(m.mean(axis=0)) > 0.05  # every unit has its own mean
    dy = np.random.default_rng(1).normal(size=x.shape)
    np.testing.assert_array_equal(layer.backward(dy), s * dy)
    np.testing.assert_array_equal(layer(x), x)  # inference: the identity
    with pytest.raises(RuntimeError, match="training=True"):
        layer.backward(dy)


@pytest.mark.parametrize("residual", [False, True])
def test_calibrate_makes_inference_equal_training_on_that_batch(residual):
    rng = np.random.default_rng(4)
    make = Residual if residual else Sequential
    model = make([Dense(C, C, rng, bias=False), BatchNorm(), ReLU()])
    x = rng.normal(3.0, 2.0, size=(50, C))
    assert not np.allclose(model(x), model(x, training=True))
    y = model.calibrate(x)
    np.testing.assert_array_equal(y, model(x))
    np.testing.assert_allclose(model(x), model(x, training=True), rtol=1e-10)


def test_calibrate_keeps_renorms_moving_std_in_step():
    layer = make("batch renorm")
    x, _ = _inputs()
    layer.calibrate(x)
    np.testing.assert_allclose(layer.moving_mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance, x.var(axis=0), rtol=1e-12)
    np.testing.assert_allclose(
        layer.moving_stddev, np.sqrt(x.var(axis=0) + layer.epsilon), rtol=1e-12
    )


@pytest.mark.parametrize("residual", [False, True])
def test_folded_chain_computes_the_same_with_fewer_layers(residual):
    rng = np.random.default_rng(6)
    block = [Dense(C, C, rng, bias=False), BatchNorm(), ReLU()]
    inner = Residual(block) if residual else Sequential(block)
    model = Sequential([inner, Dense(C, 2, rng), BatchNorm()])
    for _ in range(5):  # moving statistics away from 0 and 1
        model(rng.normal(2.0, 3.0, size=(20, C)), training=True)
    folded = model.folded()
    x = rng.normal(2.0, 3.0, size=(7, C))
    np.testing.assert_allclose(folded(x), model(x), rtol=1e-10, atol=1e-12)
    assert [type(la) for la in folded.layers] == [type(inner), Dense]
    assert [type(la) for la in folded.layers[0].layers] == [Dense, ReLU]
    assert type(folded.layers[0]) is type(inner)
    assert inner.layers[0].b is None and len(inner.layers) == 3  # the original stays


def test_relu_passes_no_gradient_at_zero():
    relu = ReLU()  # as TensorFlow's: the subgradient 0 at x = 0
    relu(np.array([[-1.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(relu.backward(np.ones((1, 3))), [[0.0, 0.0, 1.0]])


def test_gradients_are_none_before_a_backward_pass():
    dense, model = make("dense"), make("sequential")
    assert dense.params()[0][1] is None and model.input_grads is None
    nobias = make("dense without bias")
    nobias(np.ones((2, C)))
    nobias.backward(np.ones((2, C)))
    assert nobias.db is None


def test_a_chain_refuses_a_state_of_another_length():
    model = make("sequential")
    with pytest.raises(ValueError):
        model.set_state(model.state()[:2])


def test_folding_keeps_the_bias_and_copies_every_array():
    rng = np.random.default_rng(7)
    dense = Dense(C, C, rng)
    dense.b[...] = rng.normal(size=C)
    model = Sequential([dense, BatchNorm(), ReLU(), Dense(C, 2, rng)])
    model(rng.normal(1.0, 2.0, size=(9, C)), training=True)
    model.layers[-1].b[...] = 0.5
    folded = model.folded()
    x = rng.normal(size=(4, C))
    np.testing.assert_allclose(folded(x), model(x), rtol=1e-12, atol=1e-12)
    folded.layers[-1].W[...] = 0.0  # the folded copy owns its arrays
    assert np.all(model.layers[-1].W != 0.0)


def test_dropout_keeps_a_fraction_and_the_mean():
    layer = Dropout(0.8, np.random.default_rng(3))
    x = np.ones((200, 50))
    y = layer(x, training=True)
    kept = y > 0
    assert abs(kept.mean() - 0.8) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.8)  # the kept values are scaled up
    assert abs(y.mean() - 1.0) < 0.03
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), y)  # the same mask
    assert layer(x) is x  # the identity in inference mode
    np.testing.assert_array_equal(Dropout(1, np.random.default_rng(0))(x, True), x)
    with pytest.raises(RuntimeError, match="training=True"):
        layer.backward(x)
    with raises_naming(RuntimeError, "^backward needs a preceding call with training"):
        Dropout(0.5, np.random.default_rng(0)).backward(x)  # a fresh layer


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"keep": 0.0}, ValueError, "keep"),
        ({"keep": 1.5}, ValueError, "keep"),
        ({"keep": "0.5"}, TypeError, "keep"),
        ({"keep": True}, TypeError, "keep"),
        ({"rng": 0}, TypeError, "^rng must be a numpy.random.Generator, got int"),
    ],
)
def test_dropout_bad_arguments(kwargs, error, name):
    arguments = {"keep": 0.5, "rng": np.random.default_rng(0)} | kwargs
    with raises_naming(error, name):
        Dropout(**arguments)


def test_inserted_puts_a_new_layer_before_or_after_each_of_a_class():
    rng = np.random.default_rng(8)
    dense, relu, last = Dense(C, C, rng), ReLU(), Dense(C, 2, rng)
    model = Sequential([dense, relu, last])
    after = model.inserted(BatchNorm, after=ReLU)
    before = model.inserted(BatchNorm, before=Dense)
    assert [type(la) for la in after.layers] == [Dense, ReLU, BatchNorm, Dense]
    assert [type(la) for la in before.layers] == [
        BatchNorm,
        Dense,
        ReLU,
        BatchNorm,
        Dense,
    ]
    assert before.layers[1] is dense and after.layers[3] is last  # shared, not copied
    assert before.layers[0] is not before.layers[3]  # a new layer each time
    assert [type(la) for la in model.layers] == [Dense, ReLU, Dense]  # unchanged
    for kwargs, error in (
        ({}, ValueError),
        ({"before": ReLU, "after": ReLU}, ValueError),
    ):
        with raises_naming(error, "^inserted takes one of before and after"):
            model.inserted(BatchNorm, **kwargs)
    with raises_naming(TypeError, "make"):
        model.inserted("BatchNorm", after=ReLU)
