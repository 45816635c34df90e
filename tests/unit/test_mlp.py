"""The NumPy MLP: gradients, training, and argument checks."""

import numpy as np
import pytest

from bnbook.batchnorm import BatchNorm, batch_norm_backward
from bnbook.data import load_digits_split
from bnbook.gradcheck import numerical_gradient, relative_error
from bnbook.mlp import (
    MLP,
    NoiseInjection,
    ReLU,
    Residual,
    softmax_cross_entropy,
    train_mlp,
)
from bnbook.normalization import BatchRenorm, GroupNorm, LayerNorm


def test_softmax_cross_entropy_value_and_gradient():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    labels = np.array([0, 2])
    loss, dlogits = softmax_cross_entropy(logits, labels)
    p0 = np.exp(2) / (np.exp(2) + 1 + np.exp(-1))
    assert loss == pytest.approx((-np.log(p0) + np.log(3)) / 2, rel=1e-12)
    numeric = numerical_gradient(
        lambda z: np.array(softmax_cross_entropy(z, labels)[0]), logits, np.array(1.0)
    )
    assert relative_error(dlogits, numeric) < 1e-8
    # no overflow for huge logits
    assert np.isfinite(softmax_cross_entropy(logits * 1e4, labels)[0])


@pytest.mark.parametrize("batch_norm", [False, True])
def test_backward_matches_finite_differences(batch_norm):
    rng = np.random.default_rng(0)
    model = MLP(sizes=(5, 4, 3), batch_norm=batch_norm, seed=1)
    x, labels = rng.normal(size=(6, 5)), np.array([0, 1, 2, 0, 1, 2])

    def loss_of_x(x_):
        return np.array(softmax_cross_entropy(model(x_, training=True), labels)[0])

    _, dlogits = softmax_cross_entropy(model(x, training=True), labels)
    dx = model.backward(dlogits)
    assert relative_error(dx, numerical_gradient(loss_of_x, x, np.array(1.0))) < 1e-7
    first = model.layers[0]
    dW = first.dW.copy()

    def loss_of_w(w):
        old, first.W = first.W, w
        try:
            return loss_of_x(x)
        finally:
            first.W = old

    assert (
        relative_error(dW, numerical_gradient(loss_of_w, first.W, np.array(1.0))) < 1e-7
    )


def test_layers_with_and_without_batch_norm():
    plain, normed = MLP(batch_norm=False), MLP(batch_norm=True)
    assert not any(isinstance(layer, BatchNorm) for layer in plain.layers)
    assert sum(isinstance(layer, BatchNorm) for layer in normed.layers) == 2
    assert normed.layers[0].b is None and plain.layers[0].b is not None


def test_training_learns_the_digits():
    data = load_digits_split()
    for batch_norm in (False, True):
        model = MLP(batch_norm=batch_norm, seed=0)
        history = train_mlp(model, data, steps=200, lr=0.1, eval_every=100)
        np.testing.assert_array_equal(history["step"], [100, 200])
        assert history["train_loss"][-1] < 0.3
        assert history["test_accuracy"][-1] > 0.9


def test_same_seed_same_run():
    data = load_digits_split()
    a = train_mlp(MLP(batch_norm=True, seed=3), data, steps=30, lr=0.1, seed=3)
    b = train_mlp(MLP(batch_norm=True, seed=3), data, steps=30, lr=0.1, seed=3)
    np.testing.assert_array_equal(a["train_loss"], b["train_loss"])


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"sizes": (64,)}, ValueError, "sizes"),
        ({"sizes": (64, 0, 10)}, ValueError, "sizes"),
        ({"sizes": (64, 2.5, 10)}, ValueError, "sizes"),
        ({"batch_norm": 1}, TypeError, "batch_norm"),
        ({"init_scale": 0.0}, ValueError, "init_scale"),
        ({"noise": "yes"}, TypeError, "noise"),
    ],
)
def test_bad_model_arguments(kwargs, error, name):
    with pytest.raises(error, match=name):
        MLP(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"steps": 0, "lr": 0.1}, "steps"),
        ({"steps": 1.5, "lr": 0.1}, "steps"),
        ({"steps": 10, "lr": 0.0}, "lr"),
        ({"steps": 10, "lr": 0.1, "batch_size": 1}, "batch_size"),
        ({"steps": 10, "lr": 0.1, "batch_size": 10**6}, "batch_size"),
    ],
)
def test_bad_training_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        train_mlp(MLP(), load_digits_split(), **kwargs)


