"""The book's data: scikit-learn's handwritten digits, shipped with the package.

No download is ever needed: ``load_digits`` reads a file inside scikit-learn.
"""

from typing import NamedTuple

import numpy as np

from bnbook.checks import check_bool, check_int, check_real

__all__ = ["Digits", "load_digits_split", "minibatches", "select_classes"]


class Digits(NamedTuple):
    """A fixed train/test split of the 8x8 digits (pixel intensities 0 to 16).

    ``x_*`` have shape ``(n, 64)``, ``y_*`` hold integer labels 0..9 of shape ``(n,)``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split(test_size=0.25, seed=0, dtype=np.float32, standardize=True):
    """Load the 1797 digits, split them (stratified) and standardize each pixel.

    The mean and standard deviation come from the training set alone, so nothing of
    the test set leaks into training. Pixels that are constant in the training set
    (the corners are always blank) are only centred, not divided by zero. With
    ``standardize=False`` the raw intensities 0..16 are returned.

    Parameters
    ----------
    test_size : float in (0, 1)
        Fraction of the examples held out for testing.
    seed : int
        Seed of the split; the same seed always gives the same split.
    dtype : float dtype
        dtype of ``x_train`` and ``x_test`` (labels are ``int64``).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    check_real(test_size, "test_size", 0, 1, open_low=True, open_high=True)
    check_int(seed, "seed")
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise TypeError(f"dtype must be a floating dtype, got {np.dtype(dtype)}")
    check_bool(standardize, "standardize")

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    mu, sigma = x_train.mean(axis=0), x_train.std(axis=0)
    sigma[sigma == 0] = 1.0
    if not standardize:
        mu, sigma = 0.0, 1.0
    standardize = lambda a: ((a - mu) / sigma).astype(dtype)  # noqa: E731
    return Digits(
        standardize(x_train),
        y_train.astype(np.int64),
        standardize(x_test),
        y_test.astype(np.int64),
    )


def select_classes(data, classes, per_class=None, seed=0):
    """The examples of some classes only, relabelled 0, 1, ... in the order given.

    Parameters
    ----------
    data : Digits
    classes : sequence of distinct labels that occur in ``data``, e.g. ``[5, 6, 7]``,
        which become the labels 0, 1, 2
    per_class : None for every training example of those classes, or an int >= 1:
        that many training examples of each class, drawn without replacement with
        ``seed`` (the few labelled examples of a new task); the test set keeps all of
        those classes' examples
    seed : int
    """
    if not isinstance(data, Digits):
        raise TypeError(f"data must be a Digits, got {type(data).__name__}")
    if not isinstance(classes, list | tuple | range | np.ndarray):
        raise TypeError(
            f"classes must be a sequence of ints, got {type(classes).__name__}"
        )
    classes = [check_int(c, "each of classes") for c in classes]
    known = set(np.unique(data.y_train))
    if not classes or len(set(classes)) < len(classes) or not set(classes) <= known:
        raise ValueError(
            f"classes must be distinct labels among {sorted(known)}, got {classes}"
        )
    rng = np.random.default_rng(check_int(seed, "seed"))
    train = [np.flatnonzero(data.y_train == c) for c in classes]
    if per_class is not None:
        per_class = check_int(per_class, "per_class", minimum=1)
        fewest = min(len(t) for t in train)
        if per_class > fewest:
            raise ValueError(
                f"per_class must be at most {fewest}, the training examples of the "
                f"rarest class, got {per_class}"
            )
        train = [rng.choice(t, per_class, replace=False) for t in train]
    train = np.concatenate(train)
    test = np.flatnonzero(np.isin(data.y_test, classes))
    return Digits(
        data.x_train[train],
        _relabel(data.y_train[train], classes),
        data.x_test[test],
        _relabel(data.y_test[test], classes),
    )


def _relabel(y, classes):
    """The position in ``classes`` of each label of ``y`` (all of them among it)."""
    return np.argmax(y[:, None] == np.asarray(classes), axis=1)


def minibatches(n, batch_size, seed):
    """Endless batches of indices into ``n`` examples, for training.

    Each epoch is a fresh random permutation cut into batches of ``batch_size``; the
    examples left over at the end of an epoch sit out that epoch only. The same
    ``seed`` gives the same batches, whichever framework trains on them.
    """
    n = check_int(n, "n", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if batch_size > n:
        raise ValueError(f"batch_size must be at most n={n}, got {batch_size}")
    return _batches(n, batch_size, np.random.default_rng(seed))


def _batches(n, batch_size, rng):
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]
