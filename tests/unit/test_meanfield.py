"""Predictions and measurement of gradient growth in deep batch-normalized networks."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.batchnorm import BatchNorm
from bnbook.meanfield import (
    gradient_growth_rate,
    predicted_growth_rate,
    weight_gradient_norms,
)
from bnbook.mlp import build_mlp


def test_predictions():
    assert predicted_growth_rate("linear", 4) == 2.0
    assert predicted_growth_rate("linear", 103) == pytest.approx(101 / 100)
    assert predicted_growth_rate("relu") == pytest.approx(1.4669, abs=1e-4)


def test_growth_rate_of_a_geometric_sequence_is_exact():
    norms = 3.0 * 1.5 ** np.arange(30)[::-1]  # grows by 1.5 per layer towards the input
    assert gradient_growth_rate(norms) == pytest.approx(1.5)
    # the ends are left out: spoiling them changes nothing
    spoiled = norms.copy()
    spoiled[[0, -1]] = 1e-9
    assert gradient_growth_rate(spoiled, skip=2) == pytest.approx(1.5)
    runs = np.stack([norms, 4 * norms])  # runs averaged in the log
    assert gradient_growth_rate(runs) == pytest.approx(1.5)


def test_weight_gradient_norms_of_a_network_and_no_trace():
    rng = np.random.default_rng(0)
    model = build_mlp((8, 8, 8, 8, 3), norm=BatchNorm, seed=1)
    x, dy = rng.normal(size=(16, 8)), rng.normal(size=(16, 3))
    bn = model.layers[1]
    before = bn.moving_mean.copy()
    norms = weight_gradient_norms(model, x, dy)
    np.testing.assert_array_equal(bn.moving_mean, before)
    model(x, training=True)
    model.backward(dy)
    dense = [model.layers[k] for k in (0, 3, 6, 9)]
    assert len(norms) == len(dense)
    np.testing.assert_allclose(norms, [np.sum(d.dW**2) for d in dense])


def test_without_batch_norm_a_linear_network_does_not_explode():
    rng = np.random.default_rng(1)
    norms = [
        weight_gradient_norms(
            build_mlp(
                (128,) * 32, seed=s, activation="linear", init_scale=np.sqrt(0.5)
            ),
            rng.normal(size=(64, 128)),
            rng.normal(size=(64, 128)),
        )
        for s in range(3)
    ]
    assert gradient_growth_rate(norms) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize(("batch_size", "tolerance"), [(8, 0.05), (32, 0.015)])
def test_with_batch_norm_a_linear_network_explodes_as_predicted(batch_size, tolerance):
    rng = np.random.default_rng(2)
    norms = [
        weight_gradient_norms(
            build_mlp((128,) * 32, norm=BatchNorm, seed=s, activation="linear"),
            rng.normal(size=(batch_size, 128)),
            rng.normal(size=(batch_size, 128)),
        )
        for s in range(3)
    ]
    predicted = predicted_growth_rate("linear", batch_size)
    assert gradient_growth_rate(norms) == pytest.approx(predicted, rel=tolerance)


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: predicted_growth_rate("tanh", 8), ValueError, "activation"),
        (lambda: predicted_growth_rate("linear", 3), ValueError, "batch_size"),
        (lambda: predicted_growth_rate("linear", 8.0), TypeError, "batch_size"),
        (lambda: gradient_growth_rate(np.ones((2, 2, 2))), ValueError, "1-D or 2-D"),
        (lambda: gradient_growth_rate([1.0, 0.0, 1.0, 1.0]), ValueError, "positive"),
        (lambda: gradient_growth_rate(np.ones(10), skip=-1), ValueError, "skip"),
        (lambda: gradient_growth_rate(np.ones(10), skip=5), ValueError, "fewer than 2"),
        (
            lambda: weight_gradient_norms(
                build_mlp((4, 4, 2)), np.ones((3, 4)), np.ones((3, 3))
            ),
            ValueError,
            "dy",
        ),
    ],
)
def test_bad_input_is_a_clear_error(call, error, name):
    with raises_naming(error, name):
        call()
