"""The digits loader."""

import numpy as np
import pytest
from naming import raises_naming

from bnbook.data import Digits, load_digits_split, minibatches, select_classes


def test_shapes_dtypes_and_labels():
    d = load_digits_split()
    assert isinstance(d, Digits)
    assert d.x_train.shape == (1347, 64) and d.x_test.shape == (450, 64)
    assert d.y_train.shape == (1347,) and d.y_test.shape == (450,)
    assert d.x_train.dtype == np.float32 and d.x_test.dtype == np.float32
    assert d.y_train.dtype == np.int64
    assert set(np.unique(d.y_train)) == set(range(10))


def test_standardized_with_training_statistics():
    d = load_digits_split(dtype=np.float64)
    mu = d.x_train.mean(axis=0)
    sigma = d.x_train.std(axis=0)
    np.testing.assert_allclose(mu, 0.0, atol=1e-12)
    varying = sigma > 0
    assert varying.sum() == 60  # four pixels are blank in every training image
    np.testing.assert_allclose(sigma[varying], 1.0, rtol=1e-12)
    # The test set is not standardized by its own statistics, so it is only close.
    assert np.abs(d.x_test.mean(axis=0)).max() > 1e-3
    assert np.isfinite(d.x_test).all()


def test_split_is_fixed_by_the_seed_and_stratified():
    a, b = load_digits_split(seed=3), load_digits_split(seed=3)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    c = load_digits_split(seed=4)
    assert not np.array_equal(a.y_test, c.y_test)
    # Stratified: each class is held out in proportion to its size, to one example.
    all_counts = np.bincount(np.concatenate([a.y_train, a.y_test]), minlength=10)
    test_counts = np.bincount(a.y_test, minlength=10)
    expected = all_counts * len(a.y_test) / all_counts.sum()
    assert np.abs(test_counts - expected).max() <= 1


def test_test_size_changes_the_split():
    d = load_digits_split(test_size=0.5)
    assert len(d.x_test) in (898, 899)


@pytest.mark.parametrize("test_size", [0, 1, 1.5, -0.1])
def test_test_size_out_of_range(test_size):
    # our message, not the one scikit-learn would give a moment later
    with raises_naming(ValueError, r"^test_size must be in \(0, 1\)"):
        load_digits_split(test_size=test_size)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"test_size": "0.2"}, "^test_size must be a real number"),
        ({"test_size": True}, "^test_size must be a real number"),
        ({"seed": 1.0}, "^seed must be an int, got float"),
        ({"seed": None}, "^seed must be an int, got NoneType"),
        ({"dtype": np.int32}, "^dtype must be a floating dtype, got int32"),
        ({"standardize": 1}, "^standardize must be a bool"),
    ],
)
def test_wrong_types(kwargs, name):
    with raises_naming(TypeError, name):
        load_digits_split(**kwargs)


def test_pixels_blank_in_training_are_only_centred():
    raw = load_digits_split(dtype=np.float64, standardize=False)
    d = load_digits_split(dtype=np.float64)
    blank = raw.x_train.std(axis=0) == 0
    # not divided by 0, nor by anything else: the test set may have ink there
    np.testing.assert_array_equal(
        d.x_test[:, blank], raw.x_test[:, blank] - raw.x_train[:, blank].mean(axis=0)
    )
    assert np.abs(d.x_test[:, blank]).max() > 0


def test_raw_intensities_without_standardizing():
    raw = load_digits_split(standardize=False)
    std = load_digits_split()
    assert raw.x_train.min() == 0 and raw.x_train.max() == 16
    np.testing.assert_array_equal(raw.y_test, std.y_test)
    assert np.all(np.isin(raw.x_test, np.arange(17)))


def test_select_classes_keeps_and_relabels_those_classes():
    d = load_digits_split()
    new = select_classes(d, [7, 5])
    seven, five = d.x_train[d.y_train == 7], d.x_train[d.y_train == 5]
    np.testing.assert_array_equal(new.x_train[new.y_train == 0], seven)
    np.testing.assert_array_equal(new.x_train[new.y_train == 1], five)
    assert len(new.y_train) == len(seven) + len(five)
    np.testing.assert_array_equal(new.x_test[new.y_test == 0], d.x_test[d.y_test == 7])
    assert (
        set(new.y_test) == {0, 1} and len(new.y_test) == np.isin(d.y_test, [5, 7]).sum()
    )
    assert new.y_train.dtype == np.int64


