"""Chapter 1's reproduction of Ioffe and Szegedy's Figure 1."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.data import load_digits_split
from bnbook.experiments.ioffe_figure1 import Figure1, sigmoid_mlp

pytestmark = pytest.mark.keras


@pytest.fixture(scope="module")
def figure1(tf_keras):
    return Figure1(load_digits_split(seed=0), every=5, percentiles=(15, 50, 85))


def test_sigmoid_mlp_names_the_inputs_of_the_sigmoids(tf_keras):
    for batch_norm in (False, True):
        model = sigmoid_mlp(batch_norm, n_inputs=4, hidden=3, n_classes=2)
        assert model.output_shape == (None, 2)
        for i in (1, 2, 3):
            layer = model.get_layer(f"pre_sigmoid_{i}")
            assert type(layer).__name__ == (
                "BatchNormalization" if batch_norm else "Dense"
            )


def test_train_returns_a_checkpoint_every_few_steps(figure1):
    accuracy, quantiles = figure1.train(True, 0, steps=10, lr=0.5)
    assert accuracy.shape == (3,) and quantiles.shape == (3, 3, 100)
    assert np.all((accuracy >= 0) & (accuracy <= 1))
    assert np.all(np.diff(quantiles, axis=1) >= 0)  # 15th <= 50th <= 85th


def test_sigmoid_inputs_are_normalized_over_the_test_images_statelessly(figure1):
    model = figure1.fresh_model(True, 1)
    bn = model.get_layer("pre_sigmoid_3")
    a = figure1.sigmoid_inputs(True)
    assert a.shape == (len(figure1.data.x_test), 100)
    # a fresh batch norm in training mode: mean 0, standard deviation about 1
    np.testing.assert_allclose(a.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(a.std(axis=0), 1.0, atol=0.05)
    # and the measurement leaves the moving statistics where they were
    np.testing.assert_array_equal(bn.moving_mean.numpy(), 0.0)
    np.testing.assert_array_equal(bn.moving_variance.numpy(), 1.0)


def test_steps_to_target(figure1):
    assert figure1.steps_to_target(False, 0, lr=0.5, target=0.0, max_steps=10) == 0
    never = figure1.steps_to_target(False, 0, lr=0.5, target=1.0, max_steps=5)
    assert never == np.inf


def test_bad_input(figure1):
    with raises_naming(TypeError, "batch_norm"):
        sigmoid_mlp("yes")
    with raises_naming(ValueError, "steps"):
        figure1.train(True, 0, steps=0, lr=0.5)
    with raises_naming(ValueError, "target"):
        figure1.steps_to_target(True, 0, lr=0.5, target=2.0, max_steps=5)
    with raises_naming(ValueError, "percentiles"):
        Figure1(figure1.data, percentiles=(101,))
