"""Chapter 7b's small-batch measurements: weights moved, and the low-variance share."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.batchnorm import BatchNorm
from bnbook.data import Digits
from bnbook.experiments.small_batches import (
    dense_weights,
    low_variance_share,
    relative_change,
    scale_and_shift,
    train_small,
)
from bnbook.mlp import build_mlp

SIZES = (8, 6, 6, 3)


def tiny_data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(2 * n, SIZES[0])), rng.integers(0, SIZES[-1], size=2 * n)
    return Digits(x[:n], y[:n], x[n:], y[n:])


def test_relative_change_is_the_norm_of_the_difference_over_the_norm_before():
    before = [np.array([3.0, 4.0]), np.ones((2, 2))]
    after = [np.array([3.0, 4.0]) + [0.0, 1.0], 3 * np.ones((2, 2))]
    np.testing.assert_allclose(relative_change(before, after), [0.2, 2.0])


def test_weights_and_affine_parameters_have_one_array_per_layer():
    net = build_mlp(SIZES, norm=BatchNorm, seed=0)
    weights, affine = dense_weights(net), scale_and_shift(net)
    assert [w.shape for w in weights] == [(8, 6), (6, 6), (6, 3)]
    assert [a.shape for a in affine] == [(12,), (12,)]
    weights[0][:] = 0.0  # a copy: the network keeps its weights
    assert np.all(dense_weights(net)[0] != 0.0)


def test_train_small_returns_the_network_its_accuracy_and_what_moved():
    net, acc, moved, affine_moved = train_small(
        tiny_data(), SIZES, 4, seed=1, epochs=1, norm=BatchNorm
    )
    assert 0.0 <= acc <= 1.0
    assert len(moved) == 3 and len(affine_moved) == 2
    assert all(m > 0 for m in moved)
    plain = train_small(tiny_data(), SIZES, 4, seed=1, epochs=1)
    assert plain[3] == []  # no normalization, no gamma and beta


def test_low_variance_share_is_all_of_it_at_batch_size_two_and_restores_the_state():
    data = tiny_data()
    net = build_mlp(SIZES, norm=BatchNorm, seed=0)
    before = net(data.x_test)
    share = low_variance_share(net, data.x_train, data.y_train, 2, 0, lowest=6)
    np.testing.assert_allclose(share, 1.0)  # every unit is among the 6 lowest
    share = low_variance_share(net, data.x_train, data.y_train, 8, 0, lowest=1)
    assert share.shape == (2,) and np.all((share > 0) & (share < 1))
    np.testing.assert_array_equal(net(data.x_test), before)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 2.0}, TypeError, "batch_size"),
        ({"epochs": 0}, ValueError, "epochs"),
    ],
)
def test_train_small_names_a_bad_argument(kwargs, error, name):
    args = {"batch_size": 4, "seed": 0, "epochs": 1, **kwargs}
    with raises_naming(error, name):
        train_small(tiny_data(), SIZES, **args)


@pytest.mark.parametrize("name", ["lowest", "n_batches"])
def test_low_variance_share_names_a_bad_argument(name):
    net, data = build_mlp(SIZES, norm=BatchNorm, seed=0), tiny_data()
    with raises_naming(ValueError, name):
        low_variance_share(net, data.x_train, data.y_train, 2, 0, **{name: 0})


def test_relative_change_names_mismatched_lists():
    with raises_naming(ValueError, "before and after"):
        relative_change([np.ones(2)], [])
