"""Chapter 10c's experiments: whether a network trains, the largest rate at which it
does, Fixup without its stream biases, the time of a step and the summary table."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.data import load_digits_split
from bnbook.deep import AGC, ScalarBias, Scale, build_resnet
from bnbook.experiments.depth import (
    THRESHOLD,
    largest_rate,
    slower_scalars,
    step_seconds,
    summary_table,
    trains,
    without_bias,
)
from bnbook.experiments.normalizer_free import make_network, train_run
from bnbook.layers import Residual
from bnbook.mlp import softmax_cross_entropy
from bnbook.optim import SGD


@pytest.fixture(scope="module")
def data():
    return load_digits_split(seed=0)


def test_trains_needs_every_seed_above_the_threshold():
    assert trains([[0.9, 0.2], [0.51, 1.0]])
    assert not trains([[0.9, 0.2], [THRESHOLD, 1.0]])  # at the threshold: not above
    assert not trains([[0.9, 0.2], [np.nan, np.nan]])  # a diverged seed
    assert trains([[0.3, 2.0]], threshold=0.2)
    with raises_naming(ValueError, "threshold"):
        trains([[0.9, 0.2]], threshold=1.5)


def test_largest_rate_stops_at_the_first_rate_that_trains(data, monkeypatch):
    calls = []

    def sweep(method, rates, seeds, data, *, blocks, **protocol):
        calls.append((rates[0], blocks, protocol))
        accuracy = 0.9 if rates[0] <= 0.3 else 0.1
        return np.full((1, len(seeds), 2), accuracy)

    monkeypatch.setattr("bnbook.experiments.depth.rate_sweep", sweep)
    tried = largest_rate("Fixup", 64, (0.1, 1.0, 0.3), (0, 1), data, steps=5)
    assert list(tried) == [1.0, 0.3]  # from the largest down, 0.1 never tried
    assert [c[0] for c in calls] == [1.0, 0.3]
    assert all(c[1] == 64 and c[2] == {"steps": 5} for c in calls)
    assert tried[0.3].shape == (2, 2)
    # none trains: every rate tried, the smallest last
    monkeypatch.setattr(
        "bnbook.experiments.depth.rate_sweep",
        lambda *a, **k: np.full((1, 2, 2), np.nan),
    )
    assert list(largest_rate("Fixup", 4, (0.1, 0.3), (0, 1), data)) == [0.3, 0.1]
    with raises_naming(ValueError, "rates"):
        largest_rate("Fixup", 4, (), (0,), data)


def test_largest_rate_trains_real_networks(data):
    tried = largest_rate("Fixup", 2, (0.1, 100.0), (0,), data, steps=20)
    assert list(tried) == [100.0, 0.1]
    assert not trains(tried[100.0]) and trains(tried[0.1])


def test_without_stream_biases_leaves_out_the_last_bias_of_each_branch():
    model = build_resnet(3, kind="fixup", seed=0)
    kept = {id(p) for p, _ in without_bias(-1)(model)}
    everything = [p for p, _ in model.params()]
    left_out = [p for p in everything if id(p) not in kept]
    blocks = [la for la in model.layers if isinstance(la, Residual)]
    last = [[s for s in b.layers if isinstance(s, ScalarBias)][-1].b for b in blocks]
    assert len(left_out) == 3 and all(any(p is q for q in last) for p in left_out)
    assert len(kept) == len(everything) - 3


def test_without_stream_biases_keeps_them_where_they_were(data):
    model = make_network("Fixup", 4, seed=0)
    blocks = [la for la in model.layers if isinstance(la, Residual)]
    before = [
        [s.b.copy() for s in b.layers if isinstance(s, ScalarBias)] for b in blocks
    ]
    train_run(model, data, 0.1, steps=5, trainable=without_bias(-1))
    after = [[s.b for s in b.layers if isinstance(s, ScalarBias)] for b in blocks]
    for b0, b1 in zip(before, after, strict=True):
        assert b1[-1] == b0[-1]  # the stream's bias: frozen
        assert any(x != y for x, y in zip(b0[:-1], b1[:-1], strict=True))  # others move


def test_without_stream_biases_needs_a_fixup_network():
    with raises_naming(ValueError, "model"):
        without_bias(-1)(build_resnet(2, kind="bn", seed=0))
    with raises_naming(ValueError, "model"):
        without_bias(0)(build_resnet(2, kind="nf", seed=0))
    with raises_naming(TypeError, "position"):
        without_bias(1.0)


def test_without_first_biases_leaves_out_the_first_bias_of_each_branch():
    model = build_resnet(3, kind="fixup", seed=0)
    kept = {id(p) for p, _ in without_bias(0)(model)}
    blocks = [la for la in model.layers if isinstance(la, Residual)]
    first = [[s for s in b.layers if isinstance(s, ScalarBias)][0].b for b in blocks]
    last = [[s for s in b.layers if isinstance(s, ScalarBias)][-1].b for b in blocks]
    assert not any(id(p) in kept for p in first)
    assert all(id(p) in kept for p in last)
    assert len(kept) == len(model.params()) - 3


def test_slower_scalars_scales_only_the_scalars_gradients(data):
    model = make_network("Fixup", 3, seed=0)
    train_run(model, data, 0.1, steps=3)  # every scalar has a gradient from then on
    _, dlogits = softmax_cross_entropy(
        model(data.x_train[:64], training=True), data.y_train[:64]
    )
    model.backward(dlogits)
    scalars = {
        id(p)
        for block in model.layers
        if isinstance(block, Residual)
        for sub in block.layers
        if isinstance(sub, ScalarBias | Scale)
        for p, _ in sub.params()
    }
    pairs = slower_scalars(0.25)(model)
    assert [id(p) for p, _ in pairs] == [id(p) for p, _ in model.params()]
    assert len(scalars) == 3 * 5  # four biases and a multiplier per block
    for (p, g), (_, g0) in zip(pairs, model.params(), strict=True):
        np.testing.assert_array_equal(g, g0 * (0.25 if id(p) in scalars else 1.0))
        if id(p) in scalars:
            assert np.all(g0 != 0.0)  # else the scaling could not be seen
    with raises_naming(ValueError, "factor"):
        slower_scalars(0.0)
    with raises_naming(ValueError, "factor"):
        slower_scalars(2.0)


def test_step_seconds_is_a_positive_time(data):
    # a step of a 2-block network takes about a millisecond of CPU time
    assert 0 < step_seconds(make_network("Fixup", 2, seed=0), data, steps=2) < 0.05
    calls = []

    class Counting:
        def step(self, params):
            calls.append(len(params))

    model = make_network("NF", 2, seed=0)
    step_seconds(model, data, optimizer=Counting(), steps=2, repeats=2)
    assert calls == [len(model.params())] * 4  # the optimizer given takes every step
    assert step_seconds(model, data, optimizer=AGC(SGD(0.1)), steps=1) > 0
    with raises_naming(TypeError, "optimizer"):
        step_seconds(model, data, optimizer="sgd")
    with raises_naming(ValueError, "repeats"):
        step_seconds(make_network("Fixup", 2, seed=0), data, repeats=0)
    with raises_naming(ValueError, "steps"):
        step_seconds(make_network("Fixup", 2, seed=0), data, steps=0)


def test_summary_table_lists_every_row():
    rows = [
        dict(
            method="plain", depth=4, rates={4: 0.3, 16: None}, accuracy=0.12, params=5
        ),
        dict(
            method="Fixup", depth=64, rates={16: 0.3, 64: 0.1}, accuracy=0.96, params=40
        ),
        dict(method="none", depth=None, rates={4: None}, accuracy=0.1, params=3),
    ]
    lines = summary_table(rows, (4, 16, 64)).splitlines()
    assert len(lines) == 5 and lines[1] == "-" * len(lines[0])
    assert (
        lines[0].split()
        == (
            "network depth reached rate at 4 rate at 16 rate at 64 accuracy at 16 parameters"
        ).split()
    )
    assert lines[2].split() == "plain 4 blocks 0.3 none not tried 0.120 5".split()
    assert lines[3].split() == "Fixup 64 blocks not tried 0.3 0.1 0.960 40".split()
    assert lines[4].split() == "none - none not tried not tried 0.100 3".split()


def test_summary_table_takes_the_accuracy_at_the_middle_depth():
    row = dict(method="x", depth=8, rates={8: 0.1}, accuracy=0.5, params=1)
    head = summary_table([row], (2, 4, 8, 16)).splitlines()[0]
    assert "accuracy at 8" in head
