"""The inputs a check runs the reader's code on: a ``Case`` is x with its γ, β and ε."""

from typing import NamedTuple

import numpy as np


class Case(NamedTuple):
    """One input of a check: ``x`` with its parameters, and how to name it."""

    name: str
    x: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    eps: float
    axes: tuple  # the axes batch norm reduces over


def _cases(shape, odd_shape=None):
    """float64 with eps 1e-3 and 0.5, float32, float32 with a large mean (x, shape),
    and float64 with eps 1e-3 on an odd batch of another shape (x, odd_shape)."""
    cases = _cases_of(shape)
    if odd_shape is not None:
        odd = _cases_of(odd_shape, seed=2)[0]
        name = f"an odd batch with ε = 0.001 (x of shape {odd_shape}, float64)"
        cases.append(odd._replace(name=name))
    return cases


def _cases_of(shape, seed=0):
    rng = np.random.default_rng(seed)
    n_features, axes = shape[-1], tuple(range(len(shape) - 1))
    mean = rng.uniform(-3, 3, n_features)
    std = rng.uniform(0.5, 3, n_features)
    x = mean + std * rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 2, n_features) * rng.choice([-1, 1], n_features)
    beta = rng.uniform(-2, 2, n_features)
    small = 0.4 * rng.standard_normal(shape)  # variances near ε = 0.5
    far = 1000 + rng.standard_normal(shape)

    def case(name, x, eps, dtype):
        arrays = (a.astype(dtype) for a in (x, gamma, beta))
        return Case(
            f"{name} (x of shape {shape}, {np.dtype(dtype)})", *arrays, eps, axes
        )

    return [
        case("x with ε = 0.001", x, 1e-3, np.float64),
        case("x of small variance with ε = 0.5", small, 0.5, np.float64),
        case("x with ε = 0.001", x, 1e-3, np.float32),
        case("x of mean 1000 and standard deviation 1", far, 1e-3, np.float32),
    ]


# The shapes of the inputs: most, and an odd batch (H and W differ in both).
DENSE = (16, 5), (7, 3)
SPATIAL = (6, 3, 4, 5), (3, 5, 2, 4)