def test_select_classes_draws_a_few_training_examples_per_class():
    d = load_digits_split()
    few = select_classes(d, range(5, 10), per_class=3, seed=4)
    assert np.bincount(few.y_train).tolist() == [3] * 5
    # each drawn example is one of that class, and none is drawn twice
    for x, y in zip(few.x_train, few.y_train, strict=True):
        assert (np.abs(d.x_train[d.y_train == y + 5] - x).sum(axis=1) == 0).any()
    assert len(np.unique(few.x_train, axis=0)) == 15
    again = select_classes(d, range(5, 10), per_class=3, seed=4)
    other = select_classes(d, range(5, 10), per_class=3, seed=5)
    np.testing.assert_array_equal(few.x_train, again.x_train)
    assert not np.array_equal(few.x_train, other.x_train)
    # the test set is whole
    assert len(few.y_test) == np.isin(d.y_test, range(5, 10)).sum()


def test_select_classes_edge_cases_that_are_allowed():
    d = load_digits_split()
    every = select_classes(d, range(10))  # all the classes: not a proper subset
    np.testing.assert_array_equal(every.y_test, d.y_test)
    fewest = np.bincount(d.y_train).min()
    rarest = int(np.argmin(np.bincount(d.y_train)))
    whole = select_classes(d, [rarest, 0], per_class=int(fewest))
    # every example of the rarest class, each once: drawn without replacement
    assert len(np.unique(whole.x_train[whole.y_train == 0], axis=0)) == len(
        np.unique(d.x_train[d.y_train == rarest], axis=0)
    )
    one = select_classes(d, [3, 4], per_class=1)
    assert one.y_train.tolist() == [0, 1]
    # the default seed is 0
    np.testing.assert_array_equal(
        select_classes(d, [3, 4], per_class=5).x_train,
        select_classes(d, [3, 4], per_class=5, seed=0).x_train,
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"data": (1, 2, 3, 4)}, TypeError, "^data must be a Digits, got tuple"),
        ({"classes": 5}, TypeError, "^classes must be a sequence of ints, got int"),
        ({"classes": [5.0]}, TypeError, "^each of classes must be an int"),
        ({"classes": []}, ValueError, "classes"),
        ({"classes": [5, 5]}, ValueError, "classes"),
        ({"classes": [10]}, ValueError, "classes"),
        ({"per_class": 0}, ValueError, "^per_class must be >= 1"),
        ({"per_class": 1000}, ValueError, "^per_class must be at most"),
        ({"per_class": 2.0}, TypeError, "per_class"),
        ({"seed": "0"}, TypeError, "^seed must be an int"),
    ],
)
def test_select_classes_bad_arguments(kwargs, error, name):
    arguments = {"data": load_digits_split(), "classes": [1, 2]} | kwargs
    with raises_naming(error, name):
        select_classes(**arguments)


def test_minibatches_cover_each_epoch_once():
    batches = minibatches(10, 3, seed=0)
    epoch = np.concatenate([next(batches) for _ in range(3)])
    assert len(set(epoch)) == 9  # 3 batches of 3; the tenth example sits out
    again = minibatches(10, 3, seed=0)
    np.testing.assert_array_equal(next(again), epoch[:3])
    later = np.concatenate([next(batches) for _ in range(3)])
    assert not np.array_equal(later, epoch)  # a fresh permutation each epoch


def test_minibatches_of_one_and_of_everything():
    assert sorted(next(minibatches(4, 4, seed=1))) == [0, 1, 2, 3]
    fives = minibatches(5, 3, seed=1)  # one batch of 3 per epoch; 2 sit out
    assert all(len(next(fives)) == 3 for _ in range(4))
    ones = minibatches(4, 1, seed=1)
    assert sorted(int(next(ones)[0]) for _ in range(4)) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("args", "error", "name"),
    [
        ((0, 1), ValueError, "^n must be >= 1"),
        ((4.0, 1), TypeError, "^n must be an int"),
        ((4, 0), ValueError, "^batch_size must be >= 1"),
        ((4, 5), ValueError, "^batch_size must be at most n=4, got 5"),
        ((4, "2"), TypeError, "^batch_size must be an int"),
    ],
)
def test_minibatches_bad_arguments_fail_at_the_call(args, error, name):
    with raises_naming(error, name):
        minibatches(*args, seed=0)  # not at the first batch
