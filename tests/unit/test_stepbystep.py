"""Chapter 3's measurements: gradients four ways, and the float32 variance's error."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.batchnorm import batch_norm_backward, batch_norm_forward
from bnbook.experiments.stepbystep import four_ways, tf_gradients, variance_errors


def test_tf_gradients_are_the_compact_backward(tf_keras):
    rng = np.random.default_rng(0)
    x, dy = rng.normal(size=(6, 2, 3)), rng.normal(size=(6, 2, 3))
    gamma, beta = rng.uniform(0.5, 2.0, size=2), rng.normal(size=2)
    grads = tf_gradients(x, gamma, beta, dy, axis=1)
    assert [g.shape for g in grads] == [(6, 2, 3), (2,), (2,)]
    _, cache = batch_norm_forward(x, gamma, beta, axis=1)
    for ours, theirs in zip(batch_norm_backward(dy, cache), grads, strict=True):
        np.testing.assert_allclose(theirs, ours, rtol=1e-10, atol=1e-12)


def test_four_ways_agree_and_draw_from_rng(tf_keras):
    errors = four_ways((5, 3), -1, np.random.default_rng(1))
    assert set(errors) == {"staged", "TF autodiff", "finite diff."}
    assert errors["staged"] < 1e-12 and errors["TF autodiff"] < 1e-12
    assert errors["finite diff."] < 1e-6
    again = four_ways((5, 3), -1, np.random.default_rng(1))
    assert again["staged"] == errors["staged"]


@pytest.mark.parametrize(
    ("shape", "axis", "rng", "error", "name"),
    [
        ((5,), 0, np.random.default_rng(0), ValueError, "shape"),
        ((5, 0), 0, np.random.default_rng(0), ValueError, "shape"),
        ((5, 3), 2, np.random.default_rng(0), ValueError, "axis"),
        ((5, 3), -1, 0, TypeError, "rng"),
    ],
)
def test_four_ways_bad_input(shape, axis, rng, error, name):
    with raises_naming(error, name):
        four_ways(shape, axis, rng)


def test_variance_errors_shape_and_the_one_pass_loss():
    small = variance_errors(0, range(3), m=100)
    assert small.shape == (3, 2)
    assert np.all(small < 1e-5)  # at offset 0 both are float32-accurate
    large = variance_errors(1e4, range(3), m=100)
    assert np.all(large[:, 1] >= 0.5) and np.all(large[:, 0] < 1e-3)
    np.testing.assert_array_equal(variance_errors(1e4, [1], m=100), large[1:2])


@pytest.mark.parametrize(
    ("offset", "seeds", "m", "error", "name"),
    [
        ("1", [0], 10, TypeError, "offset"),
        (0.0, [], 10, ValueError, "seeds"),
        (0.0, [-1], 10, ValueError, "seeds"),
        (0.0, [0], 1, ValueError, "m"),
    ],
)
def test_variance_errors_bad_input(offset, seeds, m, error, name):
    with raises_naming(error, name):
        variance_errors(offset, seeds, m=m)
