"""Chapter 10's layers, networks, measurements and clipping."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.deep import (
    AGC,
    KINDS,
    RELU_GAIN,
    ScalarBias,
    Scale,
    WSDense,
    build_resnet,
    clip_unitwise,
    signal_propagation,
    stable_rank,
    unitwise_norm,
)
from bnbook.gradcheck import numerical_gradient, relative_error
from bnbook.layers import Dense, Residual
from bnbook.mlp import loss_and_grads
from bnbook.optim import SGD


def _batch(n=128, c=64, seed=0):
    return np.random.default_rng(seed).normal(size=(n, c))


def test_relu_gain_keeps_the_variance_of_a_relu_of_a_unit_gaussian():
    z = np.random.default_rng(0).normal(size=1_000_000)
    assert RELU_GAIN**2 * np.maximum(z, 0).var() == pytest.approx(1.0, abs=0.01)


def test_ws_dense_gradients_with_trained_gains():
    rng = np.random.default_rng(3)
    layer = WSDense(5, 3, rng)
    layer.g[...] = rng.uniform(0.5, 2.0, size=3)
    layer.b[...] = rng.normal(size=3)
    x, dy = rng.normal(size=(7, 5)), rng.normal(size=(7, 3))
    layer(x)
    assert relative_error(layer.backward(dy), numerical_gradient(layer, x, dy)) < 1e-7
    for p, g in layer.params():

        def f(v, p=p):
            saved = p.copy()
            p[...] = v
            try:
                return layer(x)
            finally:
                p[...] = saved

        assert relative_error(g, numerical_gradient(f, p, dy)) < 1e-7


def test_ws_dense_standardizes_every_column_whatever_the_weights():
    layer = WSDense(50, 4, np.random.default_rng(0), gain=2.0, epsilon=1e-12)
    layer.W[...] = layer.W * [1.0, 10.0, 0.1, 3.0] + [0.0, 5.0, -1.0, 2.0]
    w_hat = layer.standardized()[0]
    np.testing.assert_allclose(w_hat.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(50 * w_hat.var(axis=0), 4.0, rtol=1e-9)  # gain**2


def test_ws_dense_keeps_the_variance_after_a_relu():
    layer = WSDense(512, 512, np.random.default_rng(1))
    x = np.maximum(_batch(4096, 512), 0)
    assert layer(x).var(axis=0).mean() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("kind", ["skipinit", "zero_gamma", "fixup"])
def test_these_blocks_start_as_the_identity(kind):
    model, x = build_resnet(4, kind=kind, seed=0), _batch()
    for block in model.layers[1:5]:
        assert isinstance(block, Residual)
        np.testing.assert_array_equal(block(x, training=True), x)


def test_fixup_starts_with_zero_logits_and_scaled_first_layers():
    model = build_resnet(9, kind="fixup", seed=0)
    assert np.all(model(_batch()) == 0.0)
    first = model.layers[1].layers[1].W
    assert first.std() * np.sqrt(64 / 2) == pytest.approx(1 / 3, rel=0.05)


def test_skipinit_trains_its_gate():
    model, x = build_resnet(2, kind="skipinit", seed=0), _batch()
    _, grads = loss_and_grads(model, x, np.arange(128) % 10)
    gates = [g for (p, _), g in zip(model.params(), grads, strict=True) if p.size == 1]
    assert len(gates) == 2 and all(abs(g[0]) > 0 for g in gates)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_the_gradient_of_its_loss(kind):
    model = build_resnet(2, kind=kind, width=6, n_in=5, n_classes=3, seed=1)
    for p, _ in model.params():  # off the identity and zero logits: every path counts
        p += np.random.default_rng(2).normal(0, 0.3, size=p.shape)
    x, labels = _batch(8, 5, seed=4), np.arange(8) % 3
    _, grads = loss_and_grads(model, x, labels)
    params = [p.copy() for p, _ in model.params()]
    for k in range(len(params)):

        def f(v, k=k):
            at = [*params[:k], v, *params[k + 1 :]]
            return np.array(loss_and_grads(model, x, labels, at=at)[0])

        try:
            numerical = numerical_gradient(f, params[k], 1.0)
        except ValueError:  # a shift of the stream that a batch norm cancels
            assert kind == "zero_gamma" and np.max(np.abs(grads[k])) < 1e-12
            continue
        assert relative_error(grads[k], numerical) < 1e-6


def test_the_streams_variance_at_initialization():
    x = _batch(512)
    rows = {
        kind: signal_propagation(build_resnet(8, kind=kind, seed=0), x, training=True)
        for kind in ("bn", "none", "nf")
    }
    # with batch norm each branch adds about one unit of variance; without, the
    # stream about doubles at each block; normalizer-free, it grows by alpha^2
    assert np.all(np.diff(rows["bn"][:, 1]) > 0.4)
    assert np.all(np.diff(rows["bn"][:, 1]) < 1.5)
    assert np.all(rows["none"][1:, 1] / rows["none"][:-1, 1] > 1.5)
    np.testing.assert_allclose(rows["nf"][:, 1], 1 + 0.04 * np.arange(1, 9), rtol=0.25)
    np.testing.assert_allclose(rows["nf"][:, 2], 0.04, rtol=0.25)


def test_signal_propagation_leaves_the_model_as_it_was():
    model, x = build_resnet(3, kind="bn", seed=0), _batch()
    before = model(x)
    signal_propagation(model, x + 3.0, training=True)
    np.testing.assert_array_equal(model(x), before)


def test_signal_propagation_needs_a_residual_block():
    from bnbook.mlp import build_mlp

    with raises_naming(ValueError, "model"):
        signal_propagation(build_mlp(), _batch(8))


def test_nf_blocks_divide_by_the_expected_standard_deviation():
    model = build_resnet(5, kind="nf", alpha=0.5, seed=0)
    betas = [1 / block.layers[0].a[0] for block in model.layers[1:6]]
    np.testing.assert_allclose(betas, np.sqrt(1 + 0.25 * np.arange(5)))


def test_stable_rank():
    assert stable_rank(np.outer(np.arange(1, 6), [1.0, 2.0])) == pytest.approx(1.0)
    assert stable_rank(np.eye(4)) == pytest.approx(4.0)
    assert stable_rank(np.diag([2.0, 1.0])) == pytest.approx(1.25)


@pytest.mark.parametrize(
    ("h", "error", "name"),
    [
        (np.zeros(3), ValueError, "h"),
        (np.zeros((3, 2)), ValueError, "h"),
        ("ab", TypeError, "h"),
    ],
)
def test_stable_rank_bad_input(h, error, name):
    with raises_naming(error, name):
        stable_rank(h)


def test_unitwise_norm_is_per_column_for_a_matrix_and_whole_for_a_vector():
    w = np.array([[3.0, 0.0], [4.0, 1.0]])
    np.testing.assert_allclose(unitwise_norm(w), [[5.0, 1.0]])
    assert unitwise_norm(np.array([3.0, 4.0])) == 5.0
    assert np.shape(unitwise_norm(np.array([3.0, 4.0]))) == ()


def test_clip_unitwise_clips_only_the_units_over_the_ratio():
    w = np.array([[3.0, 0.0], [4.0, 0.0]])  # unit norms 5 and 0 (-> epsilon)
    g = np.array([[0.3, 1.0], [0.4, 0.0]])  # ratios 0.1 and 1 / epsilon
    clipped = clip_unitwise(w, g, clipping=0.5, epsilon=0.01)
    np.testing.assert_array_equal(clipped[:, 0], g[:, 0])
    np.testing.assert_allclose(clipped[:, 1], [0.005, 0.0])
    assert unitwise_norm(clip_unitwise(w, g, 0.01))[0, 0] == pytest.approx(0.05)


def test_agc_passes_its_epsilon_on():
    w, g = np.zeros((2, 1)), np.ones((2, 1))  # ||w|| = 0: the bound is clipping * eps
    AGC(SGD(1.0), clipping=0.5, epsilon=0.2).step([(w, g)])
    np.testing.assert_allclose(unitwise_norm(w), [[0.1]])


def test_agc_clips_then_steps_and_leaves_the_unclipped_alone():
    w, u = np.array([[3.0], [4.0]]), np.array([[3.0], [4.0]])
    g = np.array([[3.0], [4.0]])
    AGC(SGD(1.0), clipping=0.1, unclipped=[u]).step([(w, g), (u, g)])
    np.testing.assert_allclose(w, [[2.7], [3.6]])
    np.testing.assert_allclose(u, [[0.0], [0.0]])


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: build_resnet(0, kind="bn"), ValueError, "blocks"),
        (lambda: build_resnet(2, kind="batch"), ValueError, "kind"),
        (lambda: build_resnet(2, kind="nf", alpha=0), ValueError, "alpha"),
        (lambda: build_resnet(2.0, kind="bn"), TypeError, "blocks"),
        (lambda: Scale("1"), TypeError, "value"),
        (lambda: Scale(1.0, trainable=1), TypeError, "trainable"),
        (lambda: WSDense(3, 2, np.random.default_rng(0), gain=0), ValueError, "gain"),
        (lambda: WSDense(0, 2, np.random.default_rng(0)), ValueError, "n_in"),
        (lambda: clip_unitwise(np.ones(2), np.ones(2), 0), ValueError, "clipping"),
        (lambda: clip_unitwise(np.ones(2), np.ones(3), 1), ValueError, "g"),
        (lambda: clip_unitwise(np.ones(2), np.ones(2), 1, -1), ValueError, "epsilon"),
        (lambda: AGC(0.1), TypeError, "optimizer"),
        (lambda: AGC(SGD(0.1), clipping=0), ValueError, "clipping"),
        (lambda: AGC(SGD(0.1), epsilon=0), ValueError, "epsilon"),
        (lambda: WSDense(2, 0, np.random.default_rng(0)), ValueError, "n_out"),
        (
            lambda: WSDense(2, 2, np.random.default_rng(0), epsilon=0),
            ValueError,
            "epsilon",
        ),
    ],
)
def test_bad_arguments(call, error, name):
    with raises_naming(error, name):
        call()


def _types(layers):
    return [type(layer).__name__ for layer in layers]


BRANCHES = {
    "bn": ["BatchNorm", "ReLU", "Dense", "BatchNorm", "ReLU", "Dense"],
    "none": ["ReLU", "Dense", "ReLU", "Dense"],
    "skipinit": ["ReLU", "Dense", "ReLU", "Dense", "Scale"],
    "zero_gamma": ["Dense", "BatchNorm", "ReLU", "Dense", "BatchNorm"],
    "fixup": [
        *["ScalarBias", "Dense", "ScalarBias", "ReLU"],
        *["ScalarBias", "Dense", "Scale", "ScalarBias"],
    ],
    "nf": ["Scale", "ReLU", "WSDense", "ReLU", "WSDense", "Scale"],
}


@pytest.mark.parametrize("kind", KINDS)
def test_the_layers_of_each_kind(kind):
    model = build_resnet(2, kind=kind, width=8, n_in=5, n_classes=3, seed=0)
    normalized = kind in ("bn", "zero_gamma")
    head = ["BatchNorm", "ReLU", "Dense"] if normalized else ["ReLU", "Dense"]
    assert _types(model.layers) == ["Dense", "Residual", "Residual", *head]
    assert _types(model.layers[1].layers) == BRANCHES[kind]
    assert (model.layers[0].b is None) == normalized  # the stream's shift is cancelled
    biases = [
        layer.b is not None for layer in model.layers[1].layers if type(layer) is Dense
    ]
    assert biases == {"none": [True, True], "skipinit": [True, True], "nf": []}.get(
        kind, [False, False]
    )
    assert model.layers[0].W.shape == (5, 8) and model.layers[-1].W.shape == (8, 3)
    assert model.layers[-1].b is not None


def test_the_scalars_of_fixup_skipinit_and_nf():
    fixup = build_resnet(2, kind="fixup", seed=0).layers[1].layers
    assert fixup[6].a[0] == 1.0 and fixup[6].trainable
    assert all(layer.b[0] == 0.0 for layer in fixup if isinstance(layer, ScalarBias))
    skip = build_resnet(2, kind="skipinit", seed=0).layers[1].layers[-1]
    assert skip.a[0] == 0.0 and skip.trainable
    nf = build_resnet(2, kind="nf", alpha=0.3, seed=0).layers[2].layers
    assert nf[-1].a[0] == 0.3 and not nf[-1].trainable and not nf[0].trainable
    zero = build_resnet(2, kind="zero_gamma", seed=0).layers[1].layers
    assert np.all(zero[-1].gamma == 0.0) and np.all(zero[1].gamma == 1.0)


def test_the_seed_decides_the_weights():
    a, b, c = (build_resnet(2, kind="none", seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.layers[1].layers[1].W, b.layers[1].layers[1].W)
    assert not np.array_equal(a.layers[1].layers[1].W, c.layers[1].layers[1].W)


def test_the_smallest_networks_build():
    model = build_resnet(1, kind="nf", width=1, n_in=1, n_classes=1, seed=0)
    assert model(np.ones((3, 1))).shape == (3, 1)
    assert WSDense(1, 1, np.random.default_rng(0), gain=0.5).gain == 0.5


def test_signal_propagation_against_a_hand_computation():
    model = build_resnet(2, kind="bn", width=5, n_in=3, seed=0)
    x = np.random.default_rng(1).normal(size=(7, 3)) + [1.0, -2.0, 3.0]
    for training in (True, False):
        rows = signal_propagation(model, x, training=training)
        h = model.layers[0](x)
        for k, block in enumerate(model.layers[1:3]):
            f = h
            for layer in block.layers:
                f = layer(f, training=training)
            h = h + f
            expected = [
                np.mean(h.mean(axis=0) ** 2),
                h.var(axis=0).mean(),
                f.var(axis=0).mean(),
            ]
            np.testing.assert_allclose(rows[k], expected, rtol=1e-12)


def test_ws_dense_adds_epsilon_to_the_scaled_variance():
    layer = WSDense(4, 2, np.random.default_rng(0), gain=1.0, epsilon=1.0)
    centred = layer.W - layer.W.mean(axis=0)
    expected = centred / np.sqrt(np.sum(centred**2, axis=0) + 1.0)
    np.testing.assert_allclose(layer.standardized()[0], expected, rtol=1e-12)


def test_stable_rank_of_an_exact_rank_one_matrix():
    assert stable_rank(np.array([[1.0, 0.0], [2.0, 0.0]])) == pytest.approx(1.0)


def test_unitwise_norm_of_a_scalar():
    assert unitwise_norm(np.float64(-3.0)) == 3.0


def test_scalar_gradients_are_none_before_a_backward_pass():
    assert Scale().params()[0][1] is None and ScalarBias().params()[0][1] is None


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"width": 0}, ValueError, "width"),
        ({"n_in": 0}, ValueError, "n_in"),
        ({"n_classes": 0}, ValueError, "n_classes"),
        ({"seed": "0"}, TypeError, "seed"),
        ({"width": 2.0}, TypeError, "width"),
    ],
)
def test_build_resnet_bad_sizes(kwargs, error, name):
    with raises_naming(error, name):
        build_resnet(2, kind="bn", **kwargs)
