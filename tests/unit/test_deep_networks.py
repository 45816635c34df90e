"""The measurements of chapter 10, part 1 (bnbook.experiments.deep_networks)."""

import numpy as np
import pytest

from bnbook.batchnorm import BatchNorm
from bnbook.data import load_digits_split
from bnbook.deep import stable_rank
from bnbook.experiments.deep_networks import (
    preactivation_zero_gamma,
    rank_and_gradients,
    train_resnets,
    variance_profile,
)
from bnbook.layers import Residual
from bnbook.mlp import layer_inputs, loss_and_grads, train_mlp
from bnbook.optim import SGD


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(seed=0)


def test_rank_and_gradients_shapes_and_the_input_rank():
    out = rank_and_gradients("linear", [0, 1], batch_norm=False, depth=4, width=8)
    assert out["rank"].shape == (2, 5) and out["gradient_ratio"].shape == (2,)
    x = np.random.default_rng([1, 32]).normal(size=(32, 8))
    assert out["rank"][1, 0] == pytest.approx(stable_rank(x))
    assert np.all((out["rank"] >= 1) & (out["rank"] <= 8))


def test_rank_collapses_without_batch_norm_and_not_with_it():
    kwargs = {"depth": 30, "width": 32, "batch": 16}
    plain = rank_and_gradients("relu", range(3), batch_norm=False, **kwargs)
    normed = rank_and_gradients("relu", range(3), batch_norm=True, **kwargs)
    assert np.all(plain["rank"][:, -1] < 1.2)
    assert np.all(normed["rank"][:, -1] > 2.0)
    # ... and batch norm's gradient explodes towards the input (chapter 7)
    assert np.all(normed["gradient_ratio"] > 100 * plain["gradient_ratio"])


def test_gradient_ratio_is_first_over_last_hidden_layer():
    out = rank_and_gradients("relu", [5], batch_norm=True, depth=3, width=6, batch=8)
    from bnbook.mlp import build_mlp

    net = build_mlp((6,) * 4 + (10,), norm=BatchNorm, seed=5)
    rng = np.random.default_rng([5, 8])
    x, dy = rng.normal(size=(8, 6)), rng.normal(size=(8, 10))
    net(x, training=True)
    net.backward(dy)
    weights = [g for p, g in net.params() if p.ndim == 2]
    expected = np.linalg.norm(weights[0]) / np.linalg.norm(weights[2])
    assert out["gradient_ratio"][0] == pytest.approx(expected)
    # the ranks are measured at the input of each dense layer
    inputs = layer_inputs(net, x, training=True)
    assert out["rank"][0, 1] == pytest.approx(stable_rank(inputs[3]))


def test_variance_profile_grows_linearly_with_bn_and_exponentially_without():
    bn = variance_profile("bn", range(2), blocks=20)
    none = variance_profile("none", range(2), blocks=20)
    assert bn["stream"].shape == bn["branch"].shape == (2, 20)
    # with BN each branch adds about the same variance, 1 - 1/pi
    increments = np.diff(bn["stream"], axis=1)
    np.testing.assert_allclose(increments.mean(), 1 - 1 / np.pi, rtol=0.1)
    np.testing.assert_allclose(bn["branch"].mean(), 1 - 1 / np.pi, rtol=0.1)
    growth = none["stream"][:, -1] / none["stream"][:, -11]
    assert np.all((growth > 2**8) & (growth < 2**11))  # about doubling per block


def test_variance_profile_of_skipinit_is_flat():
    out = variance_profile("skipinit", [0], blocks=5)
    assert np.all(out["branch"] == 0)
    np.testing.assert_allclose(out["stream"], out["stream"][0, 0])


def test_train_resnets_histories(digits):
    out = train_resnets(
        digits, ("skipinit", "none"), (0.1,), [0, 1], blocks=2, steps=20, eval_every=10
    )
    run = out["skipinit", 0.1]
    assert set(out) == {("skipinit", 0.1), ("none", 0.1)}
    np.testing.assert_array_equal(run["step"], [10, 20])
    assert run["train_loss"].shape == run["test_accuracy"].shape == (2, 2)
    assert run["final_accuracy"].shape == (2,)
    assert np.all(run["train_loss"][:, 1] < run["train_loss"][:, 0])
    # no batch norm: the final accuracy is the last evaluation's
    np.testing.assert_array_equal(run["final_accuracy"], run["test_accuracy"][:, -1])


def test_train_resnets_marks_a_diverged_run_and_calibrates_batch_norm(digits):
    out = train_resnets(
        digits, ("none", "bn"), (1.0,), [0], blocks=16, steps=10, eval_every=5
    )
    assert np.isnan(out["none", 1.0]["final_accuracy"][0])
    assert np.all(np.isnan(out["none", 1.0]["train_loss"]))
    bn = out["bn", 1.0]
    assert np.isfinite(bn["final_accuracy"][0])
    # after 10 steps the moving statistics are mostly their initial values: the
    # calibrated accuracy differs from the last evaluation's
    assert bn["final_accuracy"][0] != bn["test_accuracy"][0, -1]


def test_a_zero_gamma_before_a_relu_never_trains(digits):
    model = preactivation_zero_gamma(3, seed=0)
    blocks = [layer for layer in model.layers if isinstance(layer, Residual)]
    in_branch = {id(p) for block in blocks for p, _ in block.params()}
    _, grads = loss_and_grads(model, digits.x_train[:60], digits.y_train[:60])
    pairs = list(zip(model.params(), grads, strict=True))
    # every gradient inside a branch is exactly 0; every other one is not
    assert all(np.all(g == 0) for (p, _), g in pairs if id(p) in in_branch)
    assert all(np.any(g != 0) for (p, _), g in pairs if id(p) not in in_branch)
    before = [p.copy() for block in blocks for p, _ in block.params()]
    train_mlp(model, digits, optimizer=SGD(0.5), steps=20, seed=0, eval_every=20)
    after = [p for block in blocks for p, _ in block.params()]
    for p0, p in zip(before, after, strict=True):
        np.testing.assert_array_equal(p, p0)
    h = np.random.default_rng(0).normal(size=(8, 64))
    for block in blocks:  # each block is still the identity
        np.testing.assert_array_equal(block(h, training=True), h)


def test_preactivation_zero_gamma_zeroes_only_the_second_batch_norm():
    model = preactivation_zero_gamma(2, seed=1)
    for block in (layer for layer in model.layers if isinstance(layer, Residual)):
        first, second = [sub for sub in block.layers if isinstance(sub, BatchNorm)]
        assert np.all(first.gamma == 1) and np.all(second.gamma == 0)