def test_a_diverging_run_stops_and_reports_nan():
    data = load_digits_split()
    history = train_mlp(MLP(seed=0), data, steps=200, lr=5.0, eval_every=50)
    np.testing.assert_array_equal(history["step"], [50, 100, 150, 200])
    assert np.isnan(history["train_loss"][-1]) and np.isnan(
        history["test_accuracy"][-1]
    )


def test_checkpoints_include_the_last_step():
    history = train_mlp(
        MLP(seed=0), load_digits_split(), steps=70, lr=0.1, eval_every=50
    )
    np.testing.assert_array_equal(history["step"], [50, 70])
    assert np.all(np.isfinite(history["train_loss"]))


def test_loss_and_grads_leave_the_model_unchanged_and_match_finite_differences():
    rng = np.random.default_rng(5)
    model = MLP(sizes=(4, 3, 2), batch_norm=True, seed=2)
    x, labels = rng.normal(size=(8, 4)), np.array([0, 1] * 4)
    model(x, training=True)  # moving statistics away from their initial values
    bn = model.layers[1]
    before = bn.moving_mean.copy(), bn.moving_variance.copy()
    loss, grads = model.loss_and_grads(x, labels)
    np.testing.assert_array_equal(bn.moving_mean, before[0])
    np.testing.assert_array_equal(bn.moving_variance, before[1])
    assert [g.shape for g in grads] == [p.shape for p in model.parameters()]
    params = [p.copy() for p in model.parameters()]

    def loss_of_first(w):
        model.set_parameters([w, *params[1:]])
        value = model.loss_and_grads(x, labels)[0]
        model.set_parameters(params)
        return np.array(value)

    numeric = numerical_gradient(loss_of_first, params[0], np.array(1.0))
    assert relative_error(grads[0], numeric) < 1e-7
    assert loss == pytest.approx(float(loss_of_first(params[0])))


def test_set_parameters_checks_its_argument():
    model = MLP(sizes=(4, 3, 2))
    with pytest.raises(ValueError, match="values"):
        model.set_parameters([np.ones(2)])
    with pytest.raises(ValueError, match="shapes"):
        model.set_parameters([np.ones((2, 2))] + model.parameters()[1:])


def test_noise_injection_follows_algorithm_1():
    layer = NoiseInjection(np.random.default_rng(0))
    x = np.ones((20000, 3))
    y = layer(x, training=True)
    s = layer._s
    # per unit: s ~ N(sigma, 0.1) with sigma in [1, 1.25]; m within 0.1 of mu in [-0.5, 0.5]
    assert np.all((s.mean(axis=0) > 0.99) & (s.mean(axis=0) < 1.26))
    np.testing.assert_allclose(s.std(axis=0), 0.1, rtol=0.05)
    m = y - s * x
    assert np.all(m.max(axis=0) - m.min(axis=0) <= 0.2 + 1e-12)
    assert np.all(np.abs(m) <= 0.6)
    dy = np.random.default_rng(1).normal(size=x.shape)
    np.testing.assert_array_equal(layer.backward(dy), s * dy)
    np.testing.assert_array_equal(layer(x), x)  # inference: the identity
    with pytest.raises(RuntimeError, match="training=True"):
        layer.backward(dy)


def test_noisy_networks_still_learn_and_predict_deterministically():
    data = load_digits_split()
    for batch_norm in (False, True):
        model = MLP(batch_norm=batch_norm, noise=True, seed=0)
        assert sum(isinstance(la, NoiseInjection) for la in model.layers) == 2
        history = train_mlp(model, data, steps=200, lr=0.05, eval_every=100)
        assert history["test_accuracy"][-1] > 0.85
        np.testing.assert_array_equal(model(data.x_test[:5]), model(data.x_test[:5]))


