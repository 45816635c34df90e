"""The book's NumPy batch norm against the installed keras.layers.BatchNormalization.

If a Keras upgrade changes a convention (defaults, the biased moving variance, which
statistics a mode uses, the gradient), these tests fail and say which. TensorFlow is
imported by the session fixture ``tf_keras`` (tests/conftest.py), not at import.
"""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from naming import raises_naming

from bnbook.batchnorm import BatchNorm, batch_norm_backward, batch_norm_forward
from bnbook.conventions import CONVENTIONS
from bnbook.data import load_digits_split, minibatches
from bnbook.kerasbn import (
    calibrate_batch_norm,
    fold_sequential,
    freeze_batch_norm,
    keras_batch_norm,
    keras_forward_backward,
    keras_twin,
    moving_statistics_of,
    parity_errors,
    train_keras,
)
from bnbook.optim import SGD

# Every test here runs with TensorFlow imported and seeded, even those that reach it
# only through bnbook.kerasbn; `pytest -m "not keras"` leaves them out.
pytestmark = [pytest.mark.keras, pytest.mark.usefixtures("tf_keras")]


@pytest.fixture(scope="module")
def keras(tf_keras):
    return tf_keras[1]


# Tolerances on max |ours - keras| / (1 + |keras|). float32 gets 1e-4 here, not the
# 1e-5 of chapter 4's batches of 32, because random batches as small as 2 make the
# normalization ill-conditioned (a tiny batch variance magnifies rounding); a changed
# convention moves results by far more than either tolerance.
TOL = {"float32": 1e-4, "float64": 1e-9}


def test_keras_defaults_are_the_book_defaults(keras):
    layer = keras.layers.BatchNormalization()
    ours = BatchNorm()
    assert (layer.axis, layer.momentum, layer.epsilon) == (
        ours.axis,
        ours.momentum,
        ours.epsilon,
    ), "Keras changed a default of BatchNormalization"
    assert (layer.center, layer.scale) == (ours.center, ours.scale)
    # chapter 4's table of conventions states the same defaults
    keras3 = CONVENTIONS["keras3"]
    assert (keras3.momentum, keras3.epsilon) == (layer.momentum, layer.epsilon)


@st.composite
def cases(draw):
    layout = draw(st.sampled_from(["dense", "nhwc", "nchw", "3d"]))
    shape, axis = {
        "dense": ((draw(st.integers(2, 16)), draw(st.integers(1, 6))), -1),
        "nhwc": ((draw(st.integers(1, 3)), 3, 4, draw(st.integers(1, 4))), -1),
        "nchw": ((draw(st.integers(1, 3)), draw(st.integers(1, 4)), 3, 4), 1),
        "3d": ((3, draw(st.integers(1, 4)), 5), 1),
    }[layout]
    return {
        "shape": shape,
        "axis": axis,
        "dtype": draw(st.sampled_from(["float32", "float64"])),
        "momentum": draw(st.sampled_from([0.0, 0.5, 0.9, 0.99])),
        "epsilon": draw(st.sampled_from([1e-5, 1e-3, 0.1])),
        "center": draw(st.booleans()),
        "scale": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


@settings(max_examples=40)
@given(cases())
def test_training_and_inference_match_keras(case):
    errors = parity_errors(**case)
    expected = {"y (training)", "dx", "moving_mean", "moving_variance", "y (inference)"}
    expected |= {"dgamma"} if case["scale"] else set()
    expected |= {"dbeta"} if case["center"] else set()
    assert set(errors) == expected
    for name, error in errors.items():
        hint = (
            " (Keras 3 keeps the biased batch variance)" if "variance" in name else ""
        )
        assert error < TOL[case["dtype"]], (
            f"{name} differs from Keras by {error:.1e}{hint}: {case}"
        )


def test_a_batch_of_one_gives_beta_in_keras():
    layer = keras_batch_norm((None, 3), beta=[0.5, -1.0, 2.0])
    out = layer(np.array([[3.0, 4.0, 5.0]], np.float32), training=True).numpy()
    np.testing.assert_allclose(out, [[0.5, -1.0, 2.0]])


@pytest.mark.parametrize("trainable", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_trainable_and_training(trainable, training):
    x = np.random.default_rng(0).normal(5.0, 2.0, size=(16, 2)).astype("float32")
    layer = keras_batch_norm((None, 2))
    layer.trainable = trainable
    y = layer(x, training=training).numpy()
    moved = not np.allclose(layer.moving_mean.numpy(), 0.0)
    batch_stats = np.allclose(y.mean(axis=0), 0.0, atol=1e-5)
    assert batch_stats == (training and trainable)
    assert moved == (training and trainable)


def test_calibration_sets_the_moving_statistics_to_the_data(keras):
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(200, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    calibrate_batch_norm(model, x)
    bn = model.layers[0]
    np.testing.assert_allclose(bn.moving_mean.numpy(), x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), x.var(axis=0), rtol=1e-4)
    assert bn.momentum == 0.99
    # inside a nested model too
    inner = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    outer = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(2)])
    calibrate_batch_norm(outer, x)
    np.testing.assert_allclose(
        inner.layers[0].moving_mean.numpy(), x.mean(axis=0), rtol=1e-5
    )
    # a frozen layer, which runs in inference mode, is calibrated and stays frozen
    frozen = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    frozen.trainable = False
    calibrate_batch_norm(frozen, x)
    layer = frozen.layers[0]
    np.testing.assert_allclose(layer.moving_mean.numpy(), x.mean(axis=0), rtol=1e-5)
    assert not layer.trainable and layer.momentum == 0.99
    with pytest.raises(ValueError, match="no BatchNormalization"):
        calibrate_batch_norm(
            keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), x
        )


