"""Folding an inference-mode batch norm into the layer before it."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.batchnorm import batch_norm_inference
from bnbook.folding import fold_batch_norm


def bn_params(c, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.uniform(0.5, 2.0, c),
        rng.normal(size=c),
        rng.normal(size=c),
        rng.uniform(0.1, 3.0, c),
    )


def test_dense_fold_equals_dense_then_batch_norm():
    rng = np.random.default_rng(1)
    x, kernel, bias = (
        rng.normal(size=(7, 4)),
        rng.normal(size=(4, 3)),
        rng.normal(size=3),
    )
    gamma, beta, mean, var = bn_params(3)
    expected = batch_norm_inference(x @ kernel + bias, gamma, beta, mean, var)
    k, b = fold_batch_norm(kernel, bias, gamma, beta, mean, var)
    np.testing.assert_allclose(x @ k + b, expected, rtol=1e-12, atol=1e-12)
    assert k.shape == kernel.shape and b.shape == (3,)


def test_conv_fold_scales_each_output_channel():
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(3, 3, 2, 4))
    gamma, beta, mean, var = bn_params(4, seed=3)
    k, b = fold_batch_norm(kernel, None, gamma, beta, mean, var, epsilon=1e-5)
    a = gamma / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(k, kernel * a, rtol=1e-14)
    np.testing.assert_allclose(b, beta - a * mean, rtol=1e-14)


def test_missing_gamma_and_beta_mean_one_and_zero():
    kernel = np.eye(2)
    _, _, mean, var = bn_params(2)
    k, b = fold_batch_norm(kernel, None, None, None, mean, var, epsilon=0.0)
    np.testing.assert_allclose(k, np.diag(1 / np.sqrt(var)), rtol=1e-14)
    np.testing.assert_allclose(b, -mean / np.sqrt(var), rtol=1e-14)


def test_float32_stays_float32():
    k, b = fold_batch_norm(np.ones((2, 3), np.float32), None, *bn_params(3))
    assert k.dtype == b.dtype == np.float32


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"kernel": np.ones(3)}, ValueError, "kernel"),
        ({"kernel": np.array([["a"]])}, TypeError, "kernel"),
        ({"bias": np.ones(2)}, ValueError, "bias"),
        ({"gamma": np.ones(4)}, ValueError, "gamma"),
        ({"moving_mean": np.ones((3, 1))}, ValueError, "moving_mean"),
        ({"moving_variance": -np.ones(3)}, ValueError, "moving_variance"),
        ({"epsilon": -1.0}, ValueError, "epsilon"),
    ],
)
def test_bad_input(kwargs, error, name):
    gamma, beta, mean, var = bn_params(3)
    args = {
        "kernel": np.ones((2, 3)),
        "bias": None,
        "gamma": gamma,
        "beta": beta,
        "moving_mean": mean,
        "moving_variance": var,
    }
    args |= kwargs
    epsilon = args.pop("epsilon", 1e-3)
    with raises_naming(error, name):
        fold_batch_norm(*args.values(), epsilon=epsilon)
