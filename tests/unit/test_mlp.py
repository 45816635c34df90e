"""The NumPy networks of build_mlp: gradients, training, measurements, arguments."""

import warnings

import numpy as np
import pytest
from naming import raises_naming

from bnbook.batchnorm import BatchNorm
from bnbook.data import load_digits_split, minibatches
from bnbook.gradcheck import numerical_gradient, relative_error
from bnbook.groupnorm import GroupNorm, LayerNorm
from bnbook.layers import Dense, Layer, NoiseInjection, ReLU, Residual, Sequential
from bnbook.mlp import (
    accuracy,
    build_mlp,
    layer_inputs,
    loss_and_grads,
    softmax_cross_entropy,
    squared_error,
    state_kept,
    steps_to,
    train_mlp,
)
from bnbook.optim import SGD, sgd_step
from bnbook.renorm import BatchRenorm


def _noisy(model, seed=0, **where):
    """``model`` with Santurkar et al.'s noise before each ReLU (or ``after=...``)."""
    rng = np.random.default_rng([seed, 1])
    return model.inserted(lambda: NoiseInjection(rng), **(where or {"before": ReLU}))


def params(model):
    return [p for p, _ in model.params()]


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


@pytest.mark.parametrize(
    ("batch_norm", "placement"), [(False, "before"), (True, "before"), (True, "after")]
)
def test_backward_matches_finite_differences(batch_norm, placement):
    rng = np.random.default_rng(0)
    if placement == "after":
        model = build_mlp((5, 4, 3), seed=1).inserted(BatchNorm, after=ReLU)
    else:
        model = build_mlp((5, 4, 3), norm=BatchNorm if batch_norm else None, seed=1)
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


def test_batch_norm_before_or_after_the_activation():
    before = build_mlp((5, 4, 4, 3), norm=BatchNorm, seed=1)
    after = build_mlp((5, 4, 4, 3), seed=1).inserted(BatchNorm, after=ReLU)
    kinds = [[type(layer).__name__ for layer in m.layers] for m in (before, after)]
    assert kinds[0] == ["Dense", "BatchNorm", "ReLU"] * 2 + ["Dense"]
    assert kinds[1] == ["Dense", "ReLU", "BatchNorm"] * 2 + ["Dense"]
    # after the activation, the dense layer's bias is not cancelled, so it stays
    assert before.layers[0].b is None and after.layers[0].b is not None
    np.testing.assert_array_equal(before.layers[0].W, after.layers[0].W)
    x = np.random.default_rng(2).normal(size=(8, 5))
    h = after.layers[1](after.layers[0](x))
    assert (h >= 0).all()
    # what the next dense layer sees has mean beta = 0 after, and is >= 0 before
    assert np.allclose(after.layers[2](h, training=True).mean(axis=0), 0.0)


def test_layers_with_and_without_batch_norm():
    plain, normed = build_mlp(norm=None), build_mlp(norm=BatchNorm)
    assert not any(isinstance(layer, BatchNorm) for layer in plain.layers)
    assert sum(isinstance(layer, BatchNorm) for layer in normed.layers) == 2
    assert normed.layers[0].b is None and plain.layers[0].b is not None
    assert [type(la) for la in normed.layers[:3]] == [Dense, BatchNorm, ReLU]
    assert [type(la) for la in plain.layers] == [Dense, ReLU, Dense, ReLU, Dense]


def test_training_learns_the_digits():
    data = load_digits_split()
    for batch_norm in (False, True):
        model = build_mlp(norm=BatchNorm if batch_norm else None, seed=0)
        history = train_mlp(model, data, steps=200, optimizer=SGD(0.1), eval_every=100)
        np.testing.assert_array_equal(history["step"], [100, 200])
        assert history["train_loss"][-1] < 0.3
        assert history["test_accuracy"][-1] > 0.9


