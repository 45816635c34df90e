"""Shared code of the book *Batch Normalization, derived, built and tested*.

The modules are imported one by one (``from bnbook.data import load_digits_split``)
so that a chapter that does not use TensorFlow never pays for its import.
Importing the package limits BLAS and OpenMP to one thread (see ``_limit_threads``).
"""

import inspect
import os
import re
import textwrap

__version__ = "0.1.0"

from bnbook.inline import cite, glued

__all__ = ["cite", "glue_number", "glued", "seeds", "show"]

# The variables that BLAS and OpenMP libraries read when they are loaded.
_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _thread_limit():
    """The thread limit asked for by ``BNBOOK_THREADS``: an int >= 1, or None for none."""
    text = os.environ.get("BNBOOK_THREADS", "1").strip()
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(
            f"BNBOOK_THREADS must be a whole number >= 1 or 'all', got {text!r}"
        )
    return int(text)


def _limit_threads():
    """Run BLAS and OpenMP on one thread (``BNBOOK_THREADS=all`` keeps their default).

    The book's matrices are tiny: a second BLAS thread saves nothing on them, and when
    another process holds a core it spins, waiting, and a notebook runs 10-20 times
    slower. Libraries already loaded (NumPy's OpenBLAS) are limited through
    threadpoolctl; those loaded later (SciPy's, with scikit-learn) read the variables.
    """
    limit = _thread_limit()
    if limit is None:
        return
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(limit)
    import numpy  # noqa: F401  (loads NumPy's OpenBLAS, so that the limit reaches it)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=limit)


_limit_threads()


def seeds(n):
    """The seeds of an experiment with ``n`` runs: ``range(offset, offset + n)``.

    ``offset`` is the environment variable ``BNBOOK_SEED_OFFSET`` (default 0). Every seed
    in the book comes from here, so the whole book can be re-run on other seeds
    (``make robust``) and its claims must hold there too.
    """
    from bnbook.checks import check_int

    n = check_int(n, "n", minimum=1)
    text = os.environ.get("BNBOOK_SEED_OFFSET", "0")
    try:
        offset = int(text)
    except ValueError:
        raise ValueError(
            f"BNBOOK_SEED_OFFSET must be a whole number, got {text!r}"
        ) from None
    if offset < 0:
        raise ValueError(f"BNBOOK_SEED_OFFSET must be >= 0, got {offset}")
    return range(offset, offset + n)


_PRAGMA = re.compile(r"  # pragma: no mutate.*$", re.MULTILINE)


def _source(obj):
    """The source that :func:`show` shows: dedented (a method loses its indentation),
    without mutation testing's markers, which are not the lesson."""
    return _PRAGMA.sub("", textwrap.dedent(inspect.getsource(obj)))


def show(obj):
    """Display the source of a function, method or class as highlighted code.

    The output is a Markdown code block, which Jupyter and the book highlight as they
    do code cells; its plain-text form is the source itself, so a test that compares
    outputs (nbval) compares the code.
    """
    from IPython.display import display

    if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj)):
        raise TypeError(f"obj must be a function or a class, got {type(obj).__name__}")
    source = _source(obj)
    runs = [len(run) + 1 for run in re.findall(r"`+", source)]
    fence = "`" * max([3, *runs])  # longer than any run of backticks in the source
    markdown = f"{fence}python\n{source}{fence}\n"
    display({"text/markdown": markdown, "text/plain": source}, raw=True)


def glue_number(name, value, digits):
    """Keep a measured number for the prose, rounded to ``digits`` decimals.

    The number is glued with myst-nb (not displayed) and kept in ``bnbook.glued``, and
    the Markdown quotes it as ``{eval}`glued["name"]``` (with a format spec if wanted,
    ``{eval}`glued["name:.1%"]```; see :mod:`bnbook.inline`), so the text always says
    what the code above it computed. Rounding first keeps the
    stored value to the digits the text shows, and a NumPy scalar becomes a plain
    ``float`` (whose text form myst-nb can read back). It returns nothing, so that a
    call at the end of a cell shows no number in the book.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    from bnbook.checks import check_int, check_real

    digits = check_int(digits, "digits")
    value = check_real(value, "value")
    rounded = round(value, digits)
    stored = int(rounded) if digits <= 0 else rounded
    _glue(name, stored)
    glued.values[name] = stored


#: myst-nb's prefix for the media types of a glued value that is not displayed.
GLUE_PREFIX = "application/papermill.record/"


def _glue(name, value):
    """myst-nb's ``glue(name, value, display=False)``: the same display output, without
    importing myst-nb, whose import of nbformat and jsonschema costs every notebook
    seconds (tests/unit/test_package.py checks the output against myst-nb's own)."""
    from IPython.core.formatters import format_display_data
    from IPython.display import display

    mimebundle, metadata = format_display_data(value)
    metadata["scrapbook"] = {"name": name, "mime_prefix": GLUE_PREFIX}
    bundle = {GLUE_PREFIX + k: v for k, v in mimebundle.items()}
    display(bundle, raw=True, metadata=metadata)
