"""Keras's BatchNormalization, driven the way the book's NumPy layer is.

These helpers build a ``keras.layers.BatchNormalization`` with given weights, run it
forward and backward, calibrate a model's moving statistics, and fold its batch norms
into the layers before them. Chapter 4 and the parity tests share them.
"""

import numpy as np

from bnbook.batchnorm import BatchNorm
from bnbook.checks import check_bool, check_callable, check_int, check_positive
from bnbook.data import Digits, minibatches
from bnbook.folding import fold_batch_norm
from bnbook.layers import Dense, ReLU, Sequential
from bnbook.tfsetup import load_tensorflow

__all__ = [
    "calibrate_batch_norm",
    "convnet",
    "fold_sequential",
    "freeze_batch_norm",
    "images",
    "keras_batch_norm",
    "keras_forward_backward",
    "keras_twin",
    "moving_statistics_of",
    "parity_errors",
    "run_per_replica",
    "train_keras",
]


def keras_batch_norm(
    input_shape,
    *,
    axis=-1,
    momentum=0.99,
    epsilon=1e-3,
    center=True,
    scale=True,
    dtype="float32",
    gamma=None,
    beta=None,
    moving_mean=None,
    moving_variance=None,
):
    """A built ``keras.layers.BatchNormalization``; given weights replace the defaults.

    ``input_shape`` includes the batch axis, e.g. ``(None, 8)`` or ``(None, 4, 4, 3)``.
    """
    _, keras = load_tensorflow()
    layer = keras.layers.BatchNormalization(
        axis=axis,
        momentum=momentum,
        epsilon=epsilon,
        center=center,
        scale=scale,
        dtype=dtype,
    )
    layer.build(tuple(input_shape))
    for name, value in (
        ("gamma", gamma),
        ("beta", beta),
        ("moving_mean", moving_mean),
        ("moving_variance", moving_variance),
    ):
        if value is None:
            continue
        variable = getattr(layer, name)
        if variable is None:
            raise ValueError(f"{name} was given, but the layer has none (center/scale)")
        variable.assign(np.asarray(value, dtype=dtype))
    return layer


def keras_forward_backward(layer, x, dy, training=True):
    """``y`` and the gradients of ``sum(y * dy)``: ``dx``, ``dgamma``, ``dbeta``.

    ``dgamma`` / ``dbeta`` are None when the layer has no ``gamma`` / ``beta``.
    A training-mode call also updates the layer's moving statistics, as in Keras.
    """
    tf, _ = load_tensorflow()
    x = tf.Variable(np.asarray(x, dtype=layer.dtype))
    params = [p for p in (layer.gamma, layer.beta) if p is not None]
    with tf.GradientTape() as tape:
        y = layer(x, training=training)
        loss = tf.reduce_sum(y * tf.constant(dy, dtype=y.dtype))
    dx, *grads = tape.gradient(loss, [x, *params])
    grads = iter(g.numpy() for g in grads)
    dgamma = next(grads) if layer.gamma is not None else None
    dbeta = next(grads) if layer.beta is not None else None
    return y.numpy(), dx.numpy(), dgamma, dbeta


def _scaled_error(ours, theirs):
    """max |ours - theirs| / (1 + |theirs|): at most tol iff assert_allclose(rtol=atol=tol)."""
    theirs = np.asarray(theirs, np.float64)
    return float(
        np.max(np.abs(np.asarray(ours, np.float64) - theirs) / (1 + np.abs(theirs)))
    )


