"""Chapter 10b's experiments: the networks compared, the training protocol, Fixup
without its rescaling, and the stream's first updates."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.batchnorm import BatchNorm
from bnbook.data import load_digits_split
from bnbook.deep import WSDense, build_resnet
from bnbook.experiments.normalizer_free import (
    METHODS,
    best_rate,
    classifier_params,
    dense_weights,
    fixup_unscaled,
    make_network,
    rate_sweep,
    stream_change,
    train_run,
)
from bnbook.layers import Dense, Residual


@pytest.fixture(scope="module")
def data():
    return load_digits_split(seed=0)


def _dense_count(model):
    layers = [la for block in model.layers for la in getattr(block, "layers", [block])]
    return sum(isinstance(la, Dense | WSDense) for la in layers)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_network_has_two_dense_layers_per_block_and_two_more(method):
    model = make_network(method, 3, width=8, seed=0)
    assert _dense_count(model) == 2 * 3 + 2
    assert model(np.zeros((4, 64))).shape == (4, 10)
    has_bn = any(
        isinstance(la, BatchNorm)
        for block in model.layers
        for la in getattr(block, "layers", [block])
    )
    assert has_bn == method.endswith("BN")


def test_make_network_builds_the_same_network_for_a_seed():
    a, b = make_network("Fixup", 2, seed=5), make_network("Fixup", 2, seed=5)
    for (p, _), (q, _) in zip(a.params(), b.params(), strict=True):
        np.testing.assert_array_equal(p, q)


def test_fixup_unscaled_undoes_only_the_factor():
    scaled = build_resnet(9, kind="fixup", width=8, seed=1)
    unscaled = fixup_unscaled(9, width=8, seed=1)
    first = [id(b.layers[1].W) for b in scaled.layers if isinstance(b, Residual)]
    assert len(first) == 9
    for (p, _), (q, _) in zip(scaled.params(), unscaled.params(), strict=True):
        np.testing.assert_allclose(q, (3.0 if id(p) in first else 1.0) * p, rtol=1e-12)


def test_classifier_params_are_the_classifier_weights_only():
    model = make_network("NF", 2, seed=0)
    head = model.layers[-1]
    assert [id(p) for p in classifier_params(model)] == [id(head.W)]


def test_dense_weights_reach_into_the_branches():
    model = build_resnet(3, kind="fixup", width=8, seed=0)
    ids = {id(p) for p, _ in dense_weights(model)}
    inner = [la for b in model.layers if isinstance(b, Residual) for la in b.layers]
    assert {id(la.W) for la in inner if isinstance(la, Dense)} <= ids
    assert len(ids) == 2 * 3 + 2 + 2  # the first layer's and the head's biases too
    scalars = [p for p, _ in model.params() if p.shape == (1,)]
    assert scalars and not {id(p) for p in scalars} & ids


def test_train_run_returns_accuracy_and_loss_or_nan_when_diverged(data):
    acc, loss = train_run(make_network("Fixup", 2, seed=0), data, 0.1, steps=20)
    assert 0.3 < acc <= 1 and 0 < loss < 2.3
    acc, loss = train_run(
        make_network("residual, none", 8, seed=0), data, 3.0, steps=20
    )
    assert np.isnan(acc) and np.isnan(loss)


def test_train_run_with_clipping_leaves_the_classifier_unclipped(data):
    # with a tiny threshold every clipped array barely moves; the head trains anyway
    model = make_network("NF", 2, seed=0)
    first = model.layers[0].W.copy()
    head = model.layers[-1].W.copy()
    train_run(model, data, 1.0, steps=5, clipping=1e-6)
    assert np.max(np.abs(model.layers[0].W - first)) < 1e-4
    assert np.max(np.abs(model.layers[-1].W - head)) > 1e-2


def test_rate_sweep_shape_and_agc_default(data):
    runs = rate_sweep("NF + AGC", (0.1, 1.0), range(2), data, blocks=2, steps=5)
    assert runs.shape == (2, 2, 2) and np.all(np.isfinite(runs))
    clipped = rate_sweep("NF + AGC", (1.0,), [0], data, blocks=2, steps=5)
    free = rate_sweep("NF", (1.0,), [0], data, blocks=2, steps=5)
    assert clipped[0, 0, 1] != free[0, 0, 1]  # the clipping changed the run


def test_best_rate_counts_a_diverged_seed_as_zero():
    runs = np.array(
        [
            [[0.5, 1.0], [0.6, 1.0]],
            [[0.9, 0.2], [np.nan, np.nan]],
            [[0.7, 0.3], [0.7, 0.3]],
        ]
    )
    assert best_rate((0.1, 1.0, 3.0), runs) == (3.0, pytest.approx(0.7))
    assert best_rate((0.1,), np.full((1, 2, 2), np.nan)) == (None, 0.0)


def test_stream_change_of_fixup_weights_does_not_grow_with_depth(data):
    changes = [
        stream_change(
            build_resnet(b, kind="fixup", seed=0), data, 0.1, trainable=dense_weights
        )
        for b in (2, 32)
    ]
    unscaled = stream_change(
        fixup_unscaled(32, seed=0), data, 0.1, trainable=dense_weights
    )
    assert changes[1] == pytest.approx(changes[0], rel=0.3)
    assert unscaled > 5 * changes[1]


def test_stream_change_is_zero_without_steps_that_move_the_stream(data):
    # at the first step only the classifier moves: the stream stays where it was
    assert (
        stream_change(build_resnet(4, kind="fixup", seed=0), data, 0.1, steps=1) == 0.0
    )


def test_bad_arguments_are_named(data):
    with raises_naming(ValueError, "method"):
        make_network("BN", 2)
    with raises_naming(ValueError, "blocks"):
        make_network("Fixup", 0)
    with raises_naming(ValueError, "lr"):
        train_run(make_network("Fixup", 2), data, 0.0)
    with raises_naming(ValueError, "steps"):
        stream_change(build_resnet(2, kind="fixup"), data, 0.1, steps=0)
    from bnbook.mlp import build_mlp

    with raises_naming(ValueError, "model"):
        stream_change(build_mlp(), data, 0.1)