def test_same_seed_same_run():
    data = load_digits_split()
    a = train_mlp(
        build_mlp(norm=BatchNorm, seed=3), data, steps=30, optimizer=SGD(0.1), seed=3
    )
    b = train_mlp(
        build_mlp(norm=BatchNorm, seed=3), data, steps=30, optimizer=SGD(0.1), seed=3
    )
    np.testing.assert_array_equal(a["train_loss"], b["train_loss"])


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"sizes": (64,)}, ValueError, "sizes"),
        ({"sizes": (64, 0, 10)}, ValueError, "sizes"),
        ({"sizes": (64, 2.5, 10)}, TypeError, "sizes"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"init_scale": 0.0}, ValueError, "init_scale"),
        ({"init_scale": "1"}, TypeError, "init_scale"),
    ],
)
def test_bad_model_arguments(kwargs, error, name):
    with raises_naming(error, name):
        build_mlp(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": 1.5}, TypeError, "steps"),
        ({"optimizer": 0.1}, TypeError, "optimizer"),
        (
            {"optimizer": 0},
            TypeError,
            r"^optimizer must have a step\(params\) method, e.g. bnbook.optim.SGD\(0.1\), "
            "got int$",
        ),
        ({"optimizer": None}, TypeError, "optimizer"),
        ({"batch_size": 1}, ValueError, "batch_size"),
        ({"batch_size": 10**6}, ValueError, "batch_size"),
        ({"eval_every": 0}, ValueError, "eval_every"),
    ],
)
def test_bad_training_arguments(kwargs, error, name):
    kwargs = {"steps": 10, "optimizer": SGD(0.1)} | kwargs
    with raises_naming(error, name):
        train_mlp(build_mlp(), load_digits_split(), **kwargs)


def test_a_diverging_run_stops_and_reports_nan():
    data = load_digits_split()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning escapes to the page
        history = train_mlp(
            build_mlp(seed=0), data, steps=200, optimizer=SGD(5.0), eval_every=50
        )
    np.testing.assert_array_equal(history["step"], [50, 100, 150, 200])
    assert np.isnan(history["train_loss"][-1]) and np.isnan(
        history["test_accuracy"][-1]
    )


def test_checkpoints_include_the_last_step():
    history = train_mlp(
        build_mlp(seed=0),
        load_digits_split(),
        steps=70,
        optimizer=SGD(0.1),
        eval_every=50,
    )
    np.testing.assert_array_equal(history["step"], [50, 70])
    assert np.all(np.isfinite(history["train_loss"]))


def test_loss_and_grads_leave_the_model_unchanged_and_match_finite_differences():
    rng = np.random.default_rng(5)
    model = build_mlp((4, 3, 2), norm=BatchNorm, seed=2)
    x, labels = rng.normal(size=(8, 4)), np.array([0, 1] * 4)
    model(x, training=True)  # moving statistics away from their initial values
    bn = model.layers[1]
    before = bn.moving_mean.copy(), bn.moving_variance.copy()
    loss, grads = loss_and_grads(model, x, labels)
    np.testing.assert_array_equal(bn.moving_mean, before[0])
    np.testing.assert_array_equal(bn.moving_variance, before[1])
    assert [g.shape for g in grads] == [p.shape for p in params(model)]
    own = [p.copy() for p in params(model)]

    def loss_of_first(w):
        return np.array(loss_and_grads(model, x, labels, at=[w, *own[1:]])[0])

    numeric = numerical_gradient(loss_of_first, own[0], np.array(1.0))
    assert relative_error(grads[0], numeric) < 1e-7
    assert loss == pytest.approx(float(loss_of_first(own[0])))


def test_squared_error_is_the_mean_squared_distance_with_its_gradient():
    outputs = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 3.0]])
    targets = np.array([[1.0, 0.0], [1.0, -1.0], [0.0, 3.0]])
    loss, d = squared_error(outputs, targets)
    assert loss == pytest.approx((4 + 1 + 9) / 3)
    numeric = numerical_gradient(
        lambda o: np.array(squared_error(o, targets)[0]), outputs, np.array(1.0)
    )
    assert relative_error(d, numeric) < 1e-8
    with raises_naming(ValueError, "targets"):
        squared_error(outputs, targets[:2])


def test_loss_and_grads_takes_a_regression_loss():
    rng = np.random.default_rng(6)
    model = build_mlp((3, 4, 2), norm=BatchNorm, activation="linear", seed=1)
    x, y = rng.normal(size=(10, 3)), rng.normal(size=(10, 2))
    loss, grads = loss_and_grads(model, x, y, loss=squared_error)
    assert loss == pytest.approx(squared_error(model(x, training=True), y)[0])
    own = params(model)

    def loss_of_last(w):
        at = [*own[:-1], w]
        return np.array(loss_and_grads(model, x, y, at=at, loss=squared_error)[0])

    numeric = numerical_gradient(loss_of_last, own[-1].copy(), np.array(1.0))
    assert relative_error(grads[-1], numeric) < 1e-7
    with raises_naming(TypeError, "loss"):
        loss_and_grads(model, x, y, loss="mse")