def test_a_linear_network_has_no_relu_and_is_linear():
    model = MLP(sizes=(3, 4, 4, 2), activation="linear", seed=0)
    assert not any(isinstance(la, ReLU) for la in model.layers)
    x = np.random.default_rng(0).normal(size=(5, 3))
    bias = model(np.zeros((1, 3)))
    np.testing.assert_allclose(model(2 * x) - bias, 2 * (model(x) - bias))
    with pytest.raises(ValueError, match="activation"):
        MLP(activation="tanh")


def test_input_grads_hold_every_layers_input_gradient():
    rng = np.random.default_rng(0)
    model = MLP(sizes=(5, 4, 3), batch_norm=True, seed=1)
    x, labels = rng.normal(size=(6, 5)), np.array([0, 1, 2, 0, 1, 2])
    _, dlogits = softmax_cross_entropy(model(x, training=True), labels)
    dx = model.backward(dlogits)
    assert len(model.input_grads) == len(model.layers)
    np.testing.assert_array_equal(model.input_grads[0], dx)
    # the last layer is Dense: its input gradient is dlogits @ W.T
    np.testing.assert_allclose(model.input_grads[-1], dlogits @ model.layers[-1].W.T)
    bn = model.layers[1]
    np.testing.assert_allclose(
        model.input_grads[1], batch_norm_backward(model.input_grads[2], bn.cache)[0]
    )


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_preactivations_one_per_hidden_layer_and_no_trace(activation):
    rng = np.random.default_rng(2)
    model = MLP((5, 7, 6, 3), batch_norm=True, noise=True, activation=activation)
    x = rng.normal(3.0, 2.0, size=(40, 5))
    model(x, training=True)
    bn = model.layers[1]
    moving = bn.moving_mean.copy()
    first = model.preactivations(x, training=True)
    again = model.preactivations(x, training=True)
    assert [a.shape for a in first] == [(40, 7), (40, 6)]
    np.testing.assert_array_equal(first[0], again[0])  # the same noise: state restored
    np.testing.assert_array_equal(bn.moving_mean, moving)
    # without noise, training-mode preactivations are normalized per unit
    clean = MLP((5, 7, 3), batch_norm=True, activation=activation)
    z = clean.preactivations(x, training=True)[0]
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-3)


def test_loss_and_grads_at_other_parameters_leaves_the_model_alone():
    rng = np.random.default_rng(5)
    model = MLP(sizes=(4, 3, 2), batch_norm=True, seed=2)
    x, labels = rng.normal(size=(8, 4)), np.array([0, 1] * 4)
    own = [p.copy() for p in model.parameters()]
    other = [p + 0.1 for p in own]
    loss, grads = model.loss_and_grads_at(other, x, labels)
    for p, q in zip(model.parameters(), own, strict=True):
        np.testing.assert_array_equal(p, q)
    model.set_parameters(other)
    loss_direct, grads_direct = model.loss_and_grads(x, labels)
    assert loss == loss_direct
    for g, h in zip(grads, grads_direct, strict=True):
        np.testing.assert_array_equal(g, h)


