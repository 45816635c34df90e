"""pytest.raises for the book's errors, whose messages name what is wrong."""

import pytest


def raises_naming(error, name):
    """Expect ``error`` with a message holding ``name`` (a regular expression) as a
    word of its own: "steps must be > 0" names "steps"; "XXstepsXX must" does not.
    A ``name`` that starts with ``^`` is the start of the message instead."""
    if name.startswith("^"):
        return pytest.raises(error, match=name)
    return pytest.raises(error, match=rf"(?<!\w){name}(?!\w)")
