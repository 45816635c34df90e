"""Predictions and measurement of gradient growth in deep batch-normalized networks."""

import math

import numpy as np
import pytest
from naming import raises_naming

from bnbook.batchnorm import BatchNorm
from bnbook.experiments.meanfield import (
    gradient_growth_rate,
    predicted_growth_rate,
    squared_gradient_norms,
    weight_gradient_norms,
)
from bnbook.mlp import build_mlp

RELU_LIMIT = np.pi / (np.pi - 1)  # 1.4669422069...


def test_linear_predictions():
    assert predicted_growth_rate("linear", 4) == 2.0
    assert predicted_growth_rate("linear", 103) == pytest.approx(101 / 100)


# Yang et al. (2019), Theorem 8, eq. (25), alpha = 1, at c = -1/(B - 1). J(c) and
# J'(c) were computed separately to 16 digits (arcsin series in 50-digit decimals).
@pytest.mark.parametrize(
    ("batch_size", "j", "slope", "rate"),
    [
        (4, 0.1694965880421663, 0.3918265520306073, 3.0840609480877327),
        (8, 0.2501349328614512, 0.4543710516570101, 1.7881899766587481),
        (32, 0.3023464821760480, 0.4897301575265080, 1.5219528305518796),
        (128, 0.3143827459869657, 0.4974935970434307, 1.4796812723224677),
    ],
)
def test_relu_prediction_is_yang_et_al_theorem_8(batch_size, j, slope, rate):
    b, c = batch_size, -1 / (batch_size - 1)
    # J(c) = (sqrt(1 - c^2) + (pi - arccos c) c) / pi and J'(c) = (pi - arccos c) / pi,
    # written with pi - arccos(c) = pi/2 + arcsin(c)
    assert j == pytest.approx(
        (math.sqrt(1 - c * c) + (math.pi / 2 + math.asin(c)) * c) / math.pi, abs=1e-15
    )
    assert slope == pytest.approx(0.5 + math.asin(c) / math.pi, abs=1e-15)
    assert rate == pytest.approx((slope + b - 1) / ((b - 3) * (1 - j)) - 1 / (b - 3))
    assert predicted_growth_rate("relu", b) == pytest.approx(rate, rel=1e-12)


def test_relu_prediction_decreases_to_pi_over_pi_minus_1():
    rates = np.array([predicted_growth_rate("relu", b) for b in range(4, 2000)])
    assert np.all(np.diff(rates) < 0)
    assert np.all(rates > RELU_LIMIT)  # from above, never below the limit
    assert predicted_growth_rate("relu", 10**7) == pytest.approx(RELU_LIMIT, abs=1e-5)
    assert predicted_growth_rate("relu", 10**7) > RELU_LIMIT
    # always above the linear network's rate at the same batch size
    assert np.all(rates > [predicted_growth_rate("linear", b) for b in range(4, 2000)])


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
        (lambda: predicted_growth_rate("relu", None), TypeError, "batch_size"),
        (lambda: predicted_growth_rate("relu"), TypeError, "batch_size"),
        (lambda: predicted_growth_rate("relu", 3), ValueError, "batch_size"),
        (lambda: predicted_growth_rate("relu", 2.5), TypeError, "batch_size"),
        (lambda: predicted_growth_rate("relu", "8"), TypeError, "batch_size"),
        (lambda: predicted_growth_rate("relu", True), TypeError, "batch_size"),
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


def test_squared_gradient_norms_shape_and_values():
    out = squared_gradient_norms("relu", 8, [0, 1], depth=3, width=5, norm=BatchNorm)
    assert out.shape == (2, 3) and np.all(out > 0)
    # what it computes: the norms of the network it describes, on its batch
    rng = np.random.default_rng([1, 8])
    net = build_mlp((5,) * 4, seed=1, norm=BatchNorm)
    x = rng.normal(size=(8, 5))
    expected = weight_gradient_norms(net, x, rng.normal(size=(8, 5)))
    np.testing.assert_array_equal(out[1], expected)


def test_squared_gradient_norms_shift_sets_beta():
    base = squared_gradient_norms("relu", 8, [0], depth=3, width=5, norm=BatchNorm)
    shifted = squared_gradient_norms(
        "relu", 8, [0], depth=3, width=5, shift=1.0, norm=BatchNorm
    )
    assert not np.allclose(base, shifted)
    # without batch norm there is no beta to shift
    plain = squared_gradient_norms("linear", 8, [0], depth=3, width=5)
    same = squared_gradient_norms("linear", 8, [0], depth=3, width=5, shift=1.0)
    np.testing.assert_array_equal(plain, same)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"activation": "tanh"}, ValueError, "activation"),
        ({"batch_size": 1}, ValueError, "batch_size"),
        ({"batch_size": 2.0}, TypeError, "batch_size"),
        ({"depth": 0}, ValueError, "depth"),
        ({"width": 0}, ValueError, "width"),
        ({"shift": "1"}, TypeError, "shift"),
        ({"seeds": []}, ValueError, "seeds"),
    ],
)
def test_squared_gradient_norms_bad_arguments(kwargs, error, name):
    args = {"activation": "relu", "batch_size": 8, "seeds": [0], "depth": 2, "width": 3}
    with raises_naming(error, name):
        squared_gradient_norms(**{**args, **kwargs})
