"""Chapter 11b's quantization pitfall: a layer whose folded columns differ in scale, at
the same function, and what int8 does to its weights.

- :func:`spread` scales every other unit of a network's first batch norm by ``c`` and
  the next layer's weights that read those units by ``1 / c``: the same function;
- :func:`folded_kernel` is one dense layer with its batch norm folded in;
- :func:`quantization_error` converts the network to int8 (per channel or per tensor)
  and measures the error of each column of the first folded kernel, each row of the
  second, and the test accuracy.
"""

import copy

import numpy as np

from bnbook.checks import check_bool, check_int, check_positive
from bnbook.folding import fold_batch_norm

__all__ = ["folded_kernel", "quantization_error", "spread"]


def spread(model, c):
    """A copy of ``model`` (Dense-BN-ReLU blocks, e.g. :func:`bnbook.mlp.build_mlp`'s)
    that computes the same function, with gamma and beta of every other unit of its
    first batch norm multiplied by ``c`` > 0 and the rows of the next dense kernel that
    read those units divided by ``c``: ReLU(c z) = c ReLU(z)."""
    c = check_positive(c, "c")
    model = copy.deepcopy(model)
    bn, after = model.layers[1], model.layers[3]
    factor = np.where(np.arange(bn.gamma.size) % 2 == 0, c, 1.0)
    bn.gamma, bn.beta = bn.gamma * factor, bn.beta * factor
    after.W = after.W / factor[:, None]
    return model


def folded_kernel(model, k):
    """The kernel of the ``k``-th Dense-BN-ReLU block of ``model`` with its batch norm
    folded in (:func:`bnbook.folding.fold_batch_norm`), shape (n_in, n_out)."""
    k = check_int(k, "k", minimum=0)
    dense, bn = model.layers[3 * k], model.layers[3 * k + 1]
    kernel, _ = fold_batch_norm(
        dense.W,
        None,
        bn.gamma,
        bn.beta,
        bn.moving_mean,
        bn.moving_variance,
        epsilon=bn.epsilon,
    )
    return kernel


def quantization_error(model, data, per_channel):
    """``model`` converted to int8 (:func:`bnbook.export.to_tflite`, 300 training
    examples as its representative data), then: the relative error of each column
    (output unit) of its first folded kernel, of each row (input) of its second, and
    its test accuracy on ``data``."""
    from bnbook.export import layer_weights, run_tflite, to_tflite
    from bnbook.kerasbn import keras_twin

    check_bool(per_channel, "per_channel")
    twin = keras_twin(model, data.x_train.shape[1])
    int8 = to_tflite(twin, int8=data.x_train[:300], per_channel=per_channel)
    first, second, *_ = (w.T for w, _ in layer_weights(int8).values())
    k1, k2 = folded_kernel(model, 0), folded_kernel(model, 1)
    columns = np.linalg.norm(first - k1, axis=0) / np.linalg.norm(k1, axis=0)
    rows = np.linalg.norm(second - k2, axis=1) / np.linalg.norm(k2, axis=1)
    accuracy = np.mean(run_tflite(int8, data.x_test).argmax(1) == data.y_test)
    return columns, rows, float(accuracy)