def test_callback_sees_every_checkpoint_and_measuring_changes_nothing():
    data = load_digits_split()
    seen = []

    def measure(step, model):
        seen.append(step)
        model.loss_and_grads(data.x_train[:30].astype(float), data.y_train[:30])
        model.preactivations(data.x_train[:30].astype(float), training=True)

    kwargs = {"steps": 70, "lr": 0.1, "eval_every": 25}
    plain = train_mlp(MLP(batch_norm=True, noise=True), data, **kwargs)
    measured = train_mlp(
        MLP(batch_norm=True, noise=True), data, callback=measure, **kwargs
    )
    assert seen == [0, 25, 50, 70]
    np.testing.assert_array_equal(plain["train_loss"], measured["train_loss"])
    np.testing.assert_array_equal(plain["test_accuracy"], measured["test_accuracy"])
    with pytest.raises(TypeError, match="callback"):
        train_mlp(MLP(), data, steps=5, lr=0.1, callback="print")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"norm": LayerNorm},
        {"norm": lambda: GroupNorm(groups=2)},
        {"batch_norm": True, "residual": True},
        {"residual": True, "activation": "linear"},
    ],
    ids=["layer", "group", "bn-residual", "linear-residual"],
)
def test_other_normalizations_and_residual_blocks_have_correct_gradients(kwargs):
    rng = np.random.default_rng(3)
    model = MLP(sizes=(5, 4, 4, 4, 3), seed=1, **kwargs)
    x, labels = rng.normal(size=(6, 5)), np.array([0, 1, 2, 0, 1, 2])
    if "residual" in kwargs:
        assert sum(isinstance(la, Residual) for la in model.layers) == 2
    params = [p.copy() for p in model.parameters()]
    _, grads = model.loss_and_grads(x, labels)
    for k in (0, len(params) - 3):

        def loss_of(p, k=k):
            values = [*params]
            values[k] = p
            return np.array(model.loss_and_grads_at(values, x, labels)[0])

        numeric = numerical_gradient(loss_of, params[k], np.array(1.0))
        assert relative_error(grads[k], numeric) < 1e-6, k


def test_batch_renorm_in_a_network_follows_keras_not_the_true_gradient():
    # Renorm treats its corrections r and d as constants, so its gradient is not the
    # loss's (tests/unit/test_normalization.py checks it against Keras instead); the
    # network still trains.
    model = MLP(norm=BatchRenorm, seed=0)
    assert isinstance(model.layers[1], BatchRenorm) and model.layers[0].b is None
    history = train_mlp(model, load_digits_split(), steps=200, lr=0.1, eval_every=100)
    assert history["test_accuracy"][-1] > 0.9


def test_dense_layers_are_found_inside_residual_blocks():
    model = MLP(sizes=(5, 4, 4, 4, 3), batch_norm=True, residual=True)
    assert len(model.dense_layers()) == 4
    assert model.dense_layers()[0] is model.layers[0]
    assert model.dense_layers()[0].b is None  # batch norm follows it
    assert MLP(sizes=(5, 4, 3), norm=LayerNorm).dense_layers()[0].b is not None


def test_population_statistics_make_inference_equal_training_on_that_batch():
    rng = np.random.default_rng(4)
    for residual in (False, True):
        model = MLP(sizes=(5, 6, 6, 3), batch_norm=True, residual=residual, seed=2)
        x = rng.normal(3.0, 2.0, size=(50, 5))
        assert not np.allclose(model(x), model(x, training=True))
        model.use_population_statistics(x)
        np.testing.assert_allclose(model(x), model(x, training=True), rtol=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"norm": "LayerNorm"}, TypeError, "norm"),
        ({"norm": LayerNorm, "batch_norm": True}, ValueError, "not both"),
        ({"residual": 1}, TypeError, "residual"),
    ],
)
def test_bad_normalization_arguments(kwargs, error, name):
    with pytest.raises(error, match=name):
        MLP(**kwargs)


def test_preactivations_need_a_plain_network():
    with pytest.raises(ValueError, match="residual"):
        MLP(sizes=(4, 4, 4, 2), residual=True).preactivations(np.ones((3, 4)))


@pytest.mark.parametrize("residual", [False, True])
def test_folded_network_computes_the_same_with_fewer_layers(residual):
    rng = np.random.default_rng(6)
    model = MLP(sizes=(5, 6, 6, 3), batch_norm=True, residual=residual, seed=3)
    for _ in range(5):  # moving statistics away from 0 and 1
        model(rng.normal(2.0, 3.0, size=(20, 5)), training=True)
    folded = model.folded()
    x = rng.normal(2.0, 3.0, size=(7, 5))
    np.testing.assert_allclose(folded(x), model(x), rtol=1e-10, atol=1e-12)
    assert not any(isinstance(la, BatchNorm) for la in folded.layers)
    assert all(d.b is not None for d in folded.dense_layers())
    assert model.dense_layers()[0].b is None  # the original is untouched
