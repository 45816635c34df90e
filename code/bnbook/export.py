"""A Keras network exported to TensorFlow Lite and run with the LiteRT interpreter
(chapter 11b).

- :func:`to_tflite` converts a Keras model, in inference mode or (the mistake) in
  training mode, in float or with full int8 post-training quantization, per channel
  or per tensor;
- :func:`operations` lists the operations of a converted model, read without the
  default XNNPACK delegate, which would hide them behind one ``DELEGATE`` node;
- :func:`run_tflite` runs a converted model on a batch, quantizing an int8 model's
  input and dequantizing its output;
- :func:`layer_weights` reads each layer's weights back (int8 ones dequantized), with
  their scales: one per output channel, or one for the whole tensor.

The converter prints to the terminal from C++ (paths of temporary files, flags), so
every conversion runs with file descriptors 1 and 2 pointed at ``/dev/null``.
"""

import contextlib
import io
import logging
import warnings

import numpy as np

from bnbook.checks import check_bool, check_int
from bnbook.tfsetup import _native_output_silenced, load_tensorflow

__all__ = ["layer_weights", "operations", "run_tflite", "to_tflite"]


@contextlib.contextmanager
def _silenced():
    """Nothing printed during the block: the converter's C++ logs (file descriptors 1
    and 2), Keras's export messages (sys.stdout), and its Python warnings and absl log
    lines."""
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        with (
            _native_output_silenced(1, 2),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        absl.setLevel(level)


def to_tflite(model, *, training=False, int8=None, per_channel=True, activation_bits=8):
    """The Keras ``model`` converted to a TensorFlow Lite flatbuffer (bytes).

    ``training=True`` converts ``model(x, training=True)`` instead of the inference
    call: batch norm then normalizes with the statistics of whatever batch it is given.
    ``int8``, an array of representative inputs (a few hundred training examples),
    asks for full integer quantization: int8 weights, activations, input and output.
    ``per_channel=False`` quantizes each weight tensor with one scale instead of one
    per output channel (the converter's private flag
    ``_experimental_disable_per_channel``; ``_experimental_disable_per_channel_``
    ``quantization_for_dense_layers`` would do it for dense layers alone).
    ``activation_bits=16`` keeps int8 weights but quantizes the activations to 16 bits
    (the converter's experimental 16x8 mode), with float input and output.
    """
    tf, keras = load_tensorflow()
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a Keras model, got {type(model).__name__}")
    check_bool(training, "training")
    check_bool(per_channel, "per_channel")
    if activation_bits not in (8, 16):
        raise ValueError(f"activation_bits must be 8 or 16, got {activation_bits!r}")
    examples = None if int8 is None else np.asarray(int8, dtype=np.float32)
    if examples is not None and (examples.ndim < 2 or len(examples) == 0):
        raise ValueError(
            f"int8 must be a batch of representative inputs, got shape {examples.shape}"
        )
    with _silenced():
        converter = _converter(tf, model, training)
        if examples is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([x[None]] for x in examples)
            if activation_bits == 8:
                converter.target_spec.supported_ops = [
                    tf.lite.OpsSet.TFLITE_BUILTINS_INT8
                ]
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
            else:
                ops = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
                converter.target_spec.supported_ops = [ops]
        converter._experimental_disable_per_channel = not per_channel
        return converter.convert()


def _converter(tf, model, training):
    if not training:
        return tf.lite.TFLiteConverter.from_keras_model(model)
    # stateless_call: the weights as constants, so that the graph holds no variables
    # (a training-mode call would otherwise assign the moving statistics)
    weights = [tf.constant(v) for v in model.trainable_variables]
    buffers = [tf.constant(v) for v in model.non_trainable_variables]
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
    call = tf.function(
        lambda x: model.stateless_call(weights, buffers, x, training=True)[0],
        input_signature=[spec],
    )
    return tf.lite.TFLiteConverter.from_concrete_functions(
        [call.get_concrete_function()]
    )


def _interpreter(flatbuffer):
    """LiteRT's interpreter without its default delegates (XNNPACK)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if not isinstance(flatbuffer, bytes):
        raise TypeError(
            f"flatbuffer must be the bytes to_tflite returns, got {type(flatbuffer).__name__}"
        )
    return Interpreter(
        model_content=flatbuffer,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )


def operations(flatbuffer):
    """The names of the operations of a converted model, in order (e.g.
    ``["FULLY_CONNECTED", "FULLY_CONNECTED"]``)."""
    interpreter = _interpreter(flatbuffer)
    interpreter.allocate_tensors()
    return [op["op_name"] for op in interpreter._get_ops_details()]


def run_tflite(flatbuffer, x, batch_size=None):
    """The converted model's outputs on the inputs ``x``, as float32, fed in batches
    of ``batch_size`` (by default all at once).

    An int8 model's input is quantized with its scale and zero point, and its output
    dequantized: ``real = (q - zero_point) * scale``."""
    interpreter = _interpreter(flatbuffer)
    x = np.asarray(x, dtype=np.float32)
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    if x.ndim < 1 or x.shape[1:] != tuple(inp["shape"][1:]) or len(x) == 0:
        raise ValueError(
            f"x must have shape (n, {', '.join(map(str, inp['shape'][1:]))}), "
            f"got {x.shape}"
        )
    n = len(x) if batch_size is None else check_int(batch_size, "batch_size", minimum=1)
    if len(x) % n:
        raise ValueError(f"batch_size must divide the {len(x)} inputs, got {n}")
    interpreter.resize_tensor_input(inp["index"], [n, *x.shape[1:]])
    interpreter.allocate_tensors()
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
    outputs = []
    for start in range(0, len(x), n):
        interpreter.set_tensor(inp["index"], x[start : start + n])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"]))
    y = np.concatenate(outputs)
    if out["dtype"] == np.int8:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)


_WEIGHTED = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")


def layer_weights(flatbuffer):
    """``{name: (weights, scales)}`` for the weights of each operation that has them
    (its second input), in the model's order, in TensorFlow Lite's layout (a dense
    layer's kernel transposed, one row per output unit). In a quantized model the int8
    weights come dequantized, ``(q - zero_point) * scale``, and ``scales`` holds one
    scale per output unit, or a single one for the whole tensor; in a float model
    ``scales`` is empty."""
    interpreter = _interpreter(flatbuffer)
    interpreter.allocate_tensors()
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    found = {}
    for op in interpreter._get_ops_details():
        if len(op["inputs"]) < 2 or op["op_name"] not in _WEIGHTED:
            continue
        tensor = details[op["inputs"][1]]
        q = tensor["quantization_parameters"]
        scales, zeros = q["scales"], q["zero_points"]
        values = interpreter.get_tensor(tensor["index"]).astype(np.float32)
        if tensor["dtype"] != np.int8:
            found[tensor["name"]] = (values, scales[:0])
            continue
        shape = [-1] + [1] * (values.ndim - 1)  # one scale per row (output unit)
        if len(scales) > 1 and q["quantized_dimension"] != 0:
            raise ValueError("expected the scales along the first (output) axis")
        found[tensor["name"]] = (
            (values - zeros.reshape(shape)) * scales.reshape(shape),
            scales,
        )
    return found