def test_loss_and_grads_checks_the_other_parameters():
    model = build_mlp((4, 3, 2))
    x, labels = np.ones((3, 4)), np.array([0, 1, 0])
    with pytest.raises(ValueError, match="at must hold"):
        loss_and_grads(model, x, labels, at=[np.ones(2)])
    with pytest.raises(ValueError, match="shapes"):
        loss_and_grads(model, x, labels, at=[np.ones((2, 2))] + params(model)[1:])


def test_noisy_networks_still_learn_and_predict_deterministically():
    data = load_digits_split()
    for batch_norm in (False, True):
        model = _noisy(build_mlp(norm=BatchNorm if batch_norm else None, seed=0))
        assert sum(isinstance(la, NoiseInjection) for la in model.layers) == 2
        history = train_mlp(model, data, steps=200, optimizer=SGD(0.05), eval_every=100)
        assert history["test_accuracy"][-1] > 0.85
        first = model(data.x_test[:5])  # inference draws no noise ...
        np.testing.assert_array_equal(model(data.x_test[:5]), first)
        noisy = model(data.x_test[:5], training=True)  # ... training does
        assert not np.array_equal(noisy, model(data.x_test[:5], training=True))


def test_a_linear_network_has_no_relu_and_is_linear():
    model = build_mlp((3, 4, 4, 2), activation="linear", seed=0)
    assert not any(isinstance(la, ReLU) for la in model.layers)
    x = np.random.default_rng(0).normal(size=(5, 3))
    bias = model(np.zeros((1, 3)))
    np.testing.assert_allclose(model(2 * x) - bias, 2 * (model(x) - bias))
    with pytest.raises(ValueError, match="activation"):
        build_mlp(activation="tanh")


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_layer_inputs_one_per_layer_and_no_trace(activation):
    rng = np.random.default_rng(2)
    model = build_mlp((5, 7, 6, 3), norm=BatchNorm, activation=activation)
    model = _noisy(model, after=BatchNorm)
    x = rng.normal(3.0, 2.0, size=(40, 5))
    model(x, training=True)
    bn = model.layers[1]
    moving = bn.moving_mean.copy()
    first = layer_inputs(model, x, training=True)
    again = layer_inputs(model, x, training=True)
    assert len(first) == len(model.layers)
    np.testing.assert_array_equal(first[0], x)
    for k, layer in enumerate(model.layers[:-1]):
        np.testing.assert_array_equal(first[k], again[k])  # the same noise each time
        assert first[k + 1].shape[1] == layer(first[k]).shape[1]
    np.testing.assert_array_equal(bn.moving_mean, moving)
    # without noise, training-mode outputs of batch norm are normalized per unit
    clean = build_mlp((5, 7, 3), norm=BatchNorm, activation=activation)
    z = layer_inputs(clean, x, training=True)[2]  # Dense, BatchNorm, then this
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-3)


def test_loss_and_grads_at_other_parameters_leaves_the_model_alone():
    rng = np.random.default_rng(5)
    model = build_mlp((4, 3, 2), norm=BatchNorm, seed=2)
    x, labels = rng.normal(size=(8, 4)), np.array([0, 1] * 4)
    own = [p.copy() for p in params(model)]
    other = [p + 0.1 for p in own]
    loss, grads = loss_and_grads(model, x, labels, at=other)
    for p, q in zip(params(model), own, strict=True):
        np.testing.assert_array_equal(p, q)
    for p, v in zip(params(model), other, strict=True):
        p[...] = v
    loss_direct, grads_direct = loss_and_grads(model, x, labels)
    assert loss == loss_direct
    for g, h in zip(grads, grads_direct, strict=True):
        np.testing.assert_array_equal(g, h)


def test_state_kept_restores_the_moving_statistics_and_the_noise():
    model = _noisy(build_mlp((5, 4, 3), norm=BatchNorm, seed=1))
    x = np.random.default_rng(0).normal(size=(6, 5))
    with state_kept(model):
        first = model(x, training=True)
        moved = model.layers[1].moving_mean
    assert not np.array_equal(moved, model.layers[1].moving_mean)
    np.testing.assert_array_equal(model(x, training=True), first)


