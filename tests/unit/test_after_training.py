"""Chapter 11's experiments: the moving statistics' error, the shifted digits, accuracy
on adapted test batches, and the average of the weights."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.adaptation import batch_norms
from bnbook.batchnorm import BatchNorm
from bnbook.data import load_digits_split
from bnbook.experiments.after_training import (
    CORRUPTIONS,
    WeightAverage,
    adapted_accuracy,
    corrupt,
    shifted_test_set,
    statistics_error,
    train_digits,
)
from bnbook.mlp import accuracy, build_mlp, train_mlp
from bnbook.optim import SGD


@pytest.fixture(scope="module")
def data():
    return load_digits_split(seed=0, dtype=np.float64)


@pytest.fixture(scope="module")
def trained(data):
    model = build_mlp((64, 16, 16, 10), norm=BatchNorm, seed=0)
    train_mlp(model, data, optimizer=SGD(0.1), steps=60, batch_size=32, seed=0)
    return model


def test_statistics_error_is_zero_for_population_statistics(trained, data):
    error = statistics_error(trained, data.x_train)
    assert error.shape == (2, 3) and np.all(error[:, 0] > 0)
    saved = [bn.moving_mean.copy() for bn in batch_norms(trained)]
    for bn, m in zip(batch_norms(trained), saved, strict=True):
        np.testing.assert_array_equal(bn.moving_mean, m)  # left as it was
    model = build_mlp((64, 16, 16, 10), norm=BatchNorm, seed=0)
    model.calibrate(data.x_train)
    np.testing.assert_allclose(
        statistics_error(model, data.x_train)[:, :2], 0, atol=1e-12
    )


def test_statistics_error_says_which_way_the_variance_is_off(data):
    model = build_mlp((64, 16, 10), norm=BatchNorm, seed=0)
    model.calibrate(data.x_train)
    (bn,) = batch_norms(model)
    mean, var = bn.moving_mean.copy(), bn.moving_variance.copy()
    bn.set_moving_statistics(
        mean + 0.5 * np.sqrt(var + bn.epsilon), 2 * var + bn.epsilon
    )
    (row,) = statistics_error(model, data.x_train)
    np.testing.assert_allclose(row, [0.5, np.log(2), np.mean(np.log(var + bn.epsilon))])
    with raises_naming(ValueError, "batch norm"):
        statistics_error(build_mlp((64, 10)), data.x_train)


def test_corrupt_each_kind():
    images = load_digits_split(seed=0, standardize=False, dtype=np.float64).x_test[:20]
    np.testing.assert_array_equal(corrupt(images, "clean"), images)
    noisy = corrupt(images, "noise", seed=4)
    np.testing.assert_array_equal(noisy, corrupt(images, "noise", seed=4))
    assert not np.array_equal(noisy, corrupt(images, "noise", seed=5))
    assert noisy.min() >= 0 and noisy.max() <= 16
    assert 0.5 < np.std(noisy - images) < 1.0  # sigma 1, less where clipped at 0 or 16
    low = corrupt(images, "contrast")
    np.testing.assert_allclose(low.mean(axis=1), images.mean(axis=1))
    np.testing.assert_allclose(low.std(axis=1), 0.7 * images.std(axis=1))
    blurred = corrupt(images, "blur")
    np.testing.assert_allclose(blurred.sum(axis=1), images.sum(axis=1), rtol=1e-6)
    assert np.all(blurred.std(axis=1) < images.std(axis=1))
    shifted = corrupt(images, "shift").reshape(-1, 8, 8)
    square = images.reshape(-1, 8, 8)
    np.testing.assert_array_equal(shifted[:, :, 1:], square[:, :, :-1])
    np.testing.assert_array_equal(shifted[:, :, 0], 0)
    assert set(CORRUPTIONS) == {"noise", "contrast", "blur", "shift"}


def test_corrupt_bad_arguments():
    with raises_naming(ValueError, "kind"):
        corrupt(np.zeros((2, 64)), "rotate")
    with raises_naming(ValueError, "images"):
        corrupt(np.zeros((2, 63)), "blur")
    with raises_naming(TypeError, "seed"):
        corrupt(np.zeros((2, 64)), "noise", seed=0.5)


def test_shifted_test_set_is_standardized_as_the_training_data(data):
    x, y = shifted_test_set("clean", seed=0)
    np.testing.assert_allclose(x, data.x_test, atol=1e-12)
    np.testing.assert_array_equal(y, data.y_test)
    x, _ = shifted_test_set("contrast", seed=0)
    assert not np.allclose(x, data.x_test)


def test_adapted_accuracy(trained, data):
    x, y = data.x_test, data.y_test
    whole = adapted_accuracy(trained, x, y, batch_size=len(x), prior=np.inf)
    assert whole == accuracy(trained, x, y)
    # batches of 100 of the 450: the last 50 are dropped
    assert adapted_accuracy(trained, x, y, batch_size=100, prior=np.inf) == accuracy(
        trained, x[:400], y[:400]
    )
    order = np.random.default_rng(0).permutation(len(x))
    shuffled = adapted_accuracy(
        trained, x, y, batch_size=100, prior=np.inf, order=order
    )
    assert shuffled == accuracy(trained, x[order[:400]], y[order[:400]])
    # one example alone under its own statistics: every prediction the same class
    alone = adapted_accuracy(trained, x, y, batch_size=1, prior=0)
    assert alone in {float(np.mean(y == k)) for k in range(10)}
    with raises_naming(ValueError, "batch_size"):
        adapted_accuracy(trained, x, y, batch_size=len(x) + 1, prior=0)
    with raises_naming(ValueError, "batch_size"):
        adapted_accuracy(trained, x, y, batch_size=0, prior=0)
    with raises_naming(TypeError, "batch_size"):
        adapted_accuracy(trained, x, y, batch_size=2.0, prior=0)
    with raises_naming(ValueError, "order"):
        adapted_accuracy(trained, x, y, batch_size=10, prior=0, order=np.zeros(len(x)))


def test_weight_average_follows_the_formula(data):
    model = build_mlp((64, 8, 10), norm=BatchNorm, seed=0)
    average = WeightAverage(0.9)
    history = []

    def record(step, m):
        average.update(step, m)
        (bn,) = batch_norms(m)
        history.append(
            (
                [p.copy() for p, _ in m.params()],
                bn.moving_mean.copy(),
                bn.moving_variance.copy(),
            )
        )

    train_mlp(
        model,
        data,
        optimizer=SGD(0.1),
        steps=5,
        batch_size=32,
        callback=record,
        callback_every=1,
    )
    expected = [p.copy() for p in history[0][0]]
    mean, variance = history[0][1].copy(), history[0][2].copy()
    for params, m, v in history[1:]:
        expected = [0.9 * e + 0.1 * p for e, p in zip(expected, params, strict=True)]
        mean = 0.9 * mean + 0.1 * m
        variance = 0.9 * variance + 0.1 * v
    last = [p.copy() for p, _ in model.params()]
    inherited = average.model(model)
    for (p, _), e in zip(inherited.params(), expected, strict=True):
        np.testing.assert_allclose(p, e)
    for (p, _), q in zip(model.params(), last, strict=True):
        np.testing.assert_array_equal(p, q)  # the network itself is not changed
    (bn,) = batch_norms(inherited)
    np.testing.assert_array_equal(bn.moving_mean, batch_norms(model)[0].moving_mean)
    (bn,) = batch_norms(average.model(model, "averaged"))
    np.testing.assert_allclose(bn.moving_mean, mean)
    np.testing.assert_allclose(bn.moving_variance, variance)
    assert inherited is not model


def test_weight_average_bad_arguments():
    model = build_mlp((4, 3), seed=0)
    with raises_naming(ValueError, "decay"):
        WeightAverage(1.0)
    with raises_naming(TypeError, "decay"):
        WeightAverage("0.9")
    average = WeightAverage()
    with raises_naming(ValueError, "^no average yet"):
        average.model(model)
    average.update(0, model)
    with raises_naming(ValueError, "statistics"):
        average.model(model, "recomputed")


def test_train_digits_measures_and_averages():
    average = WeightAverage(0.9)
    model, data, errors = train_digits(0, 0.1, steps=40, every=20, average=average)
    assert errors.shape == (2, 3)
    np.testing.assert_allclose(errors[-1], statistics_error(model, data.x_train)[-1])
    assert average.params is not None
    assert 0.5 < accuracy(model, data.x_test, data.y_test) <= 1
    _, _, each = train_digits(0, 0.1, steps=2, every=1)
    assert each.shape == (2, 3)
    _, _, none = train_digits(0, 0.1, steps=10, every=20)
    assert none.shape == (0, 3)
    with raises_naming(ValueError, "every"):
        train_digits(0, 0.1, steps=10, every=0)


def test_train_digits_is_the_chapter_protocol():
    from bnbook.mlp import train_mlp as reference_train

    model, data, _ = train_digits(3, 0.2, steps=6, every=6)
    expected = build_mlp((64, 100, 100, 10), norm=BatchNorm, seed=3)
    same_data = load_digits_split(seed=3, dtype=np.float64)
    np.testing.assert_array_equal(data.x_train, same_data.x_train)
    reference_train(
        expected,
        same_data,
        optimizer=SGD(0.2, 0.9, 5e-4),
        steps=6,
        batch_size=64,
        seed=3,
    )
    for (p, _), (q, _) in zip(model.params(), expected.params(), strict=True):
        np.testing.assert_array_equal(p, q)
    # the average is updated after every step, from the initial weights on
    average = WeightAverage(0.5)
    _, _, errors = train_digits(3, 0.2, steps=4, every=2, average=average)
    assert errors.shape == (2, 3)
    model = build_mlp((64, 100, 100, 10), norm=BatchNorm, seed=3)
    history = [[p.copy() for p, _ in model.params()]]
    reference_train(
        model,
        same_data,
        optimizer=SGD(0.2, 0.9, 5e-4),
        steps=4,
        batch_size=64,
        seed=3,
        callback=lambda step, m: history.append([p.copy() for p, _ in m.params()]),
        callback_every=1,
    )
    mean = history[0]  # history[1] is the callback's step 0: the same weights
    for params in history[2:]:
        mean = [0.5 * a + 0.5 * p for a, p in zip(mean, params, strict=True)]
    for a, e in zip(average.params, mean, strict=True):
        np.testing.assert_allclose(a, e)


def test_corrupt_exact_values():
    from scipy import ndimage

    images = load_digits_split(seed=1, standardize=False, dtype=np.float64).x_test[:10]
    square = images.reshape(-1, 8, 8)
    noise = np.random.default_rng(7).normal(0.0, 1.0, square.shape)
    np.testing.assert_array_equal(
        corrupt(images, "noise", seed=7), np.clip(square + noise, 0, 16).reshape(-1, 64)
    )
    mean = square.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(
        corrupt(images, "contrast"), (mean + 0.7 * (square - mean)).reshape(-1, 64)
    )
    np.testing.assert_array_equal(
        corrupt(images, "blur"),
        ndimage.gaussian_filter(square, sigma=(0, 0.6, 0.6)).reshape(-1, 64),
    )
    assert corrupt(images.astype(np.int64), "shift").dtype == np.float64
    with raises_naming(ValueError, "^kind must be 'clean' or one of noise, contrast"):
        corrupt(images, "rotate")


def test_shifted_test_set_uses_the_seed_for_split_and_noise():
    raw = load_digits_split(seed=4, standardize=False, dtype=np.float64)
    mu, sigma = raw.x_train.mean(axis=0), raw.x_train.std(axis=0)
    sigma[sigma == 0] = 1.0
    x, y = shifted_test_set("noise", seed=4)
    np.testing.assert_allclose(x, (corrupt(raw.x_test, "noise", seed=4) - mu) / sigma)
    np.testing.assert_array_equal(y, raw.y_test)
    assert np.all(np.isfinite(x))
