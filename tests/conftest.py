"""Shared test settings. pytest puts this folder on the import path, so the tests
import the shared helper module ``booktoc``."""

from hypothesis import settings

# Property tests draw the same examples on every run (the book's tests must be
# deterministic) and leave no example database behind in the working tree.
settings.register_profile("book", derandomize=True, database=None, deadline=None)
settings.load_profile("book")
