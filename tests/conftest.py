"""Shared test settings: Hypothesis's profiles ("book", the default, and "thorough",
chosen with BNBOOK_HYPOTHESIS_PROFILE) and the TensorFlow fixture ``tf_keras``.
pytest puts this folder on the import path, so the tests import the shared helper
module ``booktoc``."""

import os

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (the book's tests must be
# deterministic) and leave no example database behind in the working tree.
settings.register_profile("book", derandomize=True, database=None, deadline=None)
# `make thorough`: new random examples on every run, and many more of them; a failure
# prints the @reproduce_failure line that replays it (there is no database to).
settings.register_profile(
    "thorough",
    derandomize=False,
    max_examples=2000,
    database=None,
    deadline=None,
    print_blob=True,
)
settings.load_profile(os.environ.get("BNBOOK_HYPOTHESIS_PROFILE", "book"))


def pytest_collection_modifyitems(items):
    """Under a profile other than "book", raise each property test's own
    ``@settings(max_examples=...)`` to the profile's, which it would otherwise keep.

    The test's settings were made after the profile was loaded, so they already
    inherit everything else from it (randomization, no deadline, no database).
    """
    if settings.get_current_profile_name() == "book":
        return
    for item in items:
        test = getattr(item, "obj", None)
        # Hypothesis keeps a test's settings in this attribute.
        own = getattr(test, "_hypothesis_internal_use_settings", None)
        if own is not None and own.max_examples < settings.default.max_examples:
            test._hypothesis_internal_use_settings = settings(
                own, max_examples=settings.default.max_examples
            )


@pytest.fixture(scope="session")
def tf_keras():
    """``(tf, keras)``, imported quietly and seeded with 0 on first use.

    Only the tests that ask for it import TensorFlow, so a NumPy-only test module
    stays NumPy-only. Session-scoped, so property tests may use it too.
    """
    from bnbook.tfsetup import load_tensorflow

    return load_tensorflow(seed=0)
