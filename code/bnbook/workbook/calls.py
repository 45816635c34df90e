"""Calling the reader's code as a check sees it: an exception, an argument changed in
place or a result of the wrong kind, shape or dtype becomes a CheckFailed."""

import sys

import numpy as np

from bnbook.workbook.report import CheckFailed


def _call(function, what, case_name, *, keywords=(), local=None, **arguments):
    """``function(*arguments)``, those named in ``keywords`` by name, as a check sees
    it: an exception, or an argument changed in place, becomes a CheckFailed. If
    ``local`` is a dict, it receives the variables of ``function`` as it returns."""
    __tracebackhide__ = True
    kept = dict(_arrays_in(arguments))
    kept = {name: np.copy(a) for name, a in kept.items()}
    args = [a for name, a in arguments.items() if name not in keywords]
    kwargs = {name: a for name, a in arguments.items() if name in keywords}
    try:
        with np.errstate(all="ignore"), _locals_of(function, local):
            result = function(*args, **kwargs)
    except NotImplementedError as error:
        raise CheckFailed(
            f"{what} is not implemented yet (it raises NotImplementedError): "
            "write its body, then run the check again."
        ) from error
    except Exception as error:
        raise CheckFailed(
            f"{what} raised {type(error).__name__}: {error}\n"
            f"on {case_name}. The traceback above this one shows where."
        ) from error
    now = dict(_arrays_in(arguments))
    for name, before in kept.items():
        if not np.array_equal(now[name], before, equal_nan=True):
            example = (
                "x - mu makes one; x -= mu overwrites the caller's x"
                if name == "its argument x"
                else "a = a * s makes one; a *= s changes the caller's array"
            )
            raise CheckFailed(
                f"{what} changed {name} in place: work on new arrays ({example}). "
                f"On {case_name}."
            )
    return result


def _arrays_in(arguments):
    """(name, array) for each array among ``arguments``, and in a dict, list or tuple
    among them (a cache): what a call must not change in place."""
    for name, value in arguments.items():
        if _is_array(value):
            yield f"its argument {name}", value
        elif isinstance(value, dict | list | tuple):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if _is_array(item):
                    yield f"{name}[{key!r}]", item


class _locals_of:
    """Within the block, ``into`` (a dict) receives the variables of ``function``'s
    frame when it returns; nothing happens if ``into`` is None."""

    def __init__(self, function, into):
        self.code, self.into = getattr(function, "__code__", None), into

    def __enter__(self):
        self.before = sys.getprofile()
        if self.into is not None and self.code is not None:
            sys.setprofile(self._profile)

    def _profile(self, frame, event, arg):
        if event == "return" and frame.f_code is self.code:
            self.into.update(frame.f_locals)

    def __exit__(self, *exc):
        sys.setprofile(self.before)


def _is_array(a):
    return isinstance(a, np.ndarray)


def _array(value, name, what, shape, dtype):
    """``value`` if it is an array of ``shape`` and ``dtype``, else CheckFailed."""
    if value is None:
        raise CheckFailed(f"{what} gave None for {name}: did it forget a return?")
    if isinstance(value, list | tuple):
        raise CheckFailed(
            f"{what} gave a {type(value).__name__} for {name}: give a NumPy array "
            "(the result of NumPy operations, or np.array(...))."
        )
    if not isinstance(value, np.ndarray):
        raise CheckFailed(
            f"{what} gave {name} of type {type(value).__name__}: expected a NumPy array"
        )
    if value.shape != shape:
        raise CheckFailed(
            f"{what} gave {name} of shape {value.shape}; expected {shape}"
        )
    if value.dtype != dtype:
        raise CheckFailed(
            f"{what} gave {name} of dtype {value.dtype} for x of dtype {dtype}: keep the "
            "dtype of x (a float64 array or constant in the computation promotes it)."
        )
    return value


def _pair(result, what, names):
    """A tuple of ``len(names)`` values, as ``what`` should return, else CheckFailed."""
    expected = f"({', '.join(names)})"
    if result is None:
        raise CheckFailed(f"{what} returned None: it should return {expected}.")
    if isinstance(result, np.ndarray):
        raise CheckFailed(f"{what} returned one array: it should return {expected}.")
    if not isinstance(result, tuple | list) or len(result) != len(names):
        got = len(result) if isinstance(result, tuple | list) else 1
        raise CheckFailed(
            f"{what} returned {got} value(s): it should return the {len(names)} "
            f"values {expected}."
        )
    return result
