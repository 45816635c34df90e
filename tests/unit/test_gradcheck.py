"""The gradient checker, on functions with known gradients."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.gradcheck import error_bound, numerical_gradient, relative_error


def test_gradient_of_a_quadratic():
    a = np.array([[2.0, 1.0], [1.0, 3.0]])
    x = np.array([1.0, -0.5])
    grad = numerical_gradient(lambda v: 0.5 * v @ a @ v, x, np.array(1.0))
    np.testing.assert_allclose(grad, a @ x, rtol=1e-8)  # a @ x = [1.5, -0.5]


def test_upstream_gradient_weights_the_outputs():
    x = np.array([1.0, 2.0, 3.0])
    dy = np.array([1.0, -2.0, 0.5])
    grad = numerical_gradient(np.sin, x, dy)
    np.testing.assert_allclose(grad, np.cos(x) * dy, rtol=1e-8)


def test_argument_is_not_modified():
    x = np.array([1.0, 2.0])
    numerical_gradient(np.exp, x, np.ones(2))
    np.testing.assert_array_equal(x, [1.0, 2.0])


def test_a_function_that_ignores_its_argument_is_refused():
    x = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="ignores its argument"):
        numerical_gradient(lambda _: np.exp(x), x, np.ones(2))
    with raises_naming(
        ValueError,
        r"^f\(x\) did not change when x was perturbed: f ignores its argument "
        r"\(does it close over another x\?\), so its gradient cannot be checked$",
    ):
        numerical_gradient(lambda _: np.exp(x), x, np.ones(2))


def test_an_integer_point_is_perturbed_in_float64():
    grad = numerical_gradient(lambda x_: x_**2, np.array([1, 2]), np.array([1, 3]))
    np.testing.assert_allclose(grad, [2.0, 12.0], rtol=1e-8)


def test_an_upstream_gradient_of_ones_hides_a_wrong_batch_norm_backward():
    """Chapter 3's first guard: batch norm's outputs sum to a constant per feature,
    so with dy = 1 the true dx is 0 and a backward returning zeros passes; a random
    dy catches it."""
    from bnbook.batchnorm import batch_norm_backward, batch_norm_forward

    rng = np.random.default_rng(3)
    x, gamma, beta = rng.normal(size=(6, 2)), np.ones(2), np.zeros(2)

    def forward(x_):
        return batch_norm_forward(x_, gamma, beta)[0]

    def error_of_zeros(dy):
        return np.abs(numerical_gradient(forward, x, dy)).max()  # vs dx = 0

    ones, random = np.ones_like(x), rng.normal(size=x.shape)
    assert error_of_zeros(ones) < 1e-8 and error_of_zeros(random) > 1e-2
    dx = batch_norm_backward(random, batch_norm_forward(x, gamma, beta)[1])[0]
    assert relative_error(dx, numerical_gradient(forward, x, random)) < 1e-7


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"f": "exp"}, TypeError, "f"),
        ({"h": 0.0}, ValueError, "h"),
        ({"h": -1e-6}, ValueError, "h"),
        ({"h": "1e-6"}, TypeError, "h"),
        ({"dy": np.ones(3)}, ValueError, "dy"),
    ],
)
def test_bad_arguments(kwargs, error, name):
    args = {"f": np.exp, "x": np.ones(2), "dy": np.ones(2)} | kwargs
    with raises_naming(error, name):
        numerical_gradient(**args)


def test_relative_error():
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert relative_error([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert relative_error([1.0, 0.0], [0.0, 0.0]) == 1.0
    assert relative_error([1.0], [1.0 + 1e-8]) == pytest.approx(5e-9, rel=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        relative_error([1.0], [1.0, 2.0])
    # computed in float64: unsigned integers do not wrap around
    assert relative_error(np.uint8([1]), np.uint8([2])) == pytest.approx(1 / 3)
    assert relative_error(np.uint8([2]), np.uint8([1])) == pytest.approx(1 / 3)


def test_error_bound():
    assert error_bound(2.7e-11) == "< 1e-10"
    assert error_bound(1e-10) == "< 1e-9"
    assert error_bound(0.0) == "0"
    assert error_bound(0.5) == "< 1e0"
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="err"):
            error_bound(bad)
