"""Santurkar et al.'s measurements, on functions with analytic answers."""

import numpy as np
import pytest

from bnbook.smoothness import ics, landscape_along_gradient

A = np.diag([1.0, 4.0, 9.0])  # a quadratic with curvatures 1, 4 and 9


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
    # the gradient changes by eta * A g, exactly
    np.testing.assert_allclose(
        out["grad_change"], eta * np.linalg.norm(A @ g), rtol=1e-12
    )
    # effective beta-smoothness: ||A g|| / ||g||, which lies between 1 and 9
    assert out["beta_smoothness"] == pytest.approx(
        np.linalg.norm(A @ g) / np.linalg.norm(g)
    )
    assert 1 <= out["beta_smoothness"] <= 9
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
        (lambda: ics("g", [np.ones(1)], 0, 0.1), TypeError, "grads_fn"),
        (lambda: ics(lambda p: p, [np.ones(1)], 1, 0.1), ValueError, "layer"),
        (lambda: ics(lambda p: p, [np.ones(1)], 0.0, 0.1), TypeError, "layer"),
        (lambda: ics(lambda p: p, [np.ones(1)], 0, -1.0), ValueError, "lr"),
    ],
)
def test_bad_input(call, error, name):
    with pytest.raises(error, match=name):
        call()
