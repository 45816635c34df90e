"""Re-execute notebooks in place, each in a fresh kernel, and print how long each took.

Usage: python tools/execute.py [--out DIR] [--jobs J] [NOTEBOOK ...]
(default: every chapters/*.ipynb but the workbook's exercise notebooks, which are
generated unexecuted: `make workbook`)

J notebooks run at a time (default 2, one per core of the book's 2-core budget), each
in a process and kernel of its own; the budgets below are for a notebook run beside
another.

This is how a notebook's stored outputs are refreshed after a change; strict nbval
in `make test` then checks that they reproduce. With ``--out DIR`` the executed copies
go to DIR and the chapters stay as they are: `make robust` runs the book that way, on
other seeds, where only an error (a failed assert) counts.
"""

import concurrent.futures
import multiprocessing
import os
import pathlib
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIMIT_S = 60  # the book's budget for one notebook on a 2-core CPU
WORKBOOK_LIMIT_S = 30  # and for a page of the workbook


def limit(path):
    return WORKBOOK_LIMIT_S if path.name.startswith("workbook_") else LIMIT_S


# The "python3" kernel spec runs `python` from PATH: make that this interpreter.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]


def execute(path, out=None):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        record_timing=False,  # no per-cell timestamps: a refresh diffs only real changes
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    try:
        client.execute()
    finally:  # a failed run is kept too, in --out, to read what it printed
        if out is not None:
            nbformat.write(nb, out / path.name)
    seconds = time.perf_counter() - start
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # timestamps left by older runs
    nbformat.write(nb, path if out is None else out / path.name)
    return seconds


def run(path, out):
    """Execute one notebook; return (seconds, None), or (None, the error's text)."""
    try:
        return execute(path, out), None
    except CellExecutionError as error:  # go on: one run lists every failure
        return None, str(error)


def main(argv):
    out, jobs = None, 2
    while argv[:1] in (["--out"], ["--jobs"]):
        if argv[0] == "--out":
            out = pathlib.Path(argv[1])
            out.mkdir(parents=True, exist_ok=True)
        else:
            jobs = int(argv[1])
        argv = argv[2:]
    paths = [pathlib.Path(a).resolve() for a in argv] or sorted(
        p for p in (ROOT / "chapters").glob("*.ipynb") if "_exercise" not in p.stem
    )
    total, slow, failed = 0.0, [], []
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        runs = {pool.submit(run, path, out): path for path in paths}
        for done in concurrent.futures.as_completed(runs):
            path = runs[done]
            seconds, error = done.result()
            if error is not None:
                print(f"FAILED  {path.name}\n{error}", flush=True)
                failed.append(path.name)
                continue
            total += seconds
            over = out is None and seconds > limit(path)  # --out: no limit
            flag = f"  (over the {limit(path)} s budget)" if over else ""
            print(f"{seconds:7.1f} s  {path.name}{flag}", flush=True)
            if over:
                slow.append(path.name)
    print(
        f"{total:7.1f} s  in all ({len(paths) - len(failed)} notebooks, {jobs} at a time)"
    )
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if slow or failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
