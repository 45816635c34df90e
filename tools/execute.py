"""Re-execute notebooks in place, each in a fresh kernel, and print how long each took.

Usage: python tools/execute.py [NOTEBOOK ...]   (default: every chapters/*.ipynb)

This is how a notebook's stored outputs are refreshed after a change; strict nbval
in `make test` then checks that they reproduce.
"""

import os
import pathlib
import sys
import time

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIMIT_S = 120  # the book's budget for one notebook on a 2-core CPU


# The "python3" kernel spec runs `python` from PATH: make that this interpreter.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]


def execute(path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        record_timing=False,  # no per-cell timestamps: a refresh diffs only real changes
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # timestamps left by older runs
    nbformat.write(nb, path)
    return seconds


def main(argv):
    paths = [pathlib.Path(a) for a in argv] or sorted(
        (ROOT / "chapters").glob("*.ipynb")
    )
    total, slow = 0.0, []
    for path in paths:
        seconds = execute(path)
        total += seconds
        flag = "" if seconds <= LIMIT_S else f"  (over the {LIMIT_S} s budget)"
        print(f"{seconds:7.1f} s  {path.name}{flag}", flush=True)
        if seconds > LIMIT_S:
            slow.append(path.name)
    print(f"{total:7.1f} s  in all ({len(paths)} notebooks)")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