def parity_errors(
    shape,
    *,
    axis=-1,
    dtype="float32",
    momentum=0.99,
    epsilon=1e-3,
    center=True,
    scale=True,
    steps=3,
    offset=0.0,
    seed=0,
    layer=BatchNorm,
):
    """Run the book's ``BatchNorm`` (or another ``layer`` class taking its options) and
    Keras's side by side; return their differences.

    Both start from the same random ``gamma`` and ``beta`` and see ``steps`` training
    batches ``offset + N(1, 2^2)`` of ``shape``, each with a random upstream gradient,
    then one inference batch. Returns a dict of the worst scaled error
    max |ours - keras| / (1 + |keras|) of: ``y (training)``, ``dx``, ``dgamma``,
    ``dbeta``, ``moving_mean``, ``moving_variance`` and ``y (inference)``
    (``dgamma``/``dbeta`` are absent without ``scale``/``center``).
    """
    rng = np.random.default_rng(seed)
    c = shape[axis]
    gamma = rng.uniform(0.5, 2.0, c).astype(dtype) if scale else None
    beta = rng.normal(size=c).astype(dtype) if center else None
    options = {"axis": axis, "momentum": momentum, "epsilon": epsilon}
    options |= {"center": center, "scale": scale}
    theirs = keras_batch_norm(
        (None, *shape[1:]), dtype=dtype, gamma=gamma, beta=beta, **options
    )
    ours = layer(**options)
    ours.build(c, np.dtype(dtype))
    ours.gamma, ours.beta = gamma, beta
    errors = {}

    def record(name, a, b):
        errors[name] = max(errors.get(name, 0.0), _scaled_error(a, b))

    def batch():
        return (offset + rng.normal(1.0, 2.0, size=shape)).astype(dtype)

    for _ in range(steps):
        x, dy = batch(), rng.normal(size=shape).astype(dtype)
        y_k, dx_k, dgamma_k, dbeta_k = keras_forward_backward(theirs, x, dy)
        record("y (training)", ours(x, training=True), y_k)
        record("dx", ours.backward(dy), dx_k)
        if scale:
            record("dgamma", ours.dgamma, dgamma_k)
        if center:
            record("dbeta", ours.dbeta, dbeta_k)
        record("moving_mean", ours.moving_mean, theirs.moving_mean.numpy())
        record("moving_variance", ours.moving_variance, theirs.moving_variance.numpy())
    x = batch()
    record("y (inference)", ours(x), theirs(x, training=False).numpy())
    return errors


def _batch_norm_layers(model):
    """Every BatchNormalization of ``model``, inside nested models too."""
    _, keras = load_tensorflow()
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += _batch_norm_layers(layer)
    return found


def calibrate_batch_norm(model, x):
    """Set every BatchNormalization's moving statistics to those of ``x``.

    One training-mode pass over ``x`` as a single batch, with every momentum
    temporarily 0, so the moving statistics become exactly the batch statistics each
    layer sees; no weight changes. Frozen layers (``trainable = False``, which would
    run in inference mode) are calibrated too. A fix for moving averages that have not
    caught up (the warm-up) or that describe other data.
    """
    layers = _batch_norm_layers(model)
    if not layers:
        raise ValueError("model has no BatchNormalization layer to calibrate")
    kept = [(layer.momentum, layer.trainable) for layer in layers]
    try:
        for layer in layers:
            layer.momentum, layer.trainable = 0.0, True
        model(np.asarray(x), training=True)
    finally:
        for layer, (momentum, trainable) in zip(layers, kept, strict=True):
            layer.momentum, layer.trainable = momentum, trainable


def moving_statistics_of(model):
    """A copy of the moving statistics of every BatchNormalization of ``model``.

    Returns a list with one pair ``(moving_mean, moving_variance)`` of NumPy arrays of
    shape (channels,) per layer, nested models included, in the order of the layers;
    training the model later leaves the copy as it is.
    """
    layers = _batch_norm_layers(model)
    if not layers:
        raise ValueError("model has no BatchNormalization layer")
    return [
        (bn.moving_mean.numpy().copy(), bn.moving_variance.numpy().copy())
        for bn in layers
    ]


def freeze_batch_norm(model):
    """Set ``trainable = False`` on every BatchNormalization of ``model``.

    A Keras batch norm that is not trainable runs in inference mode even when the model
    is called with ``training=True``, as ``fit`` calls it: it normalizes with its moving
    statistics, does not update them, and does not train gamma and beta. The other
    layers keep their ``trainable``. ``trainable`` is read when a training step is
    traced, so freeze before the first ``fit`` (or ``compile`` again). Returns the
    number of layers frozen.
    """
    layers = _batch_norm_layers(model)
    if not layers:
        raise ValueError("model has no BatchNormalization layer to freeze")
    for bn in layers:
        bn.trainable = False
    return len(layers)