def test_callback_sees_every_checkpoint_and_measuring_changes_nothing():
    data = load_digits_split()
    seen = []

    def measure(step, model):
        seen.append(step)
        loss_and_grads(model, data.x_train[:30], data.y_train[:30])
        layer_inputs(model, data.x_train[:30], training=True)

    kwargs = {"steps": 70, "eval_every": 25}
    plain = train_mlp(
        _noisy(build_mlp(norm=BatchNorm)), data, optimizer=SGD(0.1), **kwargs
    )
    measured = train_mlp(
        _noisy(build_mlp(norm=BatchNorm)),
        data,
        optimizer=SGD(0.1),
        callback=measure,
        **kwargs,
    )
    assert seen == [0, 25, 50, 70]
    np.testing.assert_array_equal(plain["train_loss"], measured["train_loss"])
    np.testing.assert_array_equal(plain["test_accuracy"], measured["test_accuracy"])
    with pytest.raises(TypeError, match="^callback must be callable"):
        train_mlp(build_mlp(), data, steps=5, optimizer=SGD(0.1), callback="print")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"norm": LayerNorm},
        {"norm": lambda: GroupNorm(groups=2)},
        {"norm": BatchNorm, "residual": True},
        {"residual": True, "activation": "linear"},
    ],
    ids=["layer", "group", "bn-residual", "linear-residual"],
)
def test_other_normalizations_and_residual_blocks_have_correct_gradients(kwargs):
    rng = np.random.default_rng(3)
    model = build_mlp((5, 4, 4, 4, 3), seed=1, **kwargs)
    x, labels = rng.normal(size=(6, 5)), np.array([0, 1, 2, 0, 1, 2])
    if "residual" in kwargs:
        assert sum(isinstance(la, Residual) for la in model.layers) == 2
    own = [p.copy() for p in params(model)]
    _, grads = loss_and_grads(model, x, labels)
    for k in (0, len(own) - 3):

        def loss_of(p, k=k):
            values = [*own]
            values[k] = p
            return np.array(loss_and_grads(model, x, labels, at=values)[0])

        numeric = numerical_gradient(loss_of, own[k], np.array(1.0))
        assert relative_error(grads[k], numeric) < 1e-6, k


def test_no_bias_before_a_layer_that_cancels_it():
    model = build_mlp((5, 4, 4, 4, 3), norm=BatchNorm, residual=True)
    assert model.layers[0].b is None  # batch norm follows it
    assert all(block.layers[0].b is None for block in model.layers[3:5])
    assert build_mlp((5, 4, 3), norm=BatchRenorm).layers[0].b is None
    assert build_mlp((5, 4, 3), norm=LayerNorm).layers[0].b is not None
    assert model.layers[-1].b is not None  # the output layer keeps its bias


def test_population_statistics_make_inference_equal_training_on_that_batch():
    rng = np.random.default_rng(4)
    for residual in (False, True):
        model = build_mlp((5, 6, 6, 3), norm=BatchNorm, residual=residual, seed=2)
        x = rng.normal(3.0, 2.0, size=(50, 5))
        assert not np.allclose(model(x), model(x, training=True))
        model.calibrate(x)
        np.testing.assert_allclose(model(x), model(x, training=True), rtol=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"norm": "LayerNorm"}, TypeError, "norm"),
        ({"residual": 1}, TypeError, "residual"),
    ],
)
def test_bad_normalization_arguments(kwargs, error, name):
    with raises_naming(error, name):
        build_mlp(**kwargs)


@pytest.mark.parametrize("residual", [False, True])
def test_folded_network_computes_the_same_with_fewer_layers(residual):
    rng = np.random.default_rng(6)
    model = build_mlp((5, 6, 6, 3), norm=BatchNorm, residual=residual, seed=3)
    for _ in range(5):  # moving statistics away from 0 and 1
        model(rng.normal(2.0, 3.0, size=(20, 5)), training=True)
    folded = model.folded()
    x = rng.normal(2.0, 3.0, size=(7, 5))
    np.testing.assert_allclose(folded(x), model(x), rtol=1e-10, atol=1e-12)
    assert accuracy(folded, x, np.zeros(7, int)) == accuracy(model, x, np.zeros(7, int))
    kinds = [type(la) for la in folded.layers]
    assert BatchNorm not in kinds and len(folded.layers) < len(model.layers)
    assert model.layers[0].b is None  # the original is untouched


