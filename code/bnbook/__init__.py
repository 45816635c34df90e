"""Shared code of the book *Batch Normalization, derived, built and tested*.

The modules are imported one by one (``from bnbook.data import load_digits_split``)
so that a chapter that does not use TensorFlow never pays for its import.
"""

import inspect
import re
import textwrap

__version__ = "0.1.0"

__all__ = ["show"]


def show(obj):
    """Display the source of a function, method or class as highlighted code.

    The output is a Markdown code block, which Jupyter and the book highlight as they
    do code cells; its plain-text form is the source itself, so a test that compares
    outputs (nbval) compares the code.
    """
    from IPython.display import display

    if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj)):
        raise TypeError(f"obj must be a function or a class, got {type(obj).__name__}")
    source = textwrap.dedent(inspect.getsource(obj))  # a method loses its indentation
    runs = [len(run) + 1 for run in re.findall(r"`+", source)]
    fence = "`" * max([3, *runs])  # longer than any run of backticks in the source
    markdown = f"{fence}python\n{source}{fence}\n"
    display({"text/markdown": markdown, "text/plain": source}, raw=True)