def fold_sequential(model):
    """A copy of a Sequential model with each BatchNormalization folded into the
    Dense or Conv2D layer just before it (see :func:`bnbook.folding.fold_batch_norm`).

    The copy computes what ``model`` computes in inference mode, with fewer layers.
    """
    _, keras = load_tensorflow()
    if not isinstance(model, keras.Sequential):
        raise TypeError(f"model must be a keras.Sequential, got {type(model).__name__}")
    absorbing = keras.layers.Dense | keras.layers.Conv2D
    new_layers, new_weights = [], []
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            config = layer.get_config()
            weights = layer.get_weights()
            if isinstance(layer, absorbing) and not layer.use_bias:
                config["use_bias"] = True  # the folded layer needs a bias
                weights.append(np.zeros(weights[0].shape[-1], weights[0].dtype))
            new_layers.append(layer.__class__.from_config(config))
            new_weights.append(weights)
            continue
        before = new_layers[-1] if new_layers else None
        if not isinstance(before, absorbing) or before.activation.__name__ != "linear":
            raise ValueError(
                f"{layer.name} must follow a Dense or Conv2D layer without activation"
            )
        kernel, bias = new_weights[-1]
        new_weights[-1] = fold_batch_norm(
            kernel,
            bias,
            None if layer.gamma is None else layer.gamma.numpy(),
            None if layer.beta is None else layer.beta.numpy(),
            layer.moving_mean.numpy(),
            layer.moving_variance.numpy(),
            epsilon=layer.epsilon,
        )
    folded = keras.Sequential([keras.Input(model.input_shape[1:]), *new_layers])
    for layer, weights in zip(new_layers, new_weights, strict=True):
        layer.set_weights(list(weights))
    return folded


def train_keras(model, data, *, steps, lr, seed, batch_size=60, callback=None, every=1):
    """Train a Keras classifier with plain SGD in a custom loop, as chapters 1 and 4 do.

    The batches are those of :func:`bnbook.data.minibatches` (the NumPy networks see
    the same ones); the loss is the cross-entropy of integer labels under the model's
    logits; the model is called with ``training=True``, so its batch norms use batch
    statistics and update their moving ones.

    ``callback(step, model)``, if given, is called before the first step (``step=0``)
    and after every ``every`` steps (and the last); if it returns ``True``, training
    stops there (a run that only needs to reach a target). The steps between two
    calls run in one compiled TensorFlow loop: the same numbers as one call per step,
    without Python's overhead on each. The loop is compiled once per model: to train
    one model again from new weights (``model.set_weights``), pass it again. Returns
    the training loss of every step taken, shape (steps taken,).
    """
    steps = check_int(steps, "steps", minimum=1)
    lr = check_positive(lr, "lr")
    every = check_int(every, "every", minimum=1)
    if callback is not None:
        check_callable(callback, "callback")
    train_steps = _sgd_loop(model)
    train_steps.optimizer.learning_rate = lr

    losses = []
    batches = minibatches(len(data.x_train), batch_size, seed)
    if callback is not None and callback(0, model) is True:
        return np.zeros(0)
    for step in range(0, steps, every):
        chunk = np.stack([next(batches) for _ in range(min(every, steps - step))])
        losses.extend(train_steps(data.x_train[chunk], data.y_train[chunk]).numpy())
        if callback is not None and callback(step + len(chunk), model) is True:
            break
    return np.array(losses, dtype=float)


# The training loops of the last few models, compiled once each: tracing one costs as
# much as some hundreds of steps, and an experiment that trains one model on many seeds
# reuses it. Keyed by id: a loop keeps its model alive, so no id is reused meanwhile.
_SGD_LOOPS = {}
_KEPT = 8


