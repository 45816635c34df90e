"""The angular update of weights before batch norm."""

import numpy as np
import pytest

from bnbook.experiments.dynamics import angular_update, column_norms


def test_angular_update_measures_the_angle_of_each_column():
    theta = np.array([1e-6, 0.1, 1.0, np.pi])
    before = 2.0 * np.vstack([np.ones(4), np.zeros(4)])
    after = 3.0 * np.vstack([np.cos(theta), np.sin(theta)])  # the norm does not matter
    np.testing.assert_allclose(angular_update(before, after), theta, rtol=1e-9)
    np.testing.assert_array_equal(angular_update(before, 5 * before), 0.0)
    np.testing.assert_allclose(column_norms(after), 3.0)


def test_angular_update_computes_in_float64_and_stays_finite():
    rng = np.random.default_rng(1)
    before = rng.normal(size=(5, 40)).astype(np.float32)
    after = (before + 1e-4 * rng.normal(size=(5, 40))).astype(np.float32)
    exact = angular_update(before.astype(np.float64), after.astype(np.float64))
    result = angular_update(before, after)
    assert result.dtype == np.float64 and column_norms(before).dtype == np.float64
    np.testing.assert_allclose(result, exact, rtol=1e-12)
    # opposite columns: rounding may put the chord a hair above 2
    opposite = angular_update(before, -3 * before)
    assert np.all(np.isfinite(opposite))
    np.testing.assert_allclose(opposite, np.pi, rtol=1e-7)
    many = np.random.default_rng(0).normal(size=(5, 2000))  # some chords round up
    np.testing.assert_allclose(angular_update(many, -3 * many), np.pi, rtol=1e-7)


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        (np.ones((3, 2)), np.ones((3, 3)), "same shape"),
        (np.zeros((3, 2)), np.ones((3, 2)), "^every column must be non-zero"),
        (np.ones((3, 2)), np.zeros((3, 2)), "^every column must be non-zero"),
        (np.ones(3), np.ones(3), "n_in, n_out"),
    ],
)
def test_angular_update_bad_input(before, after, message):
    with pytest.raises(ValueError, match=message):
        angular_update(before, after)