def test_moving_statistics_are_a_copy_of_each_layers(keras):
    inner = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization()])
    model = keras.Sequential(
        [keras.Input((3,)), inner, keras.layers.Dense(2)]
        + [keras.layers.BatchNormalization(momentum=0.5)]
    )
    x = np.random.default_rng(3).normal(2.0, 3.0, size=(50, 3)).astype("float32")
    before = moving_statistics_of(model)
    assert [m.shape for pair in before for m in pair] == [(3,), (3,), (2,), (2,)]
    model(x, training=True)
    after = moving_statistics_of(model)
    np.testing.assert_array_equal(before[0][0], 0.0)  # the copy did not move
    np.testing.assert_allclose(after[0][0], 0.01 * x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(after[0][1], 0.99 + 0.01 * x.var(axis=0), rtol=1e-5)
    assert np.array_equal(after[1][1], model.layers[-1].moving_variance.numpy())
    with pytest.raises(ValueError, match="no BatchNormalization"):
        moving_statistics_of(
            keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        )


def test_frozen_batch_norm_runs_in_inference_mode_inside_fit(keras):
    inner = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(3), keras.layers.BatchNormalization()]
    )
    model = keras.Sequential([keras.Input((3,)), inner, keras.layers.Dense(2)])
    assert freeze_batch_norm(model) == 1
    bn = inner.layers[1]
    assert not bn.trainable and inner.layers[0].trainable and model.layers[1].trainable
    x = np.random.default_rng(4).normal(5.0, 2.0, size=(40, 3)).astype("float32")
    y = np.arange(40) % 2
    dense = inner.layers[0].kernel.numpy()
    # from logits: the outputs are not probabilities, and a loss that clips them to
    # [0, 1] has a zero gradient for some initial weights (the global seed's state)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="sgd", loss=loss)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), 0.0)
    np.testing.assert_array_equal(bn.gamma.numpy(), 1.0)
    assert not np.array_equal(inner.layers[0].kernel.numpy(), dense)  # still trains
    with pytest.raises(ValueError, match="no BatchNormalization"):
        freeze_batch_norm(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))


def test_folded_model_equals_the_original_in_inference(keras):
    rng = np.random.default_rng(2)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(3, 3, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(4),
            keras.layers.BatchNormalization(center=False),
        ]
    )
    for _ in range(5):
        model(rng.normal(2.0, 1.5, size=(8, 6, 6, 2)).astype("float32"), training=True)
    folded = fold_sequential(model)
    assert not any(
        isinstance(la, keras.layers.BatchNormalization) for la in folded.layers
    )
    x = rng.normal(2.0, 1.5, size=(10, 6, 6, 2)).astype("float32")
    expected = model(x, training=False).numpy()
    got = folded(x).numpy()
    assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-5


def test_fold_refuses_a_batch_norm_that_does_not_follow_a_linear_layer(keras):
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(2, activation="relu"),
            keras.layers.BatchNormalization(),
        ]
    )
    with pytest.raises(ValueError, match="Dense or Conv2D"):
        fold_sequential(model)
    with pytest.raises(TypeError, match="Sequential"):
        fold_sequential(keras.Model(model.inputs, model.outputs))


def test_keras_batch_norm_refuses_weights_it_does_not_have():
    with pytest.raises(ValueError, match="beta"):
        keras_batch_norm((None, 2), center=False, beta=[0.0, 0.0])


