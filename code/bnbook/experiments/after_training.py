"""Chapter 11's experiments: the moving statistics against the population's, digits
shifted at test time, and averaged weights.

- :func:`train_digits` trains the chapter's network (SGD with momentum and weight
  decay) and measures its moving statistics along the way;
- :func:`statistics_error` says how far each batch norm's moving statistics are from
  the population statistics of the same weights on the training set;
- :func:`corrupt` and :func:`shifted_test_set` make the shifted digits: noise, lower
  contrast, blur, a translation;
- :func:`adapted_accuracy` scores a network on test batches of a given size, each
  normalized by :func:`bnbook.adaptation.predict_adapted`;
- :class:`WeightAverage` keeps an exponential moving average of a network's
  parameters, and of its moving statistics, during training.
"""

import copy

import numpy as np

from bnbook.adaptation import batch_norms, predict_adapted
from bnbook.batchnorm import BatchNorm
from bnbook.checks import check_int, check_real
from bnbook.data import load_digits_split
from bnbook.mlp import build_mlp, state_kept, train_mlp
from bnbook.optim import SGD

__all__ = [
    "CORRUPTIONS",
    "WeightAverage",
    "adapted_accuracy",
    "corrupt",
    "shifted_test_set",
    "statistics_error",
    "train_digits",
]

#: The shifts of chapter 11, each at one severity, on the raw intensities 0..16.
CORRUPTIONS = {
    "noise": "Gaussian noise of standard deviation 1, clipped to 0..16",
    "contrast": "each image's deviations from its mean intensity multiplied by 0.7",
    "blur": "a Gaussian blur of standard deviation 0.6 pixels",
    "shift": "translated one pixel to the right",
}


def train_digits(seed, lr, *, steps=600, weight_decay=5e-4, every=100, average=None):
    """Train chapter 11's network, Dense-BN-ReLU twice then a classifier, 64-100-100-10,
    on the digits split by ``seed``: SGD with momentum 0.9 and (coupled) weight decay,
    batches of 64, ``steps`` steps at rate ``lr``.

    Every ``every`` steps, the :func:`statistics_error` of its last batch norm is
    measured; ``average``, a :class:`WeightAverage`, is updated after every step.
    Returns ``(model, data, errors)``, ``errors`` of shape (steps // every, 3)."""
    every = check_int(every, "every", minimum=1)
    data = load_digits_split(seed=seed, dtype=np.float64)
    model = build_mlp((64, 100, 100, 10), norm=BatchNorm, seed=seed)
    errors = []

    def measure(step, m):
        if average is not None:
            average.update(step, m)
        if step > 0 and step % every == 0:
            errors.append(statistics_error(m, data.x_train)[-1])

    train_mlp(
        model,
        data,
        optimizer=SGD(lr, 0.9, weight_decay),
        steps=steps,
        batch_size=64,
        seed=seed,
        eval_every=steps,
        callback=measure,
        callback_every=1 if average is not None else every,
    )
    return model, data, np.array(errors).reshape(-1, 3)


def statistics_error(model, x):
    """For each batch norm of ``model``, how far its moving statistics are from the
    population statistics of ``x`` (the training set) under the same weights.

    Returns an array (layers, 3): the mean over the units of
    ``|moving mean - mean| / sqrt(variance + eps)``, of
    ``log((moving variance + eps) / (variance + eps))`` (positive: the moving variance
    is too large), and, for reference, of ``log(variance + eps)``, the population's.
    The model is left as it was."""
    moving = [(bn.moving_mean, bn.moving_variance) for bn in batch_norms(model)]
    if not moving:
        raise ValueError("model has no batch norm")
    with state_kept(model):
        model.calibrate(x)
        rows = []
        for bn, (mean, variance) in zip(batch_norms(model), moving, strict=True):
            scale = bn.moving_variance + bn.epsilon  # the population's, from calibrate
            rows.append(
                (
                    np.mean(np.abs(mean - bn.moving_mean) / np.sqrt(scale)),
                    np.mean(np.log((variance + bn.epsilon) / scale)),
                    np.mean(np.log(scale)),
                )
            )
    return np.array(rows)


