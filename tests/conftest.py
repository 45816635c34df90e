"""Shared test settings: Hypothesis's profiles ("book", the default, and "thorough",
chosen with BNBOOK_HYPOTHESIS_PROFILE), the TensorFlow fixture ``tf_keras`` and the
marker ``keras``. pytest puts this folder on the import path, so the tests import the
shared helper module ``booktoc``."""

import os
import sys

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
    """Mark ``keras`` every test that takes the fixture ``tf_keras`` (a module that
    imports TensorFlow in every test says ``pytestmark = pytest.mark.keras``), so that
    ``pytest -m "not keras"`` runs the NumPy-only tests (`make fast`).

    Under a profile other than "book", raise each property test's own
    ``@settings(max_examples=...)`` to the profile's, which it would otherwise keep.
    The test's settings were made after the profile was loaded, so they already
    inherit everything else from it (randomization, no deadline, no database).
    """
    for item in items:
        if "tf_keras" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.keras)
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


# The marker keeps its promise: TensorFlow and Keras are imported by no test module at
# collection, and first by a test marked ``keras``. So `pytest -m "not keras"` never
# imports them, and a new test that does fails here, by name, until it is marked. (A
# process that had them loaded before the session, such as mutmut's, which runs pytest
# again and again in one process, is not checked.)
TENSORFLOW = ("tensorflow", "keras")
_checking = []  # [True] while no test has loaded them yet in this session


def _tensorflow_loaded():
    return [name for name in TENSORFLOW if name in sys.modules]


def pytest_configure(config):
    # Registered here, not in pytest.ini, so that a copy of tests/ run elsewhere (make
    # mutation runs one in _build/mutation) knows it too.
    config.addinivalue_line(
        "markers",
        "keras: the test imports TensorFlow or Keras (directly, or through "
        "bnbook.kerasbn or bnbook.tfsetup); pytest -m 'not keras' leaves it out",
    )


def pytest_sessionstart(session):
    _checking[:] = [] if _tensorflow_loaded() else [True]


def pytest_collection_finish(session):
    if _checking and (loaded := _tensorflow_loaded()):
        raise pytest.UsageError(
            f"collecting the tests imported {' and '.join(loaded)}: import it inside "
            "the tests that need it (the fixture tf_keras), which are marked keras"
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item):
    result = yield
    if _checking and (loaded := _tensorflow_loaded()):
        _checking.clear()  # the first test to load them is checked, not the next ones
        if item.get_closest_marker("keras") is None:
            raise AssertionError(
                f"{item.nodeid} imported {' and '.join(loaded)} but is not marked "
                "keras: take the fixture tf_keras, or mark it (pytest.mark.keras)"
            )
    return result
