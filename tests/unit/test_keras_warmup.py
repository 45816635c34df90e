"""Chapter 4's moving-average warm-up of a Keras network."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.data import load_digits_split
from bnbook.experiments.keras_warmup import warmup_accuracy
from bnbook.kerasbn import calibrate_batch_norm, train_keras
from bnbook.tfsetup import set_seed

pytestmark = pytest.mark.keras


@pytest.fixture(scope="module")
def raw():
    return load_digits_split(seed=0, standardize=False)


def _by_hand(keras, raw, momentum, seed, steps, hidden, calibrate):
    """The network of warmup_accuracy, trained and evaluated without it."""
    set_seed(seed)

    def block():
        return [
            keras.layers.Dense(hidden, use_bias=False),
            keras.layers.BatchNormalization(momentum=momentum),
            keras.layers.Activation("relu"),
        ]

    model = keras.Sequential(
        [keras.Input((64,)), *block(), *block(), keras.layers.Dense(10)]
    )
    train_keras(model, raw, steps=steps, lr=0.1, seed=seed, every=5)
    if calibrate:
        calibrate_batch_norm(model, raw.x_train)
    logits = model(raw.x_test, training=False)
    return np.mean(np.argmax(logits, axis=1) == raw.y_test)


@pytest.mark.parametrize("calibrate", [False, True])
def test_warmup_accuracy_is_the_trained_networks_test_accuracy(
    tf_keras, raw, calibrate
):
    _, keras = tf_keras
    accuracy = warmup_accuracy(
        raw, momentum=0.9, calibrate=calibrate, seed=3, checkpoints=(5, 10), hidden=8
    )
    assert accuracy.shape == (2,)
    assert np.all((accuracy >= 0) & (accuracy <= 1))
    expected = _by_hand(keras, raw, 0.9, 3, 10, 8, calibrate)
    assert accuracy[-1] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"momentum": 1.5}, ValueError, "momentum"),
        ({"calibrate": 1}, TypeError, "calibrate"),
        ({"checkpoints": (7,)}, ValueError, "checkpoints"),
        ({"checkpoints": (10, 5)}, ValueError, "checkpoints"),
        ({"checkpoints": ()}, ValueError, "checkpoints"),
        ({"lr": 0}, ValueError, "lr"),
    ],
)
def test_warmup_accuracy_bad_input(tf_keras, raw, kwargs, error, name):
    args = dict(momentum=0.9, calibrate=False, seed=0, checkpoints=(5,), hidden=4)
    with raises_naming(error, name):
        warmup_accuracy(raw, **{**args, **kwargs})
