"""SGD: plain, with momentum, with coupled (PyTorch) or decoupled (Keras) weight
decay, on a part of the parameters, with a schedule."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.layers import Dense
from bnbook.optim import SGD, sgd_step


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
        SGD(0.1, weight_decay=0.5, decoupled=decoupled, decayed=[w]).step(
            [(w, g), (b, g)]
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
        ({"decayed": "gamma"}, TypeError, "decayed"),
        ({"decayed": [np.ones(2), [1.0]]}, TypeError, "decayed"),
        ({"lr": "0.1"}, TypeError, "lr"),
        ({"lr": lambda t: 0.0}, ValueError, r"lr\(1\)"),
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
        optimizer = SGD(lr, rho, decay, decoupled=decoupled)
        for g in grads:
            path.append(w.copy())
            optimizer.step([(w, g)])
        path = np.array([*path, w])
        step, previous = path[2:] - path[1:-1], path[1:-1] - path[:-2]
        predicted = rho_ * previous - lr * grads[1:] - lr * decay_ * path[1:-1]
        np.testing.assert_allclose(step, predicted, rtol=1e-12, atol=1e-14)


def test_a_schedule_sets_the_rate_of_each_step():
    w, g = np.array([1.0]), np.array([1.0])
    opt = SGD(lambda t: 0.1 * t)
    assert opt.lr == 0.1 and opt.iterations == 0
    for t in (1, 2, 3):
        opt.step([(w, g)])
        assert opt.iterations == t and opt.lr == 0.1 * t
    np.testing.assert_allclose(w, [1.0 - 0.6])