def corrupt(images, kind, *, seed=0):
    """The raw digits ``images`` (n, 64), intensities 0..16, shifted by ``kind``, one
    of :data:`CORRUPTIONS` (``"clean"`` leaves them as they are); the noise is drawn
    with ``seed``. Returns a new float64 array (n, 64)."""
    from scipy import ndimage

    if kind not in ("clean", *CORRUPTIONS):
        raise ValueError(
            f"kind must be 'clean' or one of {', '.join(CORRUPTIONS)}, got {kind!r}"
        )
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 2 or images.shape[1] != 64:
        raise ValueError(f"images must have shape (n, 64), got {images.shape}")
    img = images.reshape(-1, 8, 8)
    if kind == "noise":
        rng = np.random.default_rng(check_int(seed, "seed"))
        img = np.clip(img + rng.normal(0.0, 1.0, img.shape), 0, 16)
    elif kind == "contrast":
        mean = img.mean(axis=(1, 2), keepdims=True)
        img = mean + 0.7 * (img - mean)
    elif kind == "blur":
        img = ndimage.gaussian_filter(img, sigma=(0, 0.6, 0.6))
    elif kind == "shift":
        img = np.pad(img, ((0, 0), (0, 0), (1, 0)))[:, :, :-1]
    return img.reshape(-1, 64).copy()


def shifted_test_set(kind, seed=0):
    """The test set of ``load_digits_split(seed=seed)`` shifted by ``kind`` (see
    :func:`corrupt`, whose noise is drawn with the same seed), then standardized with
    the training set's pixel means and standard deviations, as the training data are.

    Returns ``(x, y)``: float64 (n, 64) and the labels (n,)."""
    raw = load_digits_split(seed=seed, dtype=np.float64, standardize=False)
    mu, sigma = raw.x_train.mean(axis=0), raw.x_train.std(axis=0)
    sigma[sigma == 0] = 1.0  # as load_digits_split: constant pixels only centred
    x = (corrupt(raw.x_test, kind, seed=seed) - mu) / sigma
    return x, raw.y_test


def adapted_accuracy(model, x, y, *, batch_size, prior, order=None):
    """The accuracy of ``model`` on ``x`` taken in batches of ``batch_size`` (in the
    given ``order``, by default as they are; a last, smaller batch is dropped), each
    batch predicted by :func:`~bnbook.adaptation.predict_adapted` with ``prior``."""
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if batch_size > len(x):
        raise ValueError(f"batch_size must be at most {len(x)}, got {batch_size}")
    order = np.arange(len(x)) if order is None else np.asarray(order)
    if sorted(order.tolist()) != list(range(len(x))):
        raise ValueError(f"order must be a permutation of the {len(x)} examples")
    x, y = np.asarray(x)[order], np.asarray(y)[order]
    kept = len(x) - len(x) % batch_size
    predicted = np.concatenate(
        [
            np.argmax(predict_adapted(model, x[i : i + batch_size], prior), axis=1)
            for i in range(0, kept, batch_size)
        ]
    )
    return float(np.mean(predicted == y[:kept]))


class WeightAverage:
    """An exponential moving average of a network's parameters, updated after each
    step: ``average = decay * average + (1 - decay) * parameter`` (Polyak averaging,
    as training scripts keep it). It averages the batch norms' moving statistics the
    same way, as timm's ``ModelEmaV2`` does; Keras's ``use_ema`` averages only the
    trained variables.

    Use ``update(step, model)`` as :func:`bnbook.mlp.train_mlp`'s callback with
    ``callback_every=1``. :meth:`model` returns a copy of the network with the
    averaged parameters and, by ``statistics``, the network's own moving statistics
    (``"inherited"``) or the averaged ones (``"averaged"``)."""

    def __init__(self, decay=0.99):
        self.decay = check_real(decay, "decay", 0, 1, open_high=True)
        self.params = None
        self.statistics = None

    def update(self, step, model):
        params = [p for p, _ in model.params()]
        stats = [(bn.moving_mean, bn.moving_variance) for bn in batch_norms(model)]
        if self.params is None:
            self.params = [p.copy() for p in params]
            self.statistics = [(m.copy(), v.copy()) for m, v in stats]
            return
        d = self.decay
        for average, p in zip(self.params, params, strict=True):
            average *= d
            average += (1 - d) * p
        self.statistics = [
            (d * m_avg + (1 - d) * m, d * v_avg + (1 - d) * v)
            for (m_avg, v_avg), (m, v) in zip(self.statistics, stats, strict=True)
        ]

    def model(self, model, statistics="inherited"):
        if self.params is None:
            raise ValueError("no average yet: call update(step, model) first")
        if statistics not in ("inherited", "averaged"):
            raise ValueError(
                f'statistics must be "inherited" or "averaged", got {statistics!r}'
            )
        averaged = copy.deepcopy(model)
        for (p, _), average in zip(averaged.params(), self.params, strict=True):
            p[...] = average
        if statistics == "averaged":
            for bn, (m, v) in zip(batch_norms(averaged), self.statistics, strict=True):
                bn.set_moving_statistics(m.copy(), v.copy())
        return averaged
