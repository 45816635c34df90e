"""The book's NumPy batch norm against the installed keras.layers.BatchNormalization.

If a Keras upgrade changes a convention (defaults, the biased moving variance, which
statistics a mode uses, the gradient), these tests fail and say which.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnbook.batchnorm import BatchNorm, batch_norm_backward, batch_norm_forward
from bnbook.kerasbn import (
    calibrate_batch_norm,
    fold_sequential,
    keras_batch_norm,
    keras_forward_backward,
)
from bnbook.tfsetup import load_tensorflow

tf, keras = load_tensorflow(seed=0)
# Relative to the size of the compared arrays. float32 gets 1e-4 here, not the 1e-5 of
# the chapter's well-conditioned examples, because random batches as small as 2 make
# the normalization ill-conditioned (a tiny batch variance magnifies rounding); a
# changed convention moves results by far more than either tolerance.
TOL = {"float32": 1e-4, "float64": 1e-9}


def assert_close(actual, desired, dtype, what):
    desired = np.asarray(desired)
    atol = TOL[dtype] * max(1.0, float(np.abs(desired).max(initial=0.0)))
    np.testing.assert_allclose(
        actual, desired, rtol=TOL[dtype], atol=atol, err_msg=what
    )


def test_keras_defaults_are_the_book_defaults():
    layer = keras.layers.BatchNormalization()
    ours = BatchNorm()
    assert (layer.axis, layer.momentum, layer.epsilon) == (
        ours.axis,
        ours.momentum,
        ours.epsilon,
    ), "Keras changed a default of BatchNormalization"
    assert layer.center and layer.scale


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
def test_training_step_matches_keras(case):
    rng = np.random.default_rng(case["seed"])
    shape, axis, dtype = case["shape"], case["axis"], case["dtype"]
    c = shape[axis]
    gamma = rng.uniform(0.5, 2.0, c) if case["scale"] else None
    beta = rng.normal(size=c) if case["center"] else None
    keras_layer = keras_batch_norm(
        (None, *shape[1:]),
        axis=axis,
        momentum=case["momentum"],
        epsilon=case["epsilon"],
        center=case["center"],
        scale=case["scale"],
        dtype=dtype,
        gamma=gamma,
        beta=beta,
    )
    ours = BatchNorm(
        axis=axis,
        momentum=case["momentum"],
        epsilon=case["epsilon"],
        center=case["center"],
        scale=case["scale"],
    )
    for step in range(3):
        x = rng.normal(1.0, 2.0, size=shape).astype(dtype)
        dy = rng.normal(size=shape).astype(dtype)
        if ours.moving_mean is None:
            ours.build(c, np.dtype(dtype))
            ours.gamma, ours.beta = gamma, beta
        y_k, dx_k, dgamma_k, dbeta_k = keras_forward_backward(keras_layer, x, dy)
        y = ours(x, training=True)
        dx = ours.backward(dy)
        msg = f" differs from Keras at step {step} of {case}"
        assert_close(y, y_k, dtype, "y" + msg)
        assert_close(dx, dx_k, dtype, "dx" + msg)
        for name, a, b in (
            ("dgamma", ours.dgamma, dgamma_k),
            ("dbeta", ours.dbeta, dbeta_k),
        ):
            assert (a is None) == (b is None), name
            if a is not None:
                assert_close(a, b, dtype, name + msg)
        assert_close(
            ours.moving_mean,
            keras_layer.moving_mean.numpy(),
            dtype,
            "moving_mean" + msg,
        )
        assert_close(
            ours.moving_variance,
            keras_layer.moving_variance.numpy(),
            dtype,
            "moving_variance (Keras 3 keeps the biased batch variance)" + msg,
        )
    x = rng.normal(1.0, 2.0, size=shape).astype(dtype)
    y_k = keras_layer(x, training=False).numpy()
    assert_close(ours(x), y_k, dtype, "inference-mode output differs from Keras")


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


def test_calibration_sets_the_moving_statistics_to_the_data():
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(200, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    calibrate_batch_norm(model, x)
    bn = model.layers[0]
    np.testing.assert_allclose(bn.moving_mean.numpy(), x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), x.var(axis=0), rtol=1e-4)
    assert bn.momentum == 0.99
    with pytest.raises(ValueError, match="no BatchNormalization"):
        calibrate_batch_norm(
            keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), x
        )


def test_folded_model_equals_the_original_in_inference():
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


def test_fold_refuses_a_batch_norm_that_does_not_follow_a_linear_layer():
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
