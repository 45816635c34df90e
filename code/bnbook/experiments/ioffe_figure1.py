"""Ioffe and Szegedy's Figure 1 at small scale: internal covariate shift (chapter 1).

Their network, 3 fully connected hidden layers of 100 sigmoid units, trained with and
without batch norm before each sigmoid; along the way, the test accuracy and the
percentiles of the input to every sigmoid of the last hidden layer, over the test
images. :class:`Figure1` holds the two Keras models (one per kind, given fresh
weights for every run, so that TensorFlow compiles each training loop once).
"""

import numpy as np

from bnbook.checks import check_bool, check_int, check_positive, check_real
from bnbook.kerasbn import train_keras
from bnbook.tfsetup import load_tensorflow, set_seed

__all__ = ["Figure1", "sigmoid_mlp"]


def sigmoid_mlp(batch_norm, n_inputs=64, hidden=100, n_classes=10):
    """3 hidden layers of ``hidden`` sigmoid units; the last pre-sigmoid layer is named.

    Weights from N(0, 0.1^2), biases 0. With ``batch_norm``, each hidden dense layer
    has no bias and is followed by a ``BatchNormalization``; the input to the i-th
    sigmoid is the layer named ``pre_sigmoid_i``. A Keras ``Sequential`` mapping
    (batch, n_inputs) to logits (batch, n_classes).
    """
    batch_norm = check_bool(batch_norm, "batch_norm")
    n_inputs = check_int(n_inputs, "n_inputs", minimum=1)
    hidden = check_int(hidden, "hidden", minimum=1)
    n_classes = check_int(n_classes, "n_classes", minimum=1)
    _, keras = load_tensorflow()
    init = keras.initializers.RandomNormal(stddev=0.1)
    layers = [keras.Input(shape=(n_inputs,))]
    for i in (1, 2, 3):
        name = f"pre_sigmoid_{i}"
        if batch_norm:
            layers.append(
                keras.layers.Dense(hidden, use_bias=False, kernel_initializer=init)
            )
            layers.append(keras.layers.BatchNormalization(name=name))
        else:
            layers.append(
                keras.layers.Dense(hidden, kernel_initializer=init, name=name)
            )
        layers.append(keras.layers.Activation("sigmoid"))
    layers.append(keras.layers.Dense(n_classes, kernel_initializer=init))
    return keras.Sequential(layers)


class Figure1:
    """The two networks of the figure on one data set, and the runs that train them.

    Parameters
    ----------
    data : a split from :func:`bnbook.data.load_digits_split`
    batch_size : int >= 1, the mini-batch of SGD
    every : int >= 1, the steps between two measurements
    percentiles : numbers in [0, 100], the percentiles of each sigmoid input that
        :meth:`train` records
    """

    def __init__(self, data, *, batch_size=60, every=25, percentiles=(15, 50, 85)):
        tf, keras = load_tensorflow()
        self.data = data
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.every = check_int(every, "every", minimum=1)
        self.percentiles = tuple(
            check_real(p, "percentiles", 0, 100) for p in percentiles
        )
        if not self.percentiles:
            raise ValueError("percentiles must hold at least one percentile")
        self.x_test = tf.constant(data.x_test)
        self.models = {
            bn: sigmoid_mlp(bn, data.x_test.shape[1]) for bn in (False, True)
        }
        self.probes = {  # the same layers, up to the input of the third sigmoid
            bn: keras.Model(m.inputs, m.get_layer("pre_sigmoid_3").output)
            for bn, m in self.models.items()
        }
        self._test_logits = tf.function(self._logits)
        self._sigmoid_inputs = tf.function(self.pre_sigmoid)

    def fresh_model(self, batch_norm, seed):
        """``models[batch_norm]``, with the weights a new network gets from ``seed``."""
        batch_norm = check_bool(batch_norm, "batch_norm")
        set_seed(seed)
        n_inputs = self.data.x_test.shape[1]
        self.models[batch_norm].set_weights(
            sigmoid_mlp(batch_norm, n_inputs).get_weights()
        )
        return self.models[batch_norm]

    def _logits(self, batch_norm):
        """The model's logits on the test images, in inference mode."""
        return self.models[batch_norm](self.x_test, training=False)

    def pre_sigmoid(self, batch_norm, trainable, non_trainable):
        """The input to each sigmoid of the last hidden layer, (test images, hidden),
        for the probe's variables at the values ``trainable`` and ``non_trainable``
        (compiled once per network by :meth:`sigmoid_inputs`)."""
        # training=True: batch statistics, as during training; stateless: the
        # model's moving statistics are not updated by this measurement.
        probe = self.probes[batch_norm]
        out, _ = probe.stateless_call(
            trainable, non_trainable, self.x_test, training=True
        )
        return out

    def test_accuracy(self, batch_norm):
        """The test accuracy of ``models[batch_norm]`` in inference mode, and whether
        its logits are all finite."""
        logits = self._test_logits(batch_norm).numpy()
        accuracy = np.mean(np.argmax(logits, axis=1) == self.data.y_test)
        return accuracy, bool(np.isfinite(logits).all())

    def sigmoid_inputs(self, batch_norm):
        """The input to each sigmoid of the last hidden layer, (test images, hidden),
        as the network computes it while training, without changing the model."""
        probe = self.probes[batch_norm]
        return self._sigmoid_inputs(
            batch_norm,
            [v.value for v in probe.trainable_variables],
            [v.value for v in probe.non_trainable_variables],
        ).numpy()

    def train(self, batch_norm, seed, *, steps, lr):
        """Train one network; the test accuracy and percentiles at every checkpoint.

        Checkpoints are step 0 and every ``every`` steps up to ``steps``. Returns
        ``accuracy`` (T,) and ``quantiles`` (T, len(percentiles), hidden), T the
        number of checkpoints.
        """
        steps = check_int(steps, "steps", minimum=1)
        lr = check_positive(lr, "lr")
        model = self.fresh_model(batch_norm, seed)
        accuracy, quantiles = [], []

        def measure(step, model):  # called every `every` steps
            accuracy.append(self.test_accuracy(batch_norm)[0])
            a = self.sigmoid_inputs(batch_norm)
            quantiles.append(np.percentile(a, self.percentiles, axis=0))

        train_keras(
            model,
            self.data,
            steps=steps,
            lr=lr,
            seed=seed,
            batch_size=self.batch_size,
            callback=measure,
            every=self.every,
        )
        return np.array(accuracy), np.array(quantiles)

    def steps_to_target(self, batch_norm, seed, *, lr, target, max_steps):
        """Train until the test accuracy reaches ``target`` (checked every ``every``
        steps); the step at which it did, or inf if not within ``max_steps`` (or if
        the logits stop being finite)."""
        lr = check_positive(lr, "lr")
        target = check_real(target, "target", 0, 1)
        max_steps = check_int(max_steps, "max_steps", minimum=1)
        model = self.fresh_model(batch_norm, seed)
        reached = []

        def check(step, model):  # returning True stops the run
            accuracy, finite = self.test_accuracy(batch_norm)
            if accuracy >= target:
                reached.append(step)
            return bool(reached) or not finite

        train_keras(
            model,
            self.data,
            steps=max_steps,
            lr=lr,
            seed=seed,
            batch_size=self.batch_size,
            callback=check,
            every=self.every,
        )
        return reached[0] if reached else np.inf