class Spy(Layer):
    """The identity, recording the size of every training batch it sees."""

    def __init__(self):
        self.batches = []

    def __call__(self, x, training=False):
        if training:
            self.batches.append(len(x))
        return x

    def backward(self, dy):
        return dy


def test_train_mlp_takes_one_batch_of_60_per_step_and_evaluates_every_50():
    spy = Spy()
    model = Sequential([spy, *build_mlp((64, 10)).layers])  # sizes of 2: one layer
    history = train_mlp(model, load_digits_split(), steps=120, optimizer=SGD(0.1))
    assert spy.batches == [60] * 120
    np.testing.assert_array_equal(history["step"], [50, 100, 120])


def test_the_smallest_arguments_train():
    data = load_digits_split()
    spy = Spy()
    model = Sequential([spy, *build_mlp((64, 1, 10)).layers])  # a layer of 1 unit
    n = len(data.x_train)
    history = train_mlp(
        model, data, steps=1, optimizer=SGD(0.1), batch_size=n, eval_every=1
    )
    np.testing.assert_array_equal(history["step"], [1])
    history = train_mlp(
        model, data, steps=3, optimizer=SGD(0.1), batch_size=2, eval_every=1
    )
    np.testing.assert_array_equal(history["step"], [1, 2, 3])
    assert spy.batches == [n, 2, 2, 2]
    assert np.all(np.isfinite(history["train_loss"]))


def test_checkpoints_stop_at_the_last_step():
    history = train_mlp(
        build_mlp(), load_digits_split(), steps=49, optimizer=SGD(0.1), eval_every=10
    )
    np.testing.assert_array_equal(history["step"], [10, 20, 30, 40, 49])
    assert np.all(np.isfinite(history["test_accuracy"]))


def test_the_default_seed_is_0_and_init_scale_scales_every_layer():
    def weights(model):
        return [p for p, _ in model.params() if p.ndim == 2]

    for a, b in zip(weights(build_mlp()), weights(build_mlp(seed=0)), strict=True):
        np.testing.assert_array_equal(a, b)
    base, scaled = build_mlp(seed=1), build_mlp(seed=1, init_scale=3.0)
    for a, b in zip(weights(base), weights(scaled), strict=True):
        np.testing.assert_allclose(b, 3.0 * a, rtol=1e-12)
    assert all(d.b is not None for d in (base.layers[-1], scaled.layers[-1]))
    np.testing.assert_allclose(
        np.std(weights(base)[0]), np.sqrt(2 / 64), rtol=0.05
    )  # He


def test_layer_inputs_start_with_the_cast_input_in_inference_mode():
    model = build_mlp((4, 3, 2), norm=BatchNorm)
    x = np.random.default_rng(0).normal(2.0, 1.0, size=(5, 4)).astype(np.float32)
    inputs = layer_inputs(model, x)
    assert inputs[0].dtype == np.float64
    np.testing.assert_array_equal(inputs[2], model.layers[1](model.layers[0](x)))


def test_train_mlp_with_momentum_decay_and_a_part_of_the_parameters():
    data = load_digits_split()
    plain = train_mlp(
        build_mlp(norm=BatchNorm, seed=3), data, steps=30, optimizer=SGD(0.1), seed=3
    )
    same = train_mlp(
        build_mlp(norm=BatchNorm, seed=3),
        data,
        steps=30,
        optimizer=SGD(0.1, momentum=0.0, weight_decay=0.0),
        seed=3,
        trainable=lambda m: m.params(),
    )
    np.testing.assert_array_equal(plain["train_loss"], same["train_loss"])
    model = build_mlp(norm=BatchNorm, seed=3)
    frozen = [p.copy() for p, _ in model.layers[0].params()]
    bns = [layer for layer in model.layers if isinstance(layer, BatchNorm)]
    train_mlp(
        model,
        data,
        steps=30,
        optimizer=SGD(0.1, momentum=0.9, weight_decay=1e-3),
        seed=3,
        trainable=lambda m: [pair for bn in bns for pair in bn.params()],
    )
    np.testing.assert_array_equal(model.layers[0].W, frozen[0])  # not trained
    assert not np.allclose(bns[0].gamma, 1.0)  # trained
    with raises_naming(TypeError, "trainable"):
        train_mlp(
            build_mlp(), data, steps=1, optimizer=SGD(0.1), trainable="batch norm"
        )


