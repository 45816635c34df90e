"""Moving statistics under each convention, and the one-pass variance."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.batchnorm import BatchNorm
from bnbook.conventions import (
    CONVENTIONS,
    moving_statistics,
    one_pass_variance,
    population_statistics,
    steps_to_follow,
)


def batches(n=5, m=6, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal([1.0, -3.0], [2.0, 0.5], size=(m, 2)) for _ in range(n)]


def test_keras_convention_is_the_book_layer():
    c = CONVENTIONS["keras3"]
    layer = BatchNorm(momentum=c.momentum, epsilon=c.epsilon)
    for b in batches():
        layer(b, training=True)
    mean, var = moving_statistics(batches(), c.momentum, c.unbiased_moving_variance)
    np.testing.assert_allclose(mean, layer.moving_mean, rtol=1e-13)
    np.testing.assert_allclose(var, layer.moving_variance, rtol=1e-13)


def test_pytorch_convention_by_hand():
    # PyTorch's update, as its documentation writes it: momentum=0.1 weights the new
    # value, and running_var averages the unbiased batch variance.
    momentum = 0.1
    running_mean, running_var = np.zeros(2), np.ones(2)
    for b in batches():
        running_mean = (1 - momentum) * running_mean + momentum * b.mean(axis=0)
        running_var = (1 - momentum) * running_var + momentum * b.var(axis=0, ddof=1)
    c = CONVENTIONS["pytorch"]
    mean, var = moving_statistics(batches(), c.momentum, c.unbiased_moving_variance)
    np.testing.assert_allclose(mean, running_mean, rtol=1e-13)
    np.testing.assert_allclose(var, running_var, rtol=1e-13)


def test_population_statistics_are_unbiased():
    bs = batches(n=4000, m=4, seed=1)
    mean, var = population_statistics(bs)
    np.testing.assert_allclose(mean, [1.0, -3.0], atol=0.03)
    np.testing.assert_allclose(var, [4.0, 0.25], rtol=0.03)


def test_conv_axis():
    rng = np.random.default_rng(2)
    imgs = [rng.normal(size=(2, 3, 4, 4)) for _ in range(3)]
    mean, _ = moving_statistics(imgs, 0.0, False, axis=1)
    np.testing.assert_allclose(mean, imgs[-1].mean(axis=(0, 2, 3)), rtol=1e-13)


def test_one_pass_variance_fails_in_float32_at_a_large_offset():
    z = np.random.default_rng(3).normal(size=(1000, 1))
    np.testing.assert_allclose(one_pass_variance(z), z.var(axis=0), rtol=1e-12)
    x = (1e4 + z).astype(np.float32)
    assert one_pass_variance(x).dtype == np.float32
    assert abs(one_pass_variance(x)[0] - x.astype(np.float64).var()) > 0.5


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: moving_statistics([], 0.9, False), ValueError, "batches"),
        (lambda: moving_statistics(batches(), 1.5, False), ValueError, "momentum"),
        (
            lambda: moving_statistics([np.ones(3)], 0.9, False),
            ValueError,
            "batches",
        ),
        (lambda: population_statistics([]), ValueError, "batches"),
        (
            lambda: population_statistics([np.ones((3, 2)), np.ones((4, 2))]),
            ValueError,
            "^all batches must have the same size m$",
        ),
        (lambda: one_pass_variance(np.ones((3, 2)), axis=2), ValueError, "axis"),
        (lambda: one_pass_variance(np.array(["a", "b"])), TypeError, "x"),
    ],
)
def test_bad_input(call, error, name):
    with raises_naming(error, name):
        call()


@pytest.mark.parametrize("momentum", [0.5, 0.9, 0.99])
def test_steps_to_follow_counts_the_calls_to_reach_the_fraction(momentum):
    batch = np.array([[1.0], [3.0]])  # mean 2: after t calls 2 (1 - momentum**t)
    predicted = int(np.ceil(np.log(0.01) / np.log(momentum)))
    assert steps_to_follow(BatchNorm(momentum=momentum), batch) == predicted
    assert steps_to_follow(BatchNorm(momentum=momentum), batch, 0.5) == int(
        np.ceil(np.log(0.5) / np.log(momentum))
    )


def test_steps_to_follow_refuses_what_it_cannot_follow():
    with pytest.raises(ValueError, match="^batch must have a mean > 0"):
        steps_to_follow(BatchNorm(), np.array([[-1.0], [0.0]]))
    with pytest.raises(ValueError, match="within 3 steps"):
        steps_to_follow(BatchNorm(momentum=0.99), np.array([[1.0], [3.0]]), limit=3)


def test_statistics_of_a_single_batch_and_of_several_features():
    batch = np.array([[1.0, 10.0], [3.0, 10.0], [8.0, 13.0]])
    mean, var = population_statistics([batch])
    np.testing.assert_allclose(mean, [4.0, 11.0], rtol=1e-15)
    np.testing.assert_allclose(var, batch.var(axis=0, ddof=1), rtol=1e-15)
    mean, var = moving_statistics([batch], 0.25, False)  # from (0, 1)
    np.testing.assert_allclose(mean, 0.75 * batch.mean(axis=0), rtol=1e-15)
    np.testing.assert_allclose(var, 0.25 + 0.75 * batch.var(axis=0), rtol=1e-15)
    np.testing.assert_allclose(one_pass_variance(batch), batch.var(axis=0), rtol=1e-12)
    with raises_naming(TypeError, "^each of batches must be"):
        moving_statistics([np.array(["a", "b"])], 0.9, False)


def test_steps_to_follow_stops_at_its_limit_exactly():
    batch = np.array([[1.0], [3.0]])
    needed = steps_to_follow(BatchNorm(momentum=0.9), batch)
    assert steps_to_follow(BatchNorm(momentum=0.9), batch, limit=needed) == needed
    with raises_naming(
        ValueError, f"^the moving mean did not follow within {needed - 1}"
    ):
        steps_to_follow(BatchNorm(momentum=0.9), batch, limit=needed - 1)
    with raises_naming(ValueError, "^batch must have a mean > 0"):
        steps_to_follow(BatchNorm(), np.array([[-1.0], [1.0]]))  # a mean of exactly 0
    with raises_naming(TypeError, "^batch must be"):
        steps_to_follow(BatchNorm(), "a batch")


class Stuck:
    """A layer whose moving mean never moves."""

    moving_mean = np.zeros(1)

    def __call__(self, x, training=False):
        return x


def test_steps_to_follow_gives_up_after_100_000_calls_by_default():
    with raises_naming(ValueError, "within 100000 steps$"):
        steps_to_follow(Stuck(), np.array([[1.0], [3.0]]))
