"""Shared code of the book *Batch Normalization, derived, built and tested*.

The modules are imported one by one (``from bnbook.data import load_digits_split``)
so that a chapter that does not use TensorFlow never pays for its import.
"""

__version__ = "0.1.0"
