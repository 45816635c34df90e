"""The quiet, deterministic TensorFlow import.

These tests call load_tensorflow themselves (it is what they test), so TensorFlow
is imported when they run, not when this module is collected.
"""

import logging
import subprocess
import sys

import numpy as np
import pytest

from bnbook.tfsetup import load_tensorflow, set_seed

pytestmark = pytest.mark.keras  # `pytest -m "not keras"` leaves them out


def test_import_writes_nothing_to_stdout_or_stderr():
    # A fresh interpreter: the raw `import tensorflow` there prints CUDA-stub and
    # cpu-feature lines on stderr; ours must print nothing at all.
    code = (
        "from bnbook.tfsetup import load_tensorflow\n"
        "tf, keras = load_tensorflow(seed=0)\n"
        "keras.layers.Dense(2)(tf.ones((1, 3)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout == ""
    assert result.stderr == ""


def test_returns_the_imported_tensorflow_and_keras_3_quietly():
    tf, keras = load_tensorflow()
    assert tf is sys.modules["tensorflow"] and keras is sys.modules["keras"]
    assert int(keras.__version__.split(".")[0]) == 3
    assert tf.get_logger().level == logging.ERROR
    assert load_tensorflow() == (tf, keras)  # and again on a second call


def test_seed_makes_runs_repeat_and_turns_on_determinism():
    tf, keras = load_tensorflow(seed=7)
    first = keras.random.normal((5,)).numpy()
    layer_a = keras.layers.Dense(3)
    layer_a.build((None, 4))
    set_seed(7)
    second = keras.random.normal((5,)).numpy()
    layer_b = keras.layers.Dense(3)
    layer_b.build((None, 4))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(layer_a.kernel.numpy(), layer_b.kernel.numpy())
    # TensorFlow has a public setter but only a private getter.
    from tensorflow.python.framework import config

    assert config.is_op_determinism_enabled()


def test_different_seeds_differ():
    _, keras = load_tensorflow(seed=1)
    a = keras.random.normal((5,)).numpy()
    set_seed(2)
    b = keras.random.normal((5,)).numpy()
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("seed", ["1", 1.5, True, [1]])
def test_seed_of_wrong_type_is_a_type_error(seed):
    with pytest.raises(TypeError, match="seed"):
        load_tensorflow(seed=seed)
    with pytest.raises(TypeError, match="seed"):
        set_seed(seed)


def test_set_seed_needs_a_seed():
    with pytest.raises(TypeError, match="seed"):
        set_seed(None)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_out_of_range_is_a_value_error(seed):
    with pytest.raises(ValueError, match="seed"):
        load_tensorflow(seed=seed)


def test_devices_splits_the_cpu_for_a_distribution_strategy():
    # A fresh interpreter: the split must come before TensorFlow's first operation.
    code = (
        "from bnbook.tfsetup import load_tensorflow\n"
        "tf, keras = load_tensorflow(seed=0, devices=2)\n"
        "print(len(tf.config.list_logical_devices('CPU')))\n"
        "load_tensorflow(devices=2)\n"  # the same split again is fine
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout == "2\n" and result.stderr == ""


def test_devices_too_late_or_wrong_is_refused():
    load_tensorflow()  # started, with one CPU device
    with pytest.raises(RuntimeError, match="restart the kernel"):
        load_tensorflow(devices=2)
    with pytest.raises(ValueError, match="devices must be >= 1"):
        load_tensorflow(devices=0)
    with pytest.raises(TypeError, match="devices must be an int"):
        load_tensorflow(devices="2")
