"""Batch norm at test time: statistics mixed with a prior, the entropy, and TENT."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.adaptation import batch_norms, predict_adapted, softmax_entropy, tent
from bnbook.batchnorm import BatchNorm
from bnbook.data import load_digits_split
from bnbook.gradcheck import numerical_gradient
from bnbook.layers import Dense, Sequential
from bnbook.mlp import build_mlp, train_mlp
from bnbook.optim import SGD


@pytest.fixture(scope="module")
def trained():
    data = load_digits_split(seed=0, dtype=np.float64)
    model = build_mlp((64, 16, 16, 10), norm=BatchNorm, seed=0)
    train_mlp(model, data, optimizer=SGD(0.1), steps=60, batch_size=32, seed=0)
    return model, data


def test_batch_norms_in_order_nested_too():
    flat = build_mlp((4, 5, 6, 3), norm=BatchNorm)
    assert [bn.gamma.size for bn in batch_norms(flat)] == [5, 6]
    nested = build_mlp((4, 5, 5, 5, 3), norm=BatchNorm, residual=True)
    assert [bn.gamma.size for bn in batch_norms(nested)] == [5, 5, 5]
    assert batch_norms(build_mlp((4, 5, 3))) == []


def test_infinite_prior_is_inference(trained):
    model, data = trained
    x = data.x_test[:50]
    np.testing.assert_array_equal(predict_adapted(model, x, np.inf), model(x))


@pytest.mark.parametrize("residual", [False, True])
def test_zero_prior_normalizes_with_the_batch_statistics(residual):
    model = build_mlp((6, 5, 5, 5, 3), norm=BatchNorm, residual=residual, seed=1)
    x = np.random.default_rng(0).normal(2.0, 3.0, (40, 6))
    adapted = predict_adapted(model, x, 0)
    model.calibrate(x)  # every batch norm's statistics from this batch, in order
    np.testing.assert_allclose(adapted, model(x), rtol=1e-12, atol=1e-12)


def test_a_prior_mixes_the_statistics_n_to_N():
    bn = BatchNorm()
    bn.build(3, np.float64)
    bn.gamma[:] = [1.0, 2.0, 0.5]
    bn.beta[:] = [0.0, 1.0, -1.0]
    bn.set_moving_statistics(np.array([1.0, -1.0, 0.0]), np.array([4.0, 1.0, 9.0]))
    x = np.random.default_rng(1).normal(size=(6, 3))
    w = 12 / (12 + 6)  # N = 12, n = 6
    mu = w * bn.moving_mean + (1 - w) * x.mean(axis=0)
    var = w * bn.moving_variance + (1 - w) * x.var(axis=0)
    expected = bn.gamma * (x - mu) / np.sqrt(var + bn.epsilon) + bn.beta
    np.testing.assert_allclose(predict_adapted(Sequential([bn]), x, 12), expected)
    # the model itself is not changed
    np.testing.assert_array_equal(bn.moving_mean, [1.0, -1.0, 0.0])


def test_one_example_alone_gives_every_input_the_same_output(trained):
    model, data = trained
    outputs = np.concatenate(
        [predict_adapted(model, x[None], 0) for x in data.x_test[:5]]
    )
    np.testing.assert_allclose(outputs, outputs[[0]].repeat(5, axis=0), atol=1e-12)


def test_predict_adapted_bad_arguments(trained):
    model, data = trained
    with raises_naming(ValueError, "prior"):
        predict_adapted(model, data.x_test, -1)
    with raises_naming(ValueError, "prior"):
        predict_adapted(model, data.x_test, np.nan)
    with raises_naming(TypeError, "prior"):
        predict_adapted(model, data.x_test, "16")
    with raises_naming(ValueError, "x"):
        predict_adapted(model, data.x_test[0], 0)
    with raises_naming(ValueError, "x"):
        predict_adapted(model, data.x_test[:0], 0)
    other_axis = Sequential([Dense(4, 3, np.random.default_rng(0)), BatchNorm(axis=0)])
    with raises_naming(ValueError, "axis"):
        predict_adapted(other_axis, np.ones((5, 4)), 0)


def test_softmax_entropy_and_its_gradient():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(7, 4)) * 3
    h, dlogits = softmax_entropy(logits)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert h == pytest.approx(-(p * np.log(p)).sum(axis=1).mean())
    numeric = numerical_gradient(lambda z: softmax_entropy(z)[0], logits, np.float64(1))
    np.testing.assert_allclose(dlogits, numeric, rtol=1e-5, atol=1e-9)
    # uniform predictions: the largest entropy, log K, where the gradient is zero
    h, dlogits = softmax_entropy(np.full((3, 5), 7.0))
    assert h == pytest.approx(np.log(5))
    np.testing.assert_allclose(dlogits, 0, atol=1e-15)
    assert softmax_entropy(np.array([[1e4, 0.0]]))[0] == pytest.approx(0, abs=1e-12)
    with raises_naming(ValueError, "logits"):
        softmax_entropy(np.zeros(3))


def test_tent_changes_only_gamma_and_beta_of_a_copy(trained):
    model, data = trained
    before = [p.copy() for p, _ in model.params()]
    moving = [bn.moving_mean.copy() for bn in batch_norms(model)]
    adapted = tent(model, data.x_test, lr=0.1, batch_size=32, passes=2, seed=3)
    for p, b in zip((p for p, _ in model.params()), before, strict=True):
        np.testing.assert_array_equal(p, b)  # the model is not changed
    is_bn = {id(p) for bn in batch_norms(adapted) for p, _ in bn.params()}
    changed = [
        not np.array_equal(p, b)
        for (p, _), b in zip(adapted.params(), before, strict=True)
        if id(p) in is_bn
    ]
    assert all(changed) and len(changed) == 4
    for (p, _), b in zip(adapted.params(), before, strict=True):
        if id(p) not in is_bn:
            np.testing.assert_array_equal(p, b)
    for bn, m in zip(batch_norms(adapted), moving, strict=True):
        np.testing.assert_array_equal(bn.moving_mean, m)


def test_tent_lowers_the_entropy_of_the_batches_it_adapted_on(trained):
    model, data = trained
    x = data.x_test[:256]
    adapted = tent(model, x, lr=0.1, batch_size=64, passes=3, seed=0)

    def entropy(m):
        return np.mean(
            [
                softmax_entropy(m(x[i : i + 64], training=True))[0]
                for i in range(0, 256, 64)
            ]
        )

    assert entropy(adapted) < entropy(model)


def test_tent_without_shuffling_takes_the_batches_in_order(trained):
    model, data = trained
    x = data.x_test[:96]
    a = tent(model, x, lr=0.1, batch_size=32, shuffle=False, seed=0)
    b = tent(model, x, lr=0.1, batch_size=32, shuffle=False, seed=1)
    c = tent(model, x, lr=0.1, batch_size=32, seed=1)
    np.testing.assert_array_equal(a.layers[1].gamma, b.layers[1].gamma)
    assert not np.array_equal(a.layers[1].gamma, c.layers[1].gamma)


def test_tent_bad_arguments(trained):
    model, data = trained
    x = data.x_test[:40]
    with raises_naming(ValueError, "lr"):
        tent(model, x, lr=0)
    with raises_naming(ValueError, "passes"):
        tent(model, x, lr=0.1, batch_size=8, passes=0)
    with raises_naming(ValueError, "batch_size"):
        tent(model, x, lr=0.1, batch_size=1)
    with raises_naming(ValueError, "batch_size"):
        tent(model, x, lr=0.1, batch_size=41)
    with raises_naming(TypeError, "shuffle"):
        tent(model, x, lr=0.1, batch_size=8, shuffle=1)
    with raises_naming(ValueError, "batch norm"):
        tent(build_mlp((64, 10)), x, lr=0.1, batch_size=8)


@pytest.mark.parametrize("shuffle", [True, False])
def test_tent_is_entropy_sgd_on_gamma_and_beta(trained, shuffle):
    import copy

    model, data = trained
    x = data.x_test[:96]  # 3 batches of 32, the last one ending at the last input
    adapted = tent(
        model,
        x,
        lr=0.05,
        batch_size=32,
        passes=2,
        momentum=0.5,
        shuffle=shuffle,
        seed=9,
    )
    expected = copy.deepcopy(model)
    optimizer = SGD(0.05, 0.5)
    rng = np.random.default_rng(9)
    for _ in range(2):
        order = rng.permutation(96) if shuffle else np.arange(96)
        for start in (0, 32, 64):
            logits = expected(x[order[start : start + 32]], training=True)
            expected.backward(softmax_entropy(logits)[1])
            optimizer.step(
                [pair for bn in batch_norms(expected) for pair in bn.params()]
            )
    for a, e in zip(batch_norms(adapted), batch_norms(expected), strict=True):
        np.testing.assert_allclose(a.gamma, e.gamma, rtol=1e-12)
        np.testing.assert_allclose(a.beta, e.beta, rtol=1e-12)
    tent(model, x, lr=0.05, batch_size=96)  # one batch of all the inputs is allowed
    tent(model, x, lr=0.05, batch_size=2)  # the smallest batch training mode takes
    with raises_naming(TypeError, "seed"):
        tent(model, x, lr=0.05, seed=1.5)
    with raises_naming(
        ValueError, "^model has no batch norm whose gamma and beta TENT"
    ):
        tent(build_mlp((64, 10)), x, lr=0.1, batch_size=8)
