"""The moving-average warm-up of a Keras network, and calibration as its fix (chapter 4).

:func:`warmup_accuracy` trains a 64-100-100-10 ReLU network with batch norm before each
ReLU and measures its test accuracy in inference mode at chosen steps, with the
moving statistics as training left them, or after a calibration pass
(:func:`bnbook.kerasbn.calibrate_batch_norm`) on a copy of the network.
"""

import numpy as np

from bnbook.checks import check_bool, check_int, check_momentum, check_positive
from bnbook.kerasbn import calibrate_batch_norm, train_keras
from bnbook.tfsetup import load_tensorflow, set_seed

__all__ = ["warmup_accuracy"]


def _check_checkpoints(checkpoints, every):
    """``checkpoints`` as a tuple of increasing ints, each a multiple of ``every``."""
    checkpoints = tuple(check_int(c, "checkpoints", minimum=1) for c in checkpoints)
    if not checkpoints or list(checkpoints) != sorted(set(checkpoints)):
        raise ValueError(
            f"checkpoints must be a non-empty increasing sequence, got {checkpoints}"
        )
    if any(c % every for c in checkpoints):
        raise ValueError(
            f"checkpoints must be multiples of every={every}, got {checkpoints}"
        )
    return checkpoints


def warmup_accuracy(
    data, *, momentum, calibrate, seed, checkpoints, lr=0.1, hidden=100, every=5
):
    """Test accuracy in inference mode at each of ``checkpoints``, for one network.

    The network, built from ``seed``: two blocks of ``Dense(hidden, use_bias=False)``,
    ``BatchNormalization(momentum=momentum)`` and ReLU, then ``Dense(10)``; trained by
    :func:`bnbook.kerasbn.train_keras` (plain SGD at ``lr``, batches of 60) for
    ``checkpoints[-1]`` steps. With ``calibrate``, each measurement is made on a twin
    with the same weights whose moving statistics are those of the whole training set.

    Parameters
    ----------
    data : a split from :func:`bnbook.data.load_digits_split`
    momentum : float in [0, 1], the batch norms' momentum
    calibrate : bool
    seed : int, the seed of the weights and of the batch order
    checkpoints : increasing ints, multiples of ``every``
    every : int >= 1, the steps run in one compiled loop between two callbacks

    Returns
    -------
    array (len(checkpoints),), the test accuracy at each checkpoint
    """
    momentum = check_momentum(momentum)
    calibrate = check_bool(calibrate, "calibrate")
    seed = check_int(seed, "seed", minimum=0)
    lr = check_positive(lr, "lr")
    hidden = check_int(hidden, "hidden", minimum=1)
    every = check_int(every, "every", minimum=1)
    checkpoints = _check_checkpoints(checkpoints, every)
    _, keras = load_tensorflow()

    set_seed(seed)

    def bn_block():
        return [
            keras.layers.Dense(hidden, use_bias=False),
            keras.layers.BatchNormalization(momentum=momentum),
            keras.layers.Activation("relu"),
        ]

    model = keras.Sequential(
        [keras.Input((data.x_train.shape[1],)), *bn_block(), *bn_block()]
        + [keras.layers.Dense(10)]
    )
    twin = keras.models.clone_model(model)
    accuracy = []

    def evaluate(step, model):
        if step not in checkpoints:
            return
        evaluated = model
        if calibrate:
            twin.set_weights(model.get_weights())
            calibrate_batch_norm(twin, data.x_train)
            evaluated = twin
        logits = evaluated(data.x_test, training=False)
        accuracy.append(np.mean(np.argmax(logits, axis=1) == data.y_test))

    # The checkpoints are multiples of ``every``: the steps between two callbacks run
    # in one compiled loop.
    train_keras(
        model,
        data,
        steps=checkpoints[-1],
        lr=lr,
        seed=seed,
        callback=evaluate,
        every=every,
    )
    return np.array(accuracy)
