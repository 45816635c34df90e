"""Santurkar et al.'s measurements, on functions with analytic answers."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.batchnorm import BatchNorm, batch_norm_forward
from bnbook.experiments.smoothness import (
    deep_linear_regression,
    drift,
    flatten,
    gradient_norm_bound,
    ics,
    landscape_along_gradient,
    on_flat_vector,
    parameters,
    relative_landscape,
    relative_step,
    spread_drift,
    weight_entries,
)
from bnbook.mlp import build_mlp, loss_and_grads

A = np.diag([1.0, 4.0, 9.0])  # a quadratic with curvatures 1, 4 and 9
C = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # curvatures of each entry of a W


def quadratic(w):
    return 0.5 * w @ A @ w, A @ w


def test_landscape_of_a_quadratic():
    w = np.array([1.0, 1.0, 1.0])
    g = A @ w
    out = landscape_along_gradient(quadratic, w, lr=0.05, factors=[0.5, 1, 2, 4])
    eta = 0.05 * np.array([0.5, 1, 2, 4])
    expected_loss = [0.5 * (w - e * g) @ A @ (w - e * g) for e in eta]
    np.testing.assert_allclose(out["eta"], eta)
    np.testing.assert_allclose(out["loss"], expected_loss, rtol=1e-12)
    assert out["loss_at_w"] == pytest.approx(0.5 * w @ A @ w)
    # the gradient changes by eta * A g, exactly
    np.testing.assert_allclose(
        out["grad_change"], eta * np.linalg.norm(A @ g), rtol=1e-12
    )
    # effective beta-smoothness: ||A g|| / ||g||
    assert out["beta_smoothness"] == pytest.approx(
        np.linalg.norm(A @ g) / np.linalg.norm(g)
    )
    assert out["loss_range"] == pytest.approx(max(expected_loss) - min(expected_loss))


def test_beta_smoothness_reaches_the_largest_curvature_along_its_eigenvector():
    out = landscape_along_gradient(quadratic, np.array([0.0, 0.0, 2.0]), lr=0.01)
    assert out["beta_smoothness"] == pytest.approx(9.0)


def test_ics_is_zero_when_layers_do_not_interact():
    def grads(params):  # L = 0.5 (w0^2 + w1^2): layer 1's gradient ignores layer 0
        return [p.copy() for p in params]

    distance, cosine = ics(grads, [np.array([3.0]), np.array([2.0])], layer=1, lr=0.1)
    assert distance == 0.0 and cosine == pytest.approx(1.0)


def test_ics_of_a_product():
    # L = 0.5 (a b - 1)^2: dL/db = (a b - 1) a, and a steps first to a' = a - lr (ab-1) b
    a, b, lr = 2.0, 1.5, 0.1

    def grads(params):
        a_, b_ = params[0][0], params[1][0]
        r = a_ * b_ - 1
        return [np.array([r * b_]), np.array([r * a_])]

    a_new = a - lr * (a * b - 1) * b
    expected = abs((a * b - 1) * a - (a_new * b - 1) * a_new)
    distance, cosine = ics(grads, [np.array([a]), np.array([b])], layer=1, lr=lr)
    assert distance == pytest.approx(expected)
    assert cosine == pytest.approx(1.0)  # both gradients are positive scalars


def test_first_layer_has_no_shift():
    def grads(params):
        return [
            2 * params[0] * params[1].sum(),
            params[0] ** 2 * np.ones_like(params[1]),
        ]

    distance, _ = ics(grads, [np.array([1.0]), np.array([1.0, 2.0])], layer=0, lr=0.5)
    assert distance == 0.0


def elementwise_quadratic(params):  # L = 0.5 sum C_ij W_ij^2 + 0.5 |b|^2
    W, b = params
    return 0.5 * (C * W**2).sum() + 0.5 * b @ b, [C * W, b]


def test_relative_landscape_of_a_quadratic():
    W, b = np.array([[1.0, -2.0, 0.5], [3.0, 1.0, -1.0]]), np.array([1.0, 2.0])
    seen = []

    def f(params):
        seen.append(params[1])
        return elementwise_quadratic(params)

    steps = np.array([0.01, 0.02, 0.05])
    out = relative_landscape(f, [W, b], steps)
    g, n = C * W, np.linalg.norm(W)
    moved = [W - eta * n * g / np.linalg.norm(g) for eta in steps]
    np.testing.assert_allclose(out["steps"], steps)
    np.testing.assert_allclose(
        out["loss"], [0.5 * (C * M**2).sum() + 0.5 * b @ b for M in moved], rtol=1e-12
    )
    for b_seen in seen:  # the bias never moves
        np.testing.assert_array_equal(b_seen, b)
    # G = ||W|| g changes by ||W|| C (W' - W): eta ||W||^2 ||C g|| / ||g||
    change = steps * n**2 * np.linalg.norm(C * g) / np.linalg.norm(g)
    np.testing.assert_allclose(out["grad_change"], change, rtol=1e-12)
    assert out["beta_smoothness"] == pytest.approx(change[0] / steps[0])
    assert out["loss_at_w"] == pytest.approx(elementwise_quadratic([W, b])[0])
    assert out["grad_norm"] == pytest.approx(n * np.linalg.norm(g))


def test_relative_landscape_of_two_matrices():
    # L = 0.5 |W1|^2 + 1.5 |W2|^2: each matrix steps to (1 - eta) W, the loss to
    # (1 - eta)^2 L, and G_l changes by eta c_l |W_l|^2 (c = 1, 3) over |Delta u| =
    # eta sqrt(2)
    def f(params):
        W1, W2 = params
        return 0.5 * (W1**2).sum() + 1.5 * (W2**2).sum(), [W1, 3 * W2]

    W1, W2 = np.ones((2, 2)), np.full((3, 1), 2.0)
    steps = np.array([0.1, 0.2])
    out = relative_landscape(f, (W1, W2), steps)
    loss = f([W1, W2])[0]
    np.testing.assert_allclose(out["loss"], (1 - steps) ** 2 * loss, rtol=1e-12)
    change = steps * np.hypot(4.0, 3 * 12.0)
    np.testing.assert_allclose(out["grad_change"], change, rtol=1e-12)
    assert out["beta_smoothness"] == pytest.approx(np.hypot(4.0, 36.0) / np.sqrt(2))


def test_relative_landscape_ignores_the_scale_of_weights_before_batch_norm():
    # W0 and W1 feed batch-norm layers (epsilon = 0): L(c W) = L(W) exactly. The last
    # weight matrix does not, and keeps its scale.
    rng = np.random.default_rng(0)
    model = build_mlp((8, 16, 16, 4), norm=lambda: BatchNorm(epsilon=0.0), seed=1)
    x, y = rng.normal(size=(32, 8)), rng.integers(0, 4, size=32)
    params = [p.copy() for p, _ in model.params()]
    shapes = [p.shape for p in params]
    assert [p.ndim for p in params] == [2, 1, 1, 2, 1, 1, 2, 1]
    scaled = list(params)
    scaled[0], scaled[3] = 0.5 * params[0], 3.0 * params[3]
    state = model.state()

    def f(at):
        return loss_and_grads(model, x, y, at=at)

    before, after = relative_landscape(f, params), relative_landscape(f, scaled)
    for key in ("loss", "grad_change", "beta_smoothness", "loss_at_w", "grad_norm"):
        np.testing.assert_allclose(after[key], before[key], rtol=1e-7)
    # the plain measurement sees a different landscape: the scale problem
    flat = on_flat_vector(f, shapes)
    plain = [
        landscape_along_gradient(flat, flatten(p), lr=0.1)["beta_smoothness"]
        for p in (params, scaled)
    ]
    assert max(plain) / min(plain) > 1.5
    # nothing of the model changed: parameters and moving statistics
    for p, (q, _) in zip(params, model.params(), strict=True):
        np.testing.assert_array_equal(p, q)
    for s, t in zip(state, model.state(), strict=True):
        for k in s:
            np.testing.assert_array_equal(s[k], t[k])


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (
            lambda: landscape_along_gradient("f", np.ones(3), 0.1),
            TypeError,
            "loss_and_grad",
        ),
        (
            lambda: landscape_along_gradient(quadratic, np.ones(3), 0.0),
            ValueError,
            "lr",
        ),
        (
            lambda: landscape_along_gradient(quadratic, np.ones(3), 0.1, []),
            ValueError,
            "factors",
        ),
        (
            lambda: landscape_along_gradient(quadratic, np.ones(3), 0.1, [1, -1]),
            ValueError,
            "factors",
        ),
        (
            lambda: landscape_along_gradient(quadratic, np.zeros(3), 0.1),
            ValueError,
            "gradient",
        ),
        (
            lambda: landscape_along_gradient(
                lambda w: (0.0, np.ones(2)), np.ones(3), 0.1
            ),
            ValueError,
            "shape",
        ),
        (
            lambda: relative_landscape("f", [np.ones((2, 3))]),
            TypeError,
            "loss_and_grads",
        ),
        (
            lambda: relative_landscape(elementwise_quadratic, np.ones((2, 3))),
            TypeError,
            "params",
        ),
        (
            lambda: relative_landscape(elementwise_quadratic, [np.ones((2, 3)), "b"]),
            TypeError,
            "params",
        ),
        (
            lambda: relative_landscape(elementwise_quadratic, [np.ones(3), np.ones(2)]),
            ValueError,
            "params",
        ),
        (
            lambda: relative_landscape(
                elementwise_quadratic, [np.zeros((2, 3)), np.ones(2)]
            ),
            ValueError,
            "params",
        ),
        (
            lambda: relative_landscape(
                lambda p: (0.0, [np.zeros((2, 3)), np.ones(2)]),
                [np.ones((2, 3)), np.ones(2)],
            ),
            ValueError,
            "gradient",
        ),
        (
            lambda: relative_landscape(
                lambda p: (0.0, [np.ones(6)]), [np.ones((2, 3))]
            ),
            ValueError,
            "loss_and_grads",
        ),
        (
            lambda: relative_landscape(
                elementwise_quadratic, [np.ones((2, 3)), np.ones(2)], []
            ),
            ValueError,
            "steps",
        ),
        (
            lambda: relative_landscape(
                elementwise_quadratic, [np.ones((2, 3)), np.ones(2)], [0.01, -0.01]
            ),
            ValueError,
            "steps",
        ),
        (
            lambda: relative_landscape(
                elementwise_quadratic, [np.ones((2, 3)), np.ones(2)], [np.nan]
            ),
            ValueError,
            "steps",
        ),
        (
            lambda: relative_landscape(
                elementwise_quadratic, [np.ones((2, 3)), np.ones(2)], ["big"]
            ),
            TypeError,
            "steps",
        ),
        (lambda: ics("g", [np.ones(1)], 0, 0.1), TypeError, "grads_fn"),
        (lambda: ics(lambda p: p, [np.ones(1)], 1, 0.1), ValueError, "layer"),
        (lambda: ics(lambda p: p, [np.ones(1)], 0.0, 0.1), TypeError, "layer"),
        (lambda: ics(lambda p: p, [np.ones(1)], 0, -1.0), ValueError, "lr"),
    ],
)
def test_bad_input(call, error, name):
    with raises_naming(error, name):
        call()


def test_on_flat_vector_splits_and_joins_in_order():
    def loss_and_grads(params):  # L = 0.5 |a|^2 + 0.5 |B|^2 with B a 2x2 matrix
        a, b = params
        return 0.5 * (a @ a + (b**2).sum()), [a, b]

    f = on_flat_vector(loss_and_grads, [(3,), (2, 2)])
    w = np.arange(7.0)
    loss, g = f(w)
    assert loss == pytest.approx(0.5 * w @ w)
    np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(flatten([np.ones(2), np.zeros((1, 2))]), [1, 1, 0, 0])
    with pytest.raises(ValueError, match="w must have shape"):
        f(np.ones(6))
    with pytest.raises(TypeError, match="loss_and_grads"):
        on_flat_vector(None, [(3,)])


def _bn_cache(epsilon, seed=0, shape=(32, 5)):
    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 3.0, size=shape)
    gamma = rng.uniform(0.5, 2.0, size=shape[-1])
    _, cache = batch_norm_forward(x, gamma, np.zeros(shape[-1]), epsilon=epsilon)
    return cache, rng.normal(size=shape)


def test_theorem_4_1_is_an_equality_without_epsilon():
    cache, g = _bn_cache(epsilon=0.0)
    sides = gradient_norm_bound(g, cache)
    np.testing.assert_allclose(sides["lhs"], sides["rhs"], rtol=1e-12)


def test_theorem_4_1_holds_with_epsilon():
    for seed in range(5):
        cache, g = _bn_cache(epsilon=1e-1, seed=seed)
        sides = gradient_norm_bound(g, cache)
        assert np.all(sides["lhs"] < sides["rhs"])  # strictly: epsilon > 0


def test_theorem_4_1_on_the_removed_directions():
    # A gradient that is constant over the batch, or along x_hat, is removed entirely:
    # both sides are zero. The printed bound (1/sqrt(m)) goes negative along x_hat.
    cache, _ = _bn_cache(epsilon=0.0, shape=(16, 2))
    for g, printed_negative in ((np.ones((16, 2)), False), (cache.x_hat, True)):
        sides = gradient_norm_bound(g, cache)
        np.testing.assert_allclose(sides["lhs"], 0.0, atol=1e-20)
        np.testing.assert_allclose(sides["rhs"], 0.0, atol=1e-12)
        assert np.all(sides["rhs_printed"] < -1e-6) == printed_negative


def test_theorem_4_1_for_conv_maps():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 3, 3, 2))
    _, cache = batch_norm_forward(x, np.ones(2), np.zeros(2), epsilon=0.0)
    sides = gradient_norm_bound(rng.normal(size=x.shape), cache)
    assert sides["lhs"].shape == (2,)
    np.testing.assert_allclose(sides["lhs"], sides["rhs"], rtol=1e-12)


def test_gradient_norm_bound_checks_its_arguments():
    cache, g = _bn_cache(epsilon=1e-3)
    with pytest.raises(TypeError, match="cache"):
        gradient_norm_bound(g, {"x_hat": g})
    with pytest.raises(ValueError, match="dy"):
        gradient_norm_bound(g[:, :2], cache)


def test_parameters_and_weight_entries():
    net = build_mlp((4, 3, 2), norm=BatchNorm, seed=0)
    params = parameters(net)
    assert all(p is q for p, (q, _) in zip(params, net.params(), strict=True))
    entries = weight_entries(net)
    assert [params[k].shape for k in entries] == [(4, 3), (3, 2)]
    with raises_naming(TypeError, "model"):
        parameters([np.ones(3)])


def test_relative_step_moves_each_matrix_by_eta_of_its_norm():
    W, b = np.array([[3.0, 0.0], [0.0, 4.0]]), np.array([1.0, 2.0])
    gW, gb = np.array([[0.0, 2.0], [0.0, 0.0]]), np.array([5.0, 5.0])
    moved = relative_step([W, b], [gW, gb], 0.1)
    assert [m.shape for m in moved] == [(2, 2), (2,)]
    # ||W|| = 5, the unit gradient is e_01: W_01 moves by 0.1 * 5 = 0.5 against it
    np.testing.assert_allclose(moved[0], [[3.0, -0.5], [0.0, 4.0]])
    assert moved[1] is b  # biases stay
    np.testing.assert_allclose(np.linalg.norm(moved[0] - W) / np.linalg.norm(W), 0.1)
    with raises_naming(ValueError, "eta"):
        relative_step([W], [gW], 0.0)
    with raises_naming(ValueError, "grads"):
        relative_step([W, b], [gW], 0.1)


def test_drift_and_spread_drift():
    # 3 checkpoints, 2 layers, 2 units; the checkpoint at step 0 is left out
    values = np.zeros((3, 2, 2))
    values[0] = 100.0
    values[1:, 0, 0] = [1.0, 3.0]  # std 1
    values[1:, 1, :] = [[2.0, 4.0], [2.0, 4.0]]  # std 0
    np.testing.assert_allclose(drift(values), [0.5, 0.0])
    stds = np.ones((3, 1, 2))
    stds[1:, 0, 0] = [1.0, 3.0]  # std 1, mean 2: relative drift 0.5
    np.testing.assert_allclose(spread_drift(stds), [0.25])
    np.testing.assert_allclose(spread_drift(10 * stds), spread_drift(stds))
    with raises_naming(ValueError, "values"):
        drift(np.zeros((1, 2, 2)))
    with raises_naming(ValueError, "stds"):
        spread_drift(np.zeros((3, 2)))
    with raises_naming(TypeError, "values"):
        drift(np.array([[["a"]]]))


def test_deep_linear_regression():
    x, y = deep_linear_regression(3, d=4, n=50)
    assert x.shape == (50, 4) and y.shape == (50, 4)
    A = np.linalg.lstsq(x, y, rcond=None)[0].T  # targets are exactly linear in x
    np.testing.assert_allclose(x @ A.T, y, atol=1e-10)
    x2, y2 = deep_linear_regression(3, d=4, n=50)
    np.testing.assert_array_equal(x, x2)
    assert not np.allclose(deep_linear_regression(4, d=4, n=50)[0], x)
    with raises_naming(ValueError, "n"):
        deep_linear_regression(0, n=0)
    with raises_naming(TypeError, "seed"):
        deep_linear_regression(0.5)
