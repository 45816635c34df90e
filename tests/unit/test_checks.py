"""The shared argument checks: a wrong type is a TypeError, a wrong value a ValueError,
and every message names the argument."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.checks import (
    as_float_array,
    check_bool,
    check_callable,
    check_epsilon,
    check_int,
    check_momentum,
    check_positive,
    check_real,
    feature_axis,
    per_feature,
    reduce_axes,
)


def test_good_arguments_come_back_in_the_form_computed_with():
    assert as_float_array([1, 2], "x").dtype == np.float64
    assert as_float_array(np.ones(2, np.float32), "x").dtype == np.float32
    assert check_int(np.int64(3), "n") == 3 and type(check_int(np.int64(3), "n")) is int
    assert check_bool(np.bool_(True), "flag") is True
    assert check_positive(2, "lr") == 2.0
    assert check_epsilon(0) == 0.0 and check_momentum(1) == 1.0
    assert feature_axis(-1, 4) == 3 and feature_axis(1, 2) == 1
    assert reduce_axes(4, 3) == (0, 1, 2) and reduce_axes(4, 1) == (0, 2, 3)
    p = per_feature([1, 2, 3], "gamma", 3, np.float32)
    assert p.dtype == np.float32 and p.shape == (3,)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: as_float_array(np.array(["a"]), "x"), TypeError, "x must be an array"),
        (
            lambda: as_float_array(np.array([True]), "x"),
            TypeError,
            "x must be an array",
        ),
        (lambda: as_float_array(np.ones(2, complex), "x"), TypeError, "real numbers"),
        (
            lambda: check_int(2.0, "steps"),
            TypeError,
            "^steps must be an int, got float$",
        ),
        (lambda: check_int(True, "steps"), TypeError, "steps must be an int"),
        (lambda: check_int(0, "steps", minimum=1), ValueError, "steps must be >= 1"),
        (lambda: check_bool(1, "center"), TypeError, "center must be a bool"),
        (
            lambda: check_callable("f", "callback"),
            TypeError,
            "^callback must be callable, got str$",
        ),
        (lambda: check_positive("1", "lr"), TypeError, "lr must be a real number"),
        (lambda: check_positive(True, "lr"), TypeError, "lr must be a real number"),
        (lambda: check_positive(0.0, "lr"), ValueError, "lr must be > 0"),
        (lambda: check_positive(np.nan, "lr"), ValueError, "lr must be > 0"),
        (lambda: check_positive(np.inf, "lr"), ValueError, "lr must be > 0"),
        (lambda: check_epsilon(-1e-9), ValueError, "epsilon must be >= 0"),
        (lambda: check_epsilon(np.nan), ValueError, "epsilon must be >= 0"),
        (lambda: check_epsilon("0"), TypeError, "epsilon must be a real number"),
        (lambda: check_momentum(1.5), ValueError, r"momentum must be in \[0, 1\]"),
        (lambda: check_momentum(-0.1), ValueError, r"momentum must be in \[0, 1\]"),
        (lambda: check_momentum(None), TypeError, "momentum must be a real number"),
        (lambda: check_real("1", "x"), TypeError, "x must be a real number, got str"),
        (lambda: check_real(np.bool_(1), "x"), TypeError, "x must be a real number"),
        (lambda: check_real(np.inf, "x"), ValueError, "x must be finite, got inf"),
        (
            lambda: check_real(1, "x", high=1, open_high=True),
            ValueError,
            "x must be < 1",
        ),
        (
            lambda: check_real(0, "x", 0, 1, open_low=True),
            ValueError,
            r"x must be in \(0, 1\]",
        ),
        (
            lambda: check_real(1, "x", 0, 1, open_high=True),
            ValueError,
            r"x must be in \[0, 1\)",
        ),
        (lambda: check_real(1, "x", high=0.5), ValueError, "x must be <= 0.5"),
        (lambda: feature_axis(1.0, 2), TypeError, "axis must be an int"),
        (lambda: feature_axis(2, 2), ValueError, "axis 2 is out of range"),
        (lambda: feature_axis(-3, 2), ValueError, "axis -3 is out of range"),
        (lambda: feature_axis(0, 1), ValueError, "^x must have at least 2 dimensions"),
        (
            lambda: per_feature(np.ones(2), "beta", 3, float),
            ValueError,
            r"beta.*\(3,\)",
        ),
        (lambda: per_feature(np.ones((3, 1)), "beta", 3, float), ValueError, "beta"),
    ],
)
def test_bad_arguments_name_themselves(call, error, message):
    with raises_naming(error, message):
        call()


def test_check_real_takes_python_and_numpy_numbers_in_the_interval():
    for value in (0.5, 1, np.float32(0.5), np.float64(0.5), np.int64(1)):
        got = check_real(value, "x", 0, 1, open_low=True)
        assert type(got) is float and got == float(value)
    assert check_real(0, "x", 0) == 0.0 and check_real(-3, "x", high=0) == -3.0
    assert check_real(-1e300, "x") == -1e300


def test_every_real_argument_takes_numpy_scalars_and_names_itself():
    from bnbook.layers import Dropout
    from bnbook.optim import SGD
    from bnbook.renorm import BatchRenorm

    rng = np.random.default_rng(0)
    assert Dropout(np.float32(0.5), rng).keep == 0.5
    sgd = SGD(np.float32(0.1), momentum=np.float32(0.5), weight_decay=np.float64(0))
    assert (sgd.momentum, sgd.weight_decay) == (0.5, 0.0)
    assert BatchRenorm(rmin=np.float32(0.5), dmax=np.int64(1)).dmax == 1.0
    for call, name in (
        (lambda: BatchRenorm(dmax="1"), "dmax"),
        (lambda: BatchRenorm(rmin=[1]), "rmin"),
        (lambda: BatchRenorm(rmax=-1.0), "rmax"),
        (lambda: Dropout("0.5", rng), "keep"),
        (lambda: SGD(0.1, momentum=1.0), "momentum"),
        (lambda: SGD(0.1, weight_decay=np.inf), "weight_decay"),
    ):
        with pytest.raises((TypeError, ValueError), match=f"^{name} must be"):
            call()
