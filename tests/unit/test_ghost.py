"""Ghost batch norm: each ghost batch normalized alone, on any feature axis."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.batchnorm import BatchNorm, batch_norm_backward, batch_norm_forward
from bnbook.ghost import (
    GhostBatchNorm,
    ghost_batch_norm_backward,
    ghost_batch_norm_forward,
)


def test_ghost_batch_norm_of_the_whole_batch_is_batch_norm():
    rng = np.random.default_rng(7)
    x, dy = rng.normal(2.0, 3.0, size=(8, 5)), rng.normal(size=(8, 5))
    ghost, plain = GhostBatchNorm(ghost_size=8, momentum=0.9), BatchNorm(momentum=0.9)
    for layer in (ghost, plain):
        layer.build(5, np.float64)
        layer.gamma[:] = rng.normal(size=5)
    ghost.gamma[:] = plain.gamma
    np.testing.assert_array_equal(ghost(x, training=True), plain(x, training=True))
    np.testing.assert_array_equal(ghost.backward(dy), plain.backward(dy))
    np.testing.assert_array_equal(ghost.dgamma, plain.dgamma)
    np.testing.assert_array_equal(ghost.dbeta, plain.dbeta)
    np.testing.assert_array_equal(ghost.moving_mean, plain.moving_mean)
    np.testing.assert_array_equal(ghost.moving_variance, plain.moving_variance)
    np.testing.assert_array_equal(ghost(x), plain(x))


def test_ghost_batch_norm_normalizes_each_ghost_batch_alone():
    rng = np.random.default_rng(8)
    x, dy = rng.normal(size=(12, 3)), rng.normal(size=(12, 3))
    layer = GhostBatchNorm(ghost_size=4, momentum=0.5)
    y = layer(x, training=True)
    dx = layer.backward(dy)
    gamma, beta = np.ones(3), np.zeros(3)
    dgamma = np.zeros(3)
    for k in range(3):
        rows = slice(4 * k, 4 * k + 4)
        y_k, cache = batch_norm_forward(x[rows], gamma, beta)
        np.testing.assert_allclose(y[rows], y_k, rtol=1e-12)
        dx_k, dgamma_k, _ = batch_norm_backward(dy[rows], cache)
        np.testing.assert_allclose(dx[rows], dx_k, rtol=1e-12)
        dgamma += dgamma_k
    np.testing.assert_allclose(layer.dgamma, dgamma, rtol=1e-12)
    # the moving statistics follow the average of the ghost batches' statistics
    ghosts = x.reshape(3, 4, 3)
    np.testing.assert_allclose(
        layer.moving_mean, 0.5 * ghosts.mean(axis=1).mean(axis=0)
    )
    np.testing.assert_allclose(
        layer.moving_variance, 0.5 + 0.5 * ghosts.var(axis=1).mean(axis=0)
    )


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: GhostBatchNorm(ghost_size=1), ValueError, "ghost_size"),
        (lambda: GhostBatchNorm(ghost_size=2.0), TypeError, "ghost_size"),
        (
            lambda: GhostBatchNorm(ghost_size=4)(np.zeros((6, 2)), training=True),
            ValueError,
            "ghost_size",
        ),
    ],
)
def test_ghost_batch_norm_bad_input(call, error, name):
    with raises_naming(error, name):
        call()


def test_ghost_batch_norm_backward_needs_the_last_batch():
    layer = GhostBatchNorm(ghost_size=2)
    with pytest.raises(RuntimeError, match="training=True"):
        layer.backward(np.zeros((4, 2)))
    layer(np.random.default_rng(0).normal(size=(4, 2)), training=True)
    with pytest.raises(ValueError, match="4 rows"):
        layer.backward(np.zeros((6, 2)))
    on_axis_0 = GhostBatchNorm(ghost_size=2, axis=0)
    with pytest.raises(ValueError, match="^axis must not be 0"):
        on_axis_0(np.random.default_rng(0).normal(size=(4, 2)), training=True)


@pytest.mark.parametrize("axis", [-1, 1], ids=["NHWC", "NCHW"])
def test_ghost_batch_norm_of_images_normalizes_each_ghost_batch_alone(axis):
    rng = np.random.default_rng(9)
    shape = (6, 2, 3, 4) if axis == -1 else (6, 4, 2, 3)  # 4 channels
    x, dy = rng.normal(1.0, 2.0, size=shape), rng.normal(size=shape)
    layer = GhostBatchNorm(ghost_size=3, axis=axis, momentum=0.0)
    layer.build(4, np.float64)
    layer.gamma[:], layer.beta[:] = rng.uniform(0.5, 2, 4), rng.normal(size=4)
    y = layer(x, training=True)
    dx = layer.backward(dy)
    mu, var, dgamma, dbeta = [], [], 0, 0
    for rows in (slice(0, 3), slice(3, 6)):
        y_k, cache = batch_norm_forward(x[rows], layer.gamma, layer.beta, axis=axis)
        np.testing.assert_allclose(y[rows], y_k, rtol=1e-12)
        dx_k, dgamma_k, dbeta_k = batch_norm_backward(dy[rows], cache)
        np.testing.assert_allclose(dx[rows], dx_k, rtol=1e-12, atol=1e-15)
        mu, var = [*mu, cache.mu.ravel()], [*var, cache.var.ravel()]
        dgamma, dbeta = dgamma + dgamma_k, dbeta + dbeta_k
    np.testing.assert_allclose(layer.dgamma, dgamma, rtol=1e-12)
    np.testing.assert_allclose(layer.dbeta, dbeta, rtol=1e-12)
    np.testing.assert_allclose(layer.moving_mean, np.mean(mu, axis=0), rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance, np.mean(var, axis=0), rtol=1e-12)


def test_ghost_batch_norm_uses_its_epsilon_and_the_inputs_dtype():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    layer = GhostBatchNorm(ghost_size=4, epsilon=0.5)
    y = layer(x, training=True)
    assert y.dtype == np.float32
    for rows in (slice(0, 4), slice(4, 8)):
        y_k, _ = batch_norm_forward(x[rows], np.ones(3), np.zeros(3), epsilon=0.5)
        np.testing.assert_allclose(y[rows], y_k, rtol=1e-5)
    y64, _ = ghost_batch_norm_forward(
        x, np.ones(3), np.zeros(3), ghost_size=4, epsilon=0.5
    )
    assert y64.dtype == np.float32  # float64 gamma and beta are cast to x's dtype


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: _forward(["a"] * 4), TypeError, "^x must be"),
        (lambda: _forward(np.ones((4, 3)), ghost_size=1), ValueError, "^ghost_size"),
        (lambda: _forward(np.ones((4, 3)), ghost_size=2.0), TypeError, "^ghost_size"),
        (lambda: _forward(np.ones((4, 3)), gamma=np.ones(2)), ValueError, "^gamma"),
        (lambda: _forward(np.ones((4, 3)), beta=np.ones(4)), ValueError, "^beta"),
        (lambda: _forward(np.ones((4, 3)), axis=0), ValueError, "^axis must not be 0"),
        (
            lambda: ghost_batch_norm_backward(["a"], _forward(np.eye(4, 3))[1]),
            TypeError,
            "^dy must be",
        ),
        (
            lambda: ghost_batch_norm_backward(
                np.ones((4, 2)), _forward(np.eye(4, 3))[1]
            ),
            ValueError,
            r"^dy must have the shape of the last batch, 4 rows and 3 features, got",
        ),
    ],
)
def test_ghost_functions_bad_input(call, error, message):
    with raises_naming(error, message):
        call()


ONES, ZEROS = np.ones(3), np.zeros(3)


def _forward(x, ghost_size=2, gamma=ONES, beta=ZEROS, axis=-1):
    return ghost_batch_norm_forward(x, gamma, beta, ghost_size=ghost_size, axis=axis)


def test_ghost_batch_norm_forward_defaults_to_kerass_epsilon():
    x = np.random.default_rng(11).normal(size=(4, 3))
    y, _ = ghost_batch_norm_forward(x, np.ones(3), np.zeros(3), ghost_size=2)
    y3, _ = ghost_batch_norm_forward(
        x, np.ones(3), np.zeros(3), ghost_size=2, epsilon=1e-3
    )
    np.testing.assert_array_equal(y, y3)


def test_ghost_backward_names_the_feature_count_of_images():
    x = np.ones((4, 5, 6, 3))  # NHWC: 3 features on the last axis
    _, cache = ghost_batch_norm_forward(x, np.ones(3), np.zeros(3), ghost_size=2)
    with raises_naming(ValueError, "4 rows and 3 features, got"):
        ghost_batch_norm_backward(np.ones((4, 5, 6, 2)), cache)
