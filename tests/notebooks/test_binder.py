"""Binder runs the notebooks with the Makefile's floating-point settings: the `start`
script that repo2docker runs exports the same variables, with the same values."""

import os
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


def makefile_settings():
    """The variables the Makefile exports for the numbers' sake (not PATH and the like)."""
    text = (ROOT / "Makefile").read_text()
    exported = dict(re.findall(r"^export (\w+) := (.*)$", text, re.MULTILINE))
    names = ["OPENBLAS_NUM_THREADS"]  # kept by `make robust`, which unsets the others
    names += re.search(r"^FP_SETTINGS := (.*)$", text, re.MULTILINE).group(1).split()
    return {name: exported[name] for name in names}


def test_the_makefile_names_the_settings_it_exports():
    assert set(makefile_settings()) == {
        "OPENBLAS_CORETYPE",
        "OPENBLAS_NUM_THREADS",
        "NPY_DISABLE_CPU_FEATURES",
        "ONEDNN_MAX_CPU_ISA",
        "XLA_FLAGS",
    }


def test_binder_start_exports_the_makefiles_settings():
    start = ROOT / "start"
    assert os.access(start, os.X_OK), (
        "repo2docker runs `start` only if it is executable"
    )
    env = {"PATH": os.environ["PATH"]}
    out = subprocess.run(
        [str(start), "env"], env=env, capture_output=True, text=True, check=True
    ).stdout
    seen = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    for name, value in makefile_settings().items():
        assert seen.get(name) == value, (
            f"start sets {name}={seen.get(name)!r}, Makefile {value!r}"
        )