def test_numpy_gradients_match_keras_in_float64_with_a_large_offset():
    rng = np.random.default_rng(3)
    x = 1e3 + rng.normal(size=(32, 3))
    dy = rng.normal(size=x.shape)
    layer = keras_batch_norm((None, 3), dtype="float64")
    _, dx_k, dgamma_k, dbeta_k = keras_forward_backward(layer, x, dy)
    _, cache = batch_norm_forward(x, np.ones(3), np.zeros(3))
    dx, dgamma, dbeta = batch_norm_backward(dy, cache)
    for a, b in ((dx, dx_k), (dgamma, dgamma_k), (dbeta, dbeta_k)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_parity_errors_catch_a_changed_convention():
    """A layer keeping the unbiased moving variance (PyTorch's way) is caught."""

    class UnbiasedMovingVariance(BatchNorm):
        def __call__(self, x, training=False):
            y = super().__call__(x, training=training)
            if training:
                m = x.shape[0]
                batch_var = self._cache.var.ravel()
                a = self.momentum
                self.moving_variance = self.moving_variance + (1 - a) * batch_var * (
                    m / (m - 1) - 1
                )
            return y

    errors = parity_errors(
        (8, 3), momentum=0.9, dtype="float64", layer=UnbiasedMovingVariance
    )
    assert errors["moving_variance"] > 1e-2
    assert errors["y (training)"] < 1e-9


def _digits_model(keras, seed):
    from bnbook.tfsetup import set_seed

    set_seed(seed)
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(16, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
            keras.layers.Dense(10),
        ]
    )


def test_train_keras_trains_on_the_books_batches(keras):
    data = load_digits_split()
    seen, moving = [], []

    def callback(step, model):
        seen.append(step)
        moving.append(model.layers[1].moving_mean.numpy().copy())

    model = _digits_model(keras, 0)
    losses = train_keras(model, data, steps=40, lr=0.1, seed=3, callback=callback)
    assert seen == list(range(41)) and losses.shape == (40,)
    assert losses[-10:].mean() < 0.75 * losses[:10].mean()  # it learns
    assert not np.array_equal(moving[0], moving[-1])  # called with training=True
    again = train_keras(_digits_model(keras, 0), data, steps=40, lr=0.1, seed=3)
    np.testing.assert_array_equal(losses, again)
    # the first loss is the loss of the first batch of minibatches(..., seed=3)
    first = next(minibatches(len(data.x_train), 60, 3))
    fresh = _digits_model(keras, 0)
    logits = fresh(data.x_train[first], training=True)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        data.y_train[first], logits
    )
    assert losses[0] == pytest.approx(float(loss), rel=1e-5)


def test_train_keras_stops_when_the_callback_says_so(keras):
    data = load_digits_split()
    seen = []

    def until_step_7(step, model):
        seen.append(step)
        return step == 7

    losses = train_keras(
        _digits_model(keras, 0), data, steps=40, lr=0.1, seed=3, callback=until_step_7
    )
    assert seen == list(range(8)) and losses.shape == (7,)
    full = train_keras(_digits_model(keras, 0), data, steps=40, lr=0.1, seed=3)
    np.testing.assert_array_equal(losses, full[:7])
    assert train_keras(
        _digits_model(keras, 0),
        data,
        steps=5,
        lr=0.1,
        seed=3,
        callback=lambda s, m: True,
    ).shape == (0,)


def test_train_keras_runs_every_steps_in_one_loop_with_the_same_numbers(keras):
    data = load_digits_split()
    seen, moving = [], []

    def callback(step, model):
        seen.append(step)
        moving.append(model.layers[1].moving_mean.numpy().copy())

    one_by_one = train_keras(_digits_model(keras, 0), data, steps=23, lr=0.1, seed=3)
    losses = train_keras(
        _digits_model(keras, 0),
        data,
        steps=23,
        lr=0.1,
        seed=3,
        callback=callback,
        every=10,
    )
    assert seen == [0, 10, 20, 23]  # and after the last, shorter, stretch
    np.testing.assert_array_equal(losses, one_by_one)
    assert not np.array_equal(moving[1], moving[2])  # updated inside the loop
    stopped = train_keras(
        _digits_model(keras, 0),
        data,
        steps=23,
        lr=0.1,
        seed=3,
        callback=lambda step, model: step == 10,
        every=5,
    )
    np.testing.assert_array_equal(stopped, one_by_one[:10])


def test_train_keras_trains_a_model_again_with_its_compiled_loop(keras):
    data = load_digits_split()
    fresh = train_keras(_digits_model(keras, 1), data, steps=12, lr=0.3, seed=5)
    model = _digits_model(keras, 0)
    train_keras(model, data, steps=12, lr=0.1, seed=3, every=4)
    model.set_weights(_digits_model(keras, 1).get_weights())
    again = train_keras(model, data, steps=12, lr=0.3, seed=5, every=4)
    np.testing.assert_array_equal(again, fresh)  # the new rate, the new weights


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": 2.0}, TypeError, "steps"),
        ({"lr": -0.1}, ValueError, "lr"),
        ({"callback": "print"}, TypeError, "callback"),
        ({"every": 0}, ValueError, "every"),
        ({"every": 1.5}, TypeError, "every"),
    ],
)
def test_train_keras_refuses_bad_arguments(keras, kwargs, error, name):
    args = {"steps": 2, "lr": 0.1, "seed": 0} | kwargs
    with raises_naming(error, name):
        train_keras(_digits_model(keras, 0), load_digits_split(), **args)