def _sgd_loop(model):
    """A compiled function: one SGD step of ``model`` per batch, xs (k, batch, ...),
    ys (k, batch) -> losses (k,). Plain SGD keeps no state, so runs can share it."""
    if id(model) in _SGD_LOOPS:
        return _SGD_LOOPS[id(model)]
    tf, keras = load_tensorflow()
    optimizer = keras.optimizers.SGD()
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train_steps(xs, ys):
        losses = tf.TensorArray(tf.float32, size=tf.shape(xs)[0])
        for i in tf.range(tf.shape(xs)[0]):
            with tf.GradientTape() as tape:
                loss = loss_fn(ys[i], model(xs[i], training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(
                zip(grads, model.trainable_variables, strict=True)
            )
            losses = losses.write(i, loss)
        return losses.stack()

    train_steps.optimizer = optimizer
    if len(_SGD_LOOPS) == _KEPT:
        del _SGD_LOOPS[next(iter(_SGD_LOOPS))]  # the oldest
    _SGD_LOOPS[id(model)] = train_steps
    return train_steps


def keras_twin(model, n_inputs):
    """A Keras model that computes what the NumPy ``model`` computes, from its
    current weights, for inputs of shape (batch, n_inputs).

    ``model`` is a :class:`~bnbook.layers.Sequential` of :class:`Dense`,
    :class:`ReLU` and batch-norm layers: any layer with the attributes ``gamma``,
    ``beta``, ``moving_mean`` and ``moving_variance`` (the workbook's layer too),
    which becomes a ``keras.layers.BatchNormalization`` with Keras's defaults.
    """
    _, keras = load_tensorflow()
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a Sequential, got {type(model).__name__}")
    n_inputs = check_int(n_inputs, "n_inputs", minimum=1)
    twins, weights = [], []
    for layer in model.layers:
        twin, values = _keras_layer(layer, keras)
        twins.append(twin)
        weights.append(values)
    twin_model = keras.Sequential([keras.Input((n_inputs,)), *twins])
    for twin, values in zip(twins, weights, strict=True):
        twin.set_weights([np.asarray(v, np.float32) for v in values])
    return twin_model


BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


def _keras_layer(layer, keras):
    """The Keras layer that computes what ``layer`` does, and its weights."""
    if isinstance(layer, Dense):
        bias = layer.b is not None
        dense = keras.layers.Dense(layer.W.shape[1], use_bias=bias)
        return dense, [layer.W, layer.b] if bias else [layer.W]
    if isinstance(layer, ReLU):
        return keras.layers.ReLU(), []
    if all(hasattr(layer, name) for name in BN_WEIGHTS):
        return keras.layers.BatchNormalization(), [
            getattr(layer, name) for name in BN_WEIGHTS
        ]
    raise ValueError(
        f"model holds a {type(layer).__name__}: keras_twin knows Dense, ReLU and "
        "batch-norm layers"
    )


def run_per_replica(strategy, fn, x):
    """``fn`` on each replica of a ``tf.distribute`` strategy, with its slice of x.

    ``x`` (N, ...) is cut along axis 0 into ``strategy.num_replicas_in_sync`` equal,
    consecutive slices, as a distributed dataset cuts a global batch; replica k
    computes ``fn(slice k)``, inside one ``tf.function`` so that operations across
    replicas (a synchronized batch norm's all-reduce) run as in training. Returns
    one NumPy array per replica, in order.
    """
    tf, _ = load_tensorflow()
    check_callable(fn, "fn")
    n = strategy.num_replicas_in_sync
    x = np.asarray(x)
    if x.ndim < 1 or len(x) % n:
        raise ValueError(
            f"x must have a first axis that the {n} replicas divide evenly, "
            f"got shape {x.shape}"
        )
    slices = np.split(x, n)
    values = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(slices[context.replica_id_in_sync_group])
    )
    outputs = tf.function(lambda v: strategy.run(fn, args=(v,)))(values)
    return [t.numpy() for t in strategy.experimental_local_results(outputs)]


def convnet(batch_norm=True):
    """Chapter 8b's small convolutional network for the 8x8 digits: two blocks
    Conv2D(3x3, 8 then 16 channels), [batch norm], ReLU, MaxPool(2x2); then a dense
    output layer. With batch norm the convolutions have no bias."""
    _, keras = load_tensorflow()
    check_bool(batch_norm, "batch_norm")
    layers = keras.layers

    def block(channels):
        conv = layers.Conv2D(channels, 3, padding="same", use_bias=not batch_norm)
        norm = [layers.BatchNormalization()] if batch_norm else []
        return [conv, *norm, layers.ReLU(), layers.MaxPooling2D(2)]

    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            *block(8),
            *block(16),
            layers.Flatten(),
            layers.Dense(10),
        ]
    )


def images(data):
    """The digits (a :class:`~bnbook.data.Digits`) as 8x8 images with one channel."""
    return Digits(
        data.x_train.reshape(-1, 8, 8, 1),
        data.y_train,
        data.x_test.reshape(-1, 8, 8, 1),
        data.y_test,
    )
