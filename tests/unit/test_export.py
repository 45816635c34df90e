"""Export to TensorFlow Lite: batch norm folded, training mode, int8 per channel or per
tensor, and the weights read back."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.batchnorm import BatchNorm
from bnbook.data import load_digits_split
from bnbook.experiments.quantization import folded_kernel, quantization_error, spread
from bnbook.export import layer_weights, operations, run_tflite, to_tflite
from bnbook.kerasbn import calibrate_batch_norm, convnet, images, keras_twin
from bnbook.mlp import build_mlp

pytestmark = pytest.mark.keras


@pytest.fixture(scope="module")
def mlp(tf_keras):
    rng = np.random.default_rng(0)
    model = build_mlp((6, 5, 4), norm=BatchNorm, seed=0)
    bn = model.layers[1]
    bn.gamma[:] = rng.uniform(0.5, 2, 5)
    bn.beta[:] = rng.normal(size=5)
    bn.set_moving_statistics(rng.normal(size=5), rng.uniform(0.5, 3, 5))
    x = rng.normal(size=(32, 6)).astype(np.float32)
    return model, keras_twin(model, 6), x


def test_inference_export_folds_batch_norm(mlp):
    model, twin, x = mlp
    flat = to_tflite(twin)
    assert operations(flat) == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
    np.testing.assert_allclose(run_tflite(flat, x), model(x), rtol=1e-4, atol=1e-5)
    kernel = folded_kernel(model, 0)
    weights, scales = next(iter(layer_weights(flat).values()))
    np.testing.assert_allclose(weights.T, kernel, rtol=1e-5, atol=1e-6)
    assert scales.size == 0


def test_training_mode_export_normalizes_each_batch(mlp):
    model, twin, x = mlp
    flat = to_tflite(twin, training=True)
    assert {"MEAN", "SQUARED_DIFFERENCE", "RSQRT"} <= set(operations(flat))
    np.testing.assert_allclose(
        run_tflite(flat, x), model(x, training=True), rtol=1e-4, atol=1e-4
    )
    alone = run_tflite(flat, x, batch_size=1)  # a batch of one: batch norm outputs beta
    np.testing.assert_allclose(alone, alone[[0]].repeat(len(x), axis=0), atol=1e-5)


def test_int8_per_channel_and_per_tensor(mlp):
    model, twin, x = mlp
    per_channel = to_tflite(twin, int8=x)
    per_tensor = to_tflite(twin, int8=x, per_channel=False)
    assert [len(s) for _, s in layer_weights(per_channel).values()] == [5, 4]
    assert [len(s) for _, s in layer_weights(per_tensor).values()] == [1, 1]
    float_out = model(x)
    for flat in (per_channel, per_tensor):
        out = run_tflite(flat, x)
        assert out.dtype == np.float32
        assert np.max(np.abs(out - float_out)) < 0.1 * np.max(np.abs(float_out))
    weights, scales = next(iter(layer_weights(per_channel).values()))
    # symmetric int8 weights: every value an integer multiple of its row's scale
    steps = weights / scales[:, None]
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    assert np.all(np.abs(steps) <= 127.001)


def test_convnet_exports_folded(tf_keras):
    data = images(load_digits_split(seed=0))
    model = convnet()
    calibrate_batch_norm(model, data.x_train[:200])
    flat = to_tflite(model)
    assert operations(flat).count("CONV_2D") == 2
    assert not any("BATCH" in op or op in ("MEAN", "RSQRT") for op in operations(flat))
    expected = model(data.x_test[:20], training=False).numpy()
    np.testing.assert_allclose(run_tflite(flat, data.x_test[:20]), expected, atol=1e-4)
    assert len(convnet(batch_norm=False).layers) == 8
    with raises_naming(TypeError, "batch_norm"):
        convnet(batch_norm=1)


def test_export_bad_arguments(mlp):
    _, twin, x = mlp
    with raises_naming(TypeError, "model"):
        to_tflite("a model")
    with raises_naming(TypeError, "training"):
        to_tflite(twin, training=1)
    with raises_naming(TypeError, "per_channel"):
        to_tflite(twin, per_channel="no")
    with raises_naming(ValueError, "int8"):
        to_tflite(twin, int8=np.zeros(6))
    flat = to_tflite(twin)
    with raises_naming(TypeError, "flatbuffer"):
        operations("not bytes")
    with raises_naming(ValueError, "x"):
        run_tflite(flat, np.zeros((3, 5)))
    with raises_naming(ValueError, "batch_size"):
        run_tflite(flat, x, batch_size=5)
    with raises_naming(ValueError, "batch_size"):
        run_tflite(flat, x, batch_size=0)


def test_sixteen_bit_activations(mlp):
    model, twin, x = mlp
    flat = to_tflite(twin, int8=x, activation_bits=16)
    assert operations(flat) == [
        "QUANTIZE",
        "FULLY_CONNECTED",
        "FULLY_CONNECTED",
        "DEQUANTIZE",
    ]
    out = run_tflite(flat, x)
    float_out = model(x)
    assert np.max(np.abs(out - float_out)) < 0.05 * np.max(np.abs(float_out))
    with raises_naming(ValueError, "activation_bits"):
        to_tflite(twin, int8=x, activation_bits=4)


def test_quantization_pitfall_helpers(tf_keras):
    data = load_digits_split(seed=0, dtype=np.float64)
    model = build_mlp((64, 8, 6, 10), norm=BatchNorm, seed=0)
    model.calibrate(data.x_train)
    wide = spread(model, 30.0)
    np.testing.assert_allclose(wide(data.x_test), model(data.x_test), atol=1e-10)
    k1, k0 = folded_kernel(wide, 0), folded_kernel(model, 0)
    np.testing.assert_allclose(k1[:, ::2], 30 * k0[:, ::2])
    np.testing.assert_allclose(k1[:, 1::2], k0[:, 1::2])
    assert folded_kernel(model, 1).shape == (8, 6)
    columns, rows, accuracy = quantization_error(wide, data, per_channel=True)
    assert columns.shape == (8,) and rows.shape == (8,) and 0 <= accuracy <= 1
    assert np.max(columns) < 0.02 and np.median(rows[::2]) > np.median(rows[1::2])
    columns, _, _ = quantization_error(wide, data, per_channel=False)
    assert np.median(columns[1::2]) > np.median(columns[::2])
    with raises_naming(ValueError, "c"):
        spread(model, 0)
    with raises_naming(ValueError, "k"):
        folded_kernel(model, -1)
    with raises_naming(TypeError, "per_channel"):
        quantization_error(wide, data, per_channel=None)