def test_keras_twin_computes_what_the_numpy_model_computes(keras):
    from bnbook.layers import Sequential
    from bnbook.mlp import build_mlp

    model = build_mlp((6, 8, 8, 3), norm=BatchNorm, seed=0)
    x = np.random.default_rng(0).normal(2, 3, (20, 6))
    model(x, training=True)  # moving statistics away from their initial values
    model.layers[1].gamma[:] = np.linspace(0.5, 2, 8)
    twin = keras_twin(model, 6)
    for training in (False, True):
        ours = model(x, training=training)
        theirs = twin(x.astype(np.float32), training=training).numpy()
        assert np.allclose(ours, theirs, atol=1e-4), training
    with pytest.raises(TypeError, match="model must be a Sequential"):
        keras_twin(model.layers[0], 6)
    with pytest.raises(ValueError, match="keras_twin knows Dense"):
        keras_twin(Sequential([object()]), 6)


def test_run_per_replica_matches_our_forward_pass_per_slice_and_synchronized():
    # Two replicas need two logical CPUs, set before TensorFlow starts: a fresh
    # interpreter. Unsynchronized, each replica normalizes its own half; synchronized,
    # both use the statistics of the whole batch.
    code = """
import numpy as np
from bnbook.tfsetup import load_tensorflow
tf, keras = load_tensorflow(seed=0, devices=2)
from bnbook.batchnorm import batch_norm_forward
from bnbook.kerasbn import run_per_replica
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
x = np.random.default_rng(0).normal(3, 2, (8, 3)).astype(np.float32)
for synchronized in (False, True):
    with strategy.scope():
        layer = keras.layers.BatchNormalization(synchronized=synchronized)
        layer.build((None, 3))
    halves = run_per_replica(strategy, lambda v: layer(v, training=True), x)
    if synchronized:
        expected = np.split(batch_norm_forward(x.astype(float), np.ones(3), np.zeros(3))[0], 2)
    else:
        expected = [batch_norm_forward(h.astype(float), np.ones(3), np.zeros(3))[0]
                    for h in np.split(x, 2)]
    for ours, theirs in zip(expected, halves):
        assert np.allclose(ours, theirs, atol=1e-5), synchronized
try:
    run_per_replica(strategy, lambda v: v, x[:7])
except ValueError as error:
    assert "divide evenly" in str(error)
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout == "ok\n", result.stderr[-2000:]


def _keras_sgd_steps(keras, w, grads, regularizer=None, **kwargs):
    """``w`` after Keras's SGD applies ``grads`` one by one (plus the gradient of
    ``regularizer(w)`` at each step, as a ``kernel_regularizer`` adds it to the loss)."""
    import tensorflow as tf

    variable = keras.Variable(w, dtype="float64")
    optimizer = keras.optimizers.SGD(**kwargs)
    for g in grads:
        with tf.GradientTape() as tape:
            penalty = (
                regularizer(variable) if regularizer else tf.constant(0.0, "float64")
            )
        extra = tape.gradient(penalty, variable) if regularizer else 0.0
        optimizer.apply_gradients([(tf.constant(g) + extra, variable)])
    return np.asarray(variable)


@pytest.mark.parametrize("decay", [0.0625, 0.5])
def test_sgd_rules_match_keras(keras, decay):
    """Keras 3's weight_decay is bnbook's decoupled rule; an l2(l) regularizer is the
    coupled (PyTorch) rule with weight_decay = 2 l. (Keras keeps the learning rate in
    float32: the rates here are exact in float32, so float64 results agree to rounding.)"""
    rng = np.random.default_rng(3)
    w, grads = rng.normal(size=(4, 3)), rng.normal(size=(6, 4, 3))
    rules = {
        "decoupled": _keras_sgd_steps(
            keras, w, grads, learning_rate=0.125, momentum=0.875, weight_decay=decay
        ),
        "coupled": _keras_sgd_steps(
            keras,
            w,
            grads,
            keras.regularizers.L2(decay / 2),
            learning_rate=0.125,
            momentum=0.875,
        ),
    }
    for rule, expected in rules.items():
        ours, optimizer = (
            w.copy(),
            SGD(0.125, 0.875, decay, decoupled=rule == "decoupled"),
        )
        for g in grads:
            optimizer.step([(ours, g)])
        np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)
    # the two rules differ: a test that could not tell them apart would prove nothing
    assert np.max(np.abs(rules["decoupled"] - rules["coupled"])) > 1e-3
