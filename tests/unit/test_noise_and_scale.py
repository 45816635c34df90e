"""Chapter 9's experiments: ghost batches, scaled gamma and beta, the variance shift
of dropout before batch norm, and networks that train only gamma and beta."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.batchnorm import BatchNorm
from bnbook.experiments.noise_and_scale import (
    batch_norm_params,
    disabled,
    dropout_mlp,
    not_batch_norm,
    scaled_loss,
    train_ghost,
    variance_shift,
)
from bnbook.mlp import build_mlp, loss_and_grads


def test_train_ghost_returns_the_seven_measures():
    runs = train_ghost(4, seed=0, steps=2)
    assert len(runs) == 7 and all(np.isfinite(runs))
    gap, test, loss, gap_p, test_p, loss_p, shrink = runs
    assert -1 <= gap <= 1 and 0 <= test <= 1 and 0 <= test_p <= 1 and loss > 0
    assert 0 < shrink < 1.5


def test_scaled_loss_is_invariant_to_a_whole_layer_without_epsilon():
    model = build_mlp(norm=lambda: BatchNorm(epsilon=0.0), seed=0)
    x = np.random.default_rng(0).normal(size=(16, 64))
    labels = np.arange(16) % 10
    loss = loss_and_grads(model, x, labels)[0]
    gamma = model.layers[1].gamma.copy()
    assert scaled_loss(model, x, labels, 1, slice(None)) == pytest.approx(loss, 1e-12)
    assert abs(scaled_loss(model, x, labels, 1, 0) - loss) > 1e-9
    np.testing.assert_array_equal(model.layers[1].gamma, gamma)  # left as it was
    with raises_naming(TypeError, "layer"):
        scaled_loss(model, x, labels, 0, 0)


def test_not_batch_norm_and_batch_norm_params_split_the_parameters():
    model = build_mlp((64, 8, 8, 10), norm=BatchNorm, seed=0)
    bn = batch_norm_params(model)
    assert [p.shape for p, _ in bn] == [(8,), (8,), (8,), (8,)]
    ids = {id(p) for p in not_batch_norm(model)} | {id(p) for p, _ in bn}
    assert ids == {id(p) for p, _ in model.params()}


@pytest.mark.parametrize("where", ["none", "before", "after"])
def test_dropout_mlp_puts_the_dropout_where_asked(where):
    model = dropout_mlp(where, seed=0, width=12)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Dropout") == (where != "none")
    assert model.layers[0].W.shape == (64, 12)
    assert model(np.zeros((3, 64))).shape == (3, 10)
    if where == "before":
        assert kinds.index("Dropout") == 3


def test_variance_shift_matches_the_formula_for_independent_inputs():
    # The first block's outputs nearly independent: the prediction is close, and
    # the covariances add little.
    model = dropout_mlp("before", seed=0, width=400)
    x = np.random.default_rng(1).normal(size=(4000, 64))
    measured, predicted, covariance = variance_shift(model, x)
    assert measured == pytest.approx(predicted, rel=0.05)
    assert measured > 1.5 and 0.5 < covariance < 2


def test_disabled_counts_units_switched_off():
    model = build_mlp((64, 10, 10), norm=BatchNorm, seed=0)
    bn = model.layers[1]
    bn.gamma[:5], bn.beta[:5] = 0.01, -1.0  # off for every input
    x = np.random.default_rng(0).normal(size=(50, 64))
    small, off = disabled(model, x)
    assert small == pytest.approx(0.5) and off >= 0.5


def test_bad_arguments_are_named():
    with raises_naming(ValueError, "where"):
        dropout_mlp("inside", seed=0)
    with raises_naming(ValueError, "width"):
        dropout_mlp("before", seed=0, width=0)
    with raises_naming(ValueError, "keep"):
        variance_shift(dropout_mlp("before", seed=0), np.zeros((4, 64)), keep=0)
    with raises_naming(ValueError, "model"):
        variance_shift(build_mlp(seed=0), np.zeros((4, 64)))
    with raises_naming(ValueError, "model"):
        disabled(build_mlp(seed=0), np.zeros((4, 64)))
    with raises_naming(ValueError, "steps"):
        train_ghost(4, seed=0, steps=0)
