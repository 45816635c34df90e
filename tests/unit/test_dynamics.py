"""The angular update of weights before batch norm, and SGD with momentum and decay."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.dynamics import angular_update, column_norms
from bnbook.layers import Dense
from bnbook.mlp import SGD, sgd_step


def test_angular_update_measures_the_angle_of_each_column():
    theta = np.array([1e-6, 0.1, 1.0, np.pi])
    before = 2.0 * np.vstack([np.ones(4), np.zeros(4)])
    after = 3.0 * np.vstack([np.cos(theta), np.sin(theta)])  # the norm does not matter
    np.testing.assert_allclose(angular_update(before, after), theta, rtol=1e-9)
    np.testing.assert_array_equal(angular_update(before, 5 * before), 0.0)
    np.testing.assert_allclose(column_norms(after), 3.0)


def test_angular_update_computes_in_float64_and_stays_finite():
    rng = np.random.default_rng(1)
    before = rng.normal(size=(5, 40)).astype(np.float32)
    after = (before + 1e-4 * rng.normal(size=(5, 40))).astype(np.float32)
    exact = angular_update(before.astype(np.float64), after.astype(np.float64))
    result = angular_update(before, after)
    assert result.dtype == np.float64 and column_norms(before).dtype == np.float64
    np.testing.assert_allclose(result, exact, rtol=1e-12)
    # opposite columns: rounding may put the chord a hair above 2
    opposite = angular_update(before, -3 * before)
    assert np.all(np.isfinite(opposite))
    np.testing.assert_allclose(opposite, np.pi, rtol=1e-7)


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        (np.ones((3, 2)), np.ones((3, 3)), "same shape"),
        (np.zeros((3, 2)), np.ones((3, 2)), "^every column must be non-zero"),
        (np.ones((3, 2)), np.zeros((3, 2)), "^every column must be non-zero"),
        (np.ones(3), np.ones(3), "n_in, n_out"),
    ],
)
def test_angular_update_bad_input(before, after, message):
    with pytest.raises(ValueError, match=message):
        angular_update(before, after)


def test_sgd_without_momentum_or_decay_is_sgd_step():
    x, dy = np.random.default_rng(0).normal(size=(2, 5, 3))
    layers = [Dense(3, 3, np.random.default_rng(1)) for _ in range(2)]
    for layer in layers:
        layer(x)
        layer.backward(dy)
    sgd_step(layers[0], 0.1)
    SGD(0.1).step(layers[1].params())
    for (p, _), (q, _) in zip(layers[0].params(), layers[1].params(), strict=True):
        np.testing.assert_array_equal(p, q)


def test_sgd_momentum_and_weight_decay_follow_pytorchs_rule():
    w, g = np.array([2.0]), np.array([1.0])
    opt = SGD(0.1, momentum=0.9, weight_decay=0.5)
    opt.step([(w, g)])  # v = g + 0.5 w = 2, w = 2 - 0.2
    np.testing.assert_allclose(w, [1.8])
    opt.step([(w, g)])  # v = 0.9 * 2 + (1 + 0.9) = 3.7, w = 1.8 - 0.37
    np.testing.assert_allclose(w, [1.43])
    other = np.array([2.0])
    opt.step([(other, g)])  # a new array starts its own velocity
    np.testing.assert_allclose(other, [1.8])


def test_decoupled_weight_decay_acts_outside_the_momentum():
    w, g = np.array([2.0]), np.array([1.0])
    opt = SGD(0.1, momentum=0.9, weight_decay=0.5, decoupled=True)
    opt.step([(w, g)])  # v = g = 1, w = (1 - 0.05) 2 - 0.1
    np.testing.assert_allclose(w, [1.8])
    opt.step([(w, g)])  # v = 0.9 + 1 = 1.9, w = 0.95 * 1.8 - 0.19
    np.testing.assert_allclose(w, [1.52])


def test_weight_decay_only_on_the_parameters_named():
    w, b, g = np.array([2.0]), np.array([2.0]), np.array([1.0])
    for decoupled in (False, True):
        w[:], b[:] = 2.0, 2.0
        SGD(0.1, weight_decay=0.5, decoupled=decoupled).step(
            [(w, g), (b, g)], decayed=[(w, g)]
        )
        np.testing.assert_allclose([w[0], b[0]], [1.8, 1.9])


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"lr": 0.0}, ValueError, "lr"),
        ({"momentum": 1.0}, ValueError, "momentum"),
        ({"momentum": -0.1}, ValueError, "momentum"),
        ({"momentum": "0.9"}, TypeError, "momentum"),
        ({"weight_decay": -1e-4}, ValueError, "weight_decay"),
        ({"weight_decay": None}, TypeError, "weight_decay"),
        ({"decoupled": 1}, TypeError, "decoupled"),
    ],
)
def test_sgd_bad_arguments(kwargs, error, name):
    with raises_naming(error, name):
        SGD(**({"lr": 0.1} | kwargs))


def test_decoupled_decay_is_coupled_decay_with_other_constants():
    """Eliminating the velocity, every step of either rule reads
    w[t+1] - w[t] = rho' (w[t] - w[t-1]) - lr g[t] - lr decay' w[t]; for the decoupled
    rule, exactly, rho' = rho (1 - lr decay) and decay' = (1 - rho) decay."""
    lr, rho, decay = 0.1, 0.9, 0.3
    rng = np.random.default_rng(4)
    grads = rng.normal(size=(30, 6))
    for decoupled, (rho_, decay_) in {
        False: (rho, decay),
        True: (rho * (1 - lr * decay), (1 - rho) * decay),
    }.items():
        w, path = rng.normal(size=6), []
        optimizer = SGD(lr, rho, decay, decoupled)
        for g in grads:
            path.append(w.copy())
            optimizer.step([(w, g)])
        path = np.array([*path, w])
        step, previous = path[2:] - path[1:-1], path[1:-1] - path[:-2]
        predicted = rho_ * previous - lr * grads[1:] - lr * decay_ * path[1:-1]
        np.testing.assert_allclose(step, predicted, rtol=1e-12, atol=1e-14)
