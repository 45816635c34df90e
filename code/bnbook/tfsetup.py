"""Import TensorFlow and Keras quietly, and make them deterministic.

The full ``tensorflow`` wheel writes native log lines (oneDNN notices, CUDA stubs,
absl warnings) straight to file descriptor 2 at import, where Python cannot catch
them. In a book those lines are noise, and under nbval they differ between Jupyter
and pytest. So the import, and one tiny op that finishes TensorFlow's lazy start-up,
run with descriptor 2 pointed at ``/dev/null``.
"""

import contextlib
import os
import sys

__all__ = ["load_tensorflow", "set_seed"]

_QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}


@contextlib.contextmanager
def _native_output_silenced(*fds):
    """Point file descriptors ``fds`` at /dev/null for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip(fds, saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


def _native_stderr_silenced():
    """File descriptor 2 at /dev/null for the block: TensorFlow's native log lines."""
    return _native_output_silenced(2)


def _check_seed(seed):
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")


def set_seed(seed):
    """Seed Python, NumPy and TensorFlow, and turn on TensorFlow op determinism.

    Call it again before each run that must be reproducible on its own.
    """
    _check_seed(seed)
    if seed is None:
        raise TypeError("seed must be an int, got None")
    tf, keras = load_tensorflow()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def load_tensorflow(seed=None, devices=None):
    """Return ``(tf, keras)``, imported without native log lines.

    Parameters
    ----------
    seed : int or None
        If given, seed every random generator and turn on op determinism
        (see :func:`set_seed`).
    devices : int >= 1 or None
        If given, the CPU is split into this many logical devices, so that
        ``tf.distribute.MirroredStrategy`` runs that many replicas, as it would on as
        many GPUs. Only possible before TensorFlow's first operation: ask for it in
        the first call of a fresh process (a notebook's first cell).
    """
    _check_seed(seed)
    if devices is not None:
        from bnbook.checks import check_int

        devices = check_int(devices, "devices", minimum=1)
    for name, value in _QUIET_ENV.items():
        os.environ.setdefault(name, value)
    if "tensorflow" not in sys.modules:
        with _native_stderr_silenced():
            import tensorflow as tf

            if devices is not None:
                _split_cpu(tf, devices)
            tf.constant(0.0) + 1.0  # the first op logs too
    import keras
    import tensorflow as tf

    if devices is not None:
        _split_cpu(tf, devices)

    tf.get_logger().setLevel("ERROR")
    if seed is not None:
        set_seed(seed)
    return tf, keras


def _split_cpu(tf, devices):
    """The CPU as ``devices`` logical devices; a RuntimeError once too late."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    now = tf.config.get_logical_device_configuration(cpu)
    if len(now or [None]) == devices:
        return
    try:
        configs = [tf.config.LogicalDeviceConfiguration() for _ in range(devices)]
        tf.config.set_logical_device_configuration(cpu, configs)
    except RuntimeError:
        raise RuntimeError(
            f"TensorFlow has started with {len(now or [None])} CPU device(s), and "
            f"devices={devices} can no longer be set: ask for it in the first call "
            "of load_tensorflow in a fresh process (restart the kernel)"
        ) from None
