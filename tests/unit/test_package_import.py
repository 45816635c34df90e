"""What ``import bnbook`` does to the process: one BLAS thread, and no TensorFlow.

Each test runs a fresh interpreter, since both are decided when libraries are loaded,
and without the Makefile's thread variables, as a reader's own ``jupyter lab`` would.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

import bnbook

THREAD_INFO = (
    "from threadpoolctl import threadpool_info\n"
    "print(json.dumps([(i['internal_api'], i['num_threads']) "
    "for i in threadpool_info()]))\n"
)


def run_python(code, **env):
    """Run ``code`` in a fresh interpreter; return its stdout, or raise with stderr."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("BNBOOK_THREADS", *bnbook._THREAD_VARIABLES)
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**clean, **env},
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout


def thread_counts(imports, **env):
    """(library kind, threads) of every BLAS and OpenMP library loaded after ``imports``."""
    return json.loads(run_python(f"import json\n{imports}\n{THREAD_INFO}", **env))


# NumPy first (as a notebook's first cell would), bnbook first, and libraries loaded
# after bnbook (scikit-learn's OpenMP, SciPy's own OpenBLAS).
@pytest.mark.parametrize(
    "imports",
    [
        "import numpy, bnbook",
        "import bnbook, numpy",
        "import numpy, bnbook, sklearn.datasets, scipy.linalg",
    ],
)
def test_import_limits_blas_and_openmp_to_one_thread(imports):
    counts = thread_counts(imports)
    assert {kind for kind, _ in counts} >= {"openblas"}
    assert all(n == 1 for _, n in counts), counts


def test_a_reader_can_ask_for_another_limit():
    counts = thread_counts("import numpy, bnbook, sklearn.datasets", BNBOOK_THREADS="2")
    assert all(n == min(2, os.cpu_count()) for _, n in counts), counts


def test_a_reader_can_opt_out():
    # Without bnbook's limit, OpenBLAS uses a thread per core (the baseline here).
    counts = thread_counts("import numpy, bnbook", BNBOOK_THREADS="all")
    assert counts == thread_counts("import numpy")


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", ""])
def test_a_bad_limit_is_a_value_error_that_names_the_variable(text, monkeypatch):
    monkeypatch.setenv("BNBOOK_THREADS", text)
    with pytest.raises(ValueError, match=r"BNBOOK_THREADS must be a whole number"):
        bnbook._thread_limit()


# Every module of the package, imported together: TensorFlow is imported only when a
# function that needs it is called (bnbook.tfsetup.load_tensorflow).
MODULES = sorted(
    p.stem
    for p in pathlib.Path(bnbook.__file__).parent.glob("*.py")
    if p.stem != "__init__"
)


def test_no_module_of_the_package_imports_tensorflow():
    assert "kerasbn" in MODULES and "tfsetup" in MODULES  # the ones that use it
    imports = "\n".join(f"import bnbook.{m}" for m in MODULES)
    loaded = run_python(
        f"import sys\n{imports}\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    assert loaded.strip() == "[]"