def test_sgd_decays_only_the_parameters_it_is_told_to():
    """After one step from the same start, the gradients are the same with and without
    decay: the decayed parameters differ by exactly lr * decay * w, the others not."""
    data, start = load_digits_split(), build_mlp(norm=BatchNorm, seed=3)
    w0 = start.layers[0].W.copy()
    runs = {}
    for decay in (0.0, 0.5):
        model = build_mlp(norm=BatchNorm, seed=3)
        train_mlp(
            model,
            data,
            steps=1,
            optimizer=SGD(
                0.1,
                weight_decay=decay,
                decayed=[p for p, _ in model.layers[0].params()],
            ),
            seed=3,
        )
        runs[decay] = model
    np.testing.assert_allclose(runs[0.0].layers[0].W - runs[0.5].layers[0].W, 0.05 * w0)
    for kept, other in zip(runs[0.0].params()[1:], runs[0.5].params()[1:], strict=True):
        np.testing.assert_array_equal(kept[0], other[0])


def test_a_learning_rate_schedule_gives_each_step_its_rate():
    data, rates = load_digits_split(), []

    def schedule(step):
        rates.append(step)
        return 0.1 * 0.5**step

    model = build_mlp(norm=BatchNorm, seed=2)
    train_mlp(model, data, steps=3, optimizer=SGD(schedule), seed=2)
    assert rates == [1, 1, 2, 3]  # checked once before training, then every step
    by_hand = build_mlp(norm=BatchNorm, seed=2)
    batches = minibatches(len(data.x_train), 60, 2)
    for step, batch in zip(range(1, 4), batches, strict=False):
        _, dlogits = softmax_cross_entropy(
            by_hand(data.x_train[batch], training=True), data.y_train[batch]
        )
        by_hand.backward(dlogits)
        sgd_step(by_hand, 0.1 * 0.5**step)
    for (p, _), (q, _) in zip(model.params(), by_hand.params(), strict=True):
        np.testing.assert_array_equal(p, q)
    constant = build_mlp(norm=BatchNorm, seed=2)
    train_mlp(constant, data, steps=3, optimizer=SGD(0.1), seed=2)
    same = build_mlp(norm=BatchNorm, seed=2)
    train_mlp(same, data, steps=3, optimizer=SGD(lambda step: 0.1), seed=2)
    np.testing.assert_array_equal(constant.layers[0].W, same.layers[0].W)


@pytest.mark.parametrize(
    ("schedule", "error", "name"),
    [
        (lambda step: 0.0, ValueError, r"lr\(1\)"),
        (lambda step: "0.1", TypeError, r"lr\(1\)"),
        (lambda step: 0.1 if step < 2 else -1.0, ValueError, r"lr\(2\)"),
        (lambda step: 0.1 if step < 3 else float("nan"), ValueError, r"lr\(3\)"),
    ],
)
def test_a_bad_scheduled_rate_names_its_step(schedule, error, name):
    with raises_naming(error, name):
        train_mlp(build_mlp(), load_digits_split(), steps=5, optimizer=SGD(schedule))


def test_train_mlp_calls_back_every_callback_every_steps():
    data, seen = load_digits_split(), []
    history = train_mlp(
        build_mlp(seed=1),
        data,
        steps=7,
        optimizer=SGD(0.1),
        eval_every=5,
        callback_every=2,
        callback=lambda step, model: seen.append(step),
    )
    assert seen == [0, 2, 4, 6, 7] and history["step"].tolist() == [5, 7]
    seen.clear()
    train_mlp(
        build_mlp(seed=1),
        data,
        steps=7,
        optimizer=SGD(0.1),
        eval_every=5,
        callback=lambda step, model: seen.append(step),
    )
    assert seen == [0, 5, 7]
    with raises_naming(ValueError, "callback_every"):
        train_mlp(build_mlp(), data, steps=2, optimizer=SGD(0.1), callback_every=0)


def test_steps_to_gives_the_first_step_reached_or_inf():
    steps = np.array([50, 100, 150])
    assert steps_to(steps, np.array([False, True, True])) == 100
    assert steps_to(steps, np.array([True, False, True])) == 50
    assert steps_to(steps, np.zeros(3, bool)) == np.inf
