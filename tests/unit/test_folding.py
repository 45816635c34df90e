"""Folding an inference-mode batch norm into the layer before it."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.batchnorm import BatchNorm, batch_norm_inference
from bnbook.folding import fold_batch_norm, fold_into_dense
from bnbook.layers import Dense, ReLU
from bnbook.lpnorm import LpBatchNorm
from bnbook.renorm import BatchRenorm


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
        ({"moving_variance": np.ones(2)}, ValueError, "^moving_variance must have"),
        ({"beta": np.ones(2)}, ValueError, "^beta must have"),
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


@pytest.mark.parametrize("make", [BatchNorm, BatchRenorm, lambda: LpBatchNorm(p=1)])
@pytest.mark.parametrize("bias", [False, True])
def test_fold_into_dense_computes_dense_then_batch_norm(make, bias):
    rng = np.random.default_rng(5)
    dense, norm = Dense(4, 3, rng, bias=bias), make()
    for _ in range(3):  # moving statistics away from 0 and 1
        norm(dense(rng.normal(2.0, 3.0, size=(10, 4))), training=True)
    norm.gamma[...], norm.beta[...] = [0.5, 1.0, -2.0], [0.0, 1.0, 3.0]
    folded = fold_into_dense(dense, norm)
    x = rng.normal(2.0, 3.0, size=(6, 4))
    np.testing.assert_allclose(folded(x), norm(dense(x)), rtol=1e-12, atol=1e-12)
    assert folded.W is not dense.W and folded.b.shape == (3,)


def test_fold_into_dense_refuses_what_does_not_fold():
    rng = np.random.default_rng(5)
    dense, built = Dense(4, 3, rng), BatchNorm()
    built.build(3, np.float64)
    on_axis_1 = BatchNorm(axis=1)
    on_axis_1.build(3, np.float64)
    assert fold_into_dense(dense, BatchNorm()) is None  # not built
    assert fold_into_dense(dense, on_axis_1) is None
    assert fold_into_dense(dense, ReLU()) is None
    assert fold_into_dense(built, built) is None
    assert fold_into_dense(dense, built) is not None


def test_a_zero_moving_variance_folds():
    kernel, bias = fold_batch_norm(
        np.eye(2), None, None, None, np.zeros(2), np.zeros(2), epsilon=0.25
    )
    np.testing.assert_allclose(kernel, 2 * np.eye(2))  # 1 / sqrt(0 + 0.25)
    np.testing.assert_allclose(bias, 0.0)
