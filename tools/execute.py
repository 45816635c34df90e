"""Re-execute notebooks in place, each in a fresh kernel, and report how long each took.

Usage: python tools/execute.py [--out DIR] [--jobs J] [NOTEBOOK ...]
       python tools/execute.py --prose NOTEBOOK ...
(default: every chapters/*.ipynb but the workbook's exercise notebooks, which are
generated unexecuted: `make workbook`)

J notebooks run at a time (default 2, one per core of the book's 2-core budget), each
in a process and kernel of its own.

This is how a notebook's stored outputs are refreshed after a change; strict nbval
in `make test` then checks that they reproduce. With ``--out DIR`` the executed copies
go to DIR and the chapters stay as they are: `make robust` runs the book that way, on
other seeds.

After a notebook has run, the captions and alt texts of its figures that have
templates (``bnbook.caption``, ``bnbook.alt`` in the cell's metadata) are written from
its glued numbers (bnbook.figuretext), so that they quote what the outputs computed,
and so are the results of the prose's inline expressions that JupyterLab shows
(bnbook.inline: each Markdown cell's ``user_expressions``). ``--prose`` writes only
these, from the stored outputs, without running anything: after an edit of the prose
or of a caption template.

Only an error (a failed assert, a cell that raised, a dead kernel) makes it exit with 1.
A notebook over its time budget is a warning, repeated at the end of the output, and
the exit status stays 0: `make execute` must go on to regenerate the workbook's
exercise notebooks from the outputs it just stored. Each run writes its timings as a
Markdown table, with the date, the machine's core count, J and the seed offset, to
``_build/timings.md`` (with ``--out DIR``: ``DIR/timings.md``).
"""

import concurrent.futures
import datetime
import multiprocessing
import os
import pathlib
import sys
import time

import nbformat
from nbclient import NotebookClient

from bnbook import inline
from bnbook.figuretext import render_figure_text

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The book's budgets on a 2-core CPU: a notebook run alone (J=1), one run beside another
# (J=2), and a page of the workbook either way.
ALONE_S, BESIDE_S, WORKBOOK_S = 45, 60, 30


def budget(path, jobs):
    if path.name.startswith("workbook_"):
        return WORKBOOK_S
    return ALONE_S if jobs == 1 else BESIDE_S


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
    try:
        client.execute()
    finally:  # a failed run is kept too, in --out, to read what it printed
        if out is not None:
            nbformat.write(nb, out / path.name)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # timestamps left by older runs
    write_derived(nb, path.name)
    nbformat.write(nb, path if out is None else out / path.name)


def write_derived(nb, name):
    """What a notebook's metadata takes from its outputs and its Markdown: the captions
    and alt texts of its figures (an unknown field fails, naming it), the stored
    results of its prose's numbers and citations for JupyterLab, and JupyterLab's
    folding of what the book folds (solutions, checks)."""
    render_figure_text(nb, name)
    inline.store(nb, where=name)
    inline.fold(nb)


def refresh(path):
    """``write_derived`` on the stored notebook at ``path``, without running it: after an
    edit of its prose or of a caption template (``--prose``)."""
    nb = nbformat.read(path, as_version=4)
    write_derived(nb, path.name)
    nbformat.write(nb, path)


def run(path, out):
    """Execute one notebook; return (seconds, None), or (seconds, the error's text)."""
    start = time.perf_counter()
    try:
        execute(path, out)
        error = None
    except Exception as caught:  # go on: one run lists every failure
        error = f"{type(caught).__name__}: {caught}"
    return time.perf_counter() - start, error


def timings_table(results, jobs):
    """The Markdown table of a run: ``results`` maps a path to (seconds, error)."""
    offset = os.environ.get("BNBOOK_SEED_OFFSET", "0")
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    lines = [
        "# Notebook timings",
        "",
        f"Written by tools/execute.py on {now}: {os.cpu_count()} cores, "
        f"{jobs} notebook(s) at a time (JOBS={jobs}), BNBOOK_SEED_OFFSET={offset}.",
        "",
        "| notebook | seconds | budget (s) | note |",
        "|---|---:|---:|---|",
    ]
    for path, (seconds, error) in sorted(results.items()):
        over = seconds > budget(path, jobs)
        note = "failed" if error else "over budget" if over else ""
        lines.append(f"| {path.name} | {seconds:.1f} | {budget(path, jobs)} | {note} |")
    total = sum(seconds for seconds, _ in results.values())
    lines += ["", f"{total:.1f} s in all (the sum over {len(results)} notebooks).", ""]
    return "\n".join(lines)


def report(results, jobs, table):
    """Print the summary, write the table to the path ``table``; return the exit status.

    Only errors fail (1); notebooks over their budget are listed loudly, last.
    """
    failed = sorted(p.name for p, (_, error) in results.items() if error)
    slow = sorted(
        (p.name, seconds, budget(p, jobs))
        for p, (seconds, error) in results.items()
        if not error and seconds > budget(p, jobs)
    )
    total = sum(seconds for seconds, _ in results.values())
    print(f"{total:7.1f} s  in all ({len(results)} notebooks, {jobs} at a time)")
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(timings_table(results, jobs), encoding="utf-8")
    print(f"timings written to {table}")
    if slow:
        print(f"\nWARNING: {len(slow)} notebook(s) over the book's time budget:")
        for name, seconds, limit in slow:
            print(f"WARNING:   {name}: {seconds:.1f} s (budget {limit} s)")
    if failed:
        print(f"\nFAILED: {', '.join(failed)}")
        return 1
    return 0


def main(argv):
    if argv[:1] == ["--prose"]:
        for path in [pathlib.Path(a).resolve() for a in argv[1:]]:
            refresh(path)
            print(f"refreshed {path.name}")
        return 0
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
    results = {}
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        runs = {pool.submit(run, path, out): path for path in paths}
        for done in concurrent.futures.as_completed(runs):
            path = runs[done]
            seconds, error = results[path] = done.result()
            if error is not None:
                print(f"FAILED  {path.name} after {seconds:.1f} s\n{error}", flush=True)
                continue
            limit = budget(path, jobs)
            flag = f"  (over the {limit} s budget)" if seconds > limit else ""
            print(f"{seconds:7.1f} s  {path.name}{flag}", flush=True)
    table = (out if out is not None else ROOT / "_build") / "timings.md"
    return report(results, jobs, table)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
