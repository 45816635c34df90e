"""Run notebooks at seed offsets drawn at random and tabulate every assert and glued number.

Usage: python tools/sweep.py [--n N] [--offsets A,B,...] [--jobs J] [NOTEBOOK ...]
(`make sweep NB=chapters/05_loss_smoothness.ipynb N=10`; default: every chapter)

One offset (`make robust`) is not evidence that a claim holds on any seed: a threshold
tuned until that offset passed fails at the next. This runs each notebook at N offsets
(``BNBOOK_SEED_OFFSET``) drawn afresh every time and printed, so that a failure can be
reproduced with ``--offsets``; J runs at a time (default 2, one per core), each in a
fresh kernel. Run it through `make sweep`, which, like `make robust`, leaves out the
Makefile's floating-point settings. A failed assert does not stop a run: the cells after
it run too, so one sweep reports every assert. It prints, per notebook,

- each code cell that asserts something: on how many offsets it held, and for each
  failure the offset and the assert's line;
- each glued number (``bnbook.glue_number``): its median and range over the offsets.

The executed copies are kept in ``_build/sweep`` to read what a failed run printed.
Exits with 1 if any assert failed or any cell raised.
"""

import argparse
import concurrent.futures
import json
import os
import pathlib
import random
import re
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "sweep"
GLUE_KEY = "application/papermill.record/text/plain"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_one(path, offset, out):
    """Execute ``path`` at one seed offset (in this process), keeping going after errors."""
    import nbformat
    from nbclient import NotebookClient

    os.environ["BNBOOK_SEED_OFFSET"] = str(offset)
    # The "python3" kernel spec runs `python` from PATH: make that this interpreter.
    os.environ["PATH"] = (
        os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    )
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=900,
        kernel_name="python3",
        allow_errors=True,
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    nb.metadata["sweep"] = {"offset": offset, "seconds": time.perf_counter() - start}
    nbformat.write(nb, out)


def launch(path, offset):
    """Run one (notebook, offset) in a subprocess; return the executed copy's path."""
    out = OUT / f"{path.stem}-{offset}.ipynb"
    cmd = [sys.executable, __file__, "--one", str(path), str(offset), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{path.name} at offset {offset}:\n{done.stderr[-3000:]}")
    return out


def failing_line(output):
    """The source line a traceback points at (IPython marks it with an arrow)."""
    for frame in output.get("traceback", []):
        for line in ANSI.sub("", frame).splitlines():
            m = re.match(r"\s*-+>\s*\d+\s(.*)", line)
            if m:
                last = m.group(1).strip()
    try:
        return last
    except NameError:
        return output.get("ename", "error")


def summarize(nb):
    """Per asserting cell: None (held) or the failing line; and the glued numbers."""
    cells, glued = {}, {}
    number = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        number += 1
        source = "".join(cell["source"])
        expected = "raises-exception" in cell.get("metadata", {}).get("tags", [])
        errors = [o for o in cell.get("outputs", []) if o["output_type"] == "error"]
        if errors and not expected:
            error = errors[0]
            cells[number] = (
                f"{failing_line(error)}  [{error['ename']}: {error['evalue'][:120]}]"
            )
        elif re.search(r"\bassert(?:_\w+)?\b", source):  # assert, np.testing.assert_...
            cells[number] = None
        for o in cell.get("outputs", []):
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if name and GLUE_KEY in o.get("data", {}):
                try:
                    glued[name] = float(o["data"][GLUE_KEY])
                except ValueError:
                    pass
    return cells, glued


def first_assert(nb_path, number):
    nb = json.loads(nb_path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    lines = "".join(code[number - 1]["source"]).splitlines()
    asserts = [ln.strip() for ln in lines if re.search(r"\bassert(?:_\w+)?\b", ln)]
    text = asserts[0] if asserts else (lines[0] if lines else "")
    more = f" (+{len(asserts) - 1} more)" if len(asserts) > 1 else ""
    return (text[:70] + "...") if len(text) > 70 else text + more


def report(path, offsets, runs):
    """Print one notebook's table; return the number of failures."""
    print(f"\n== {path.name}: offsets {', '.join(map(str, offsets))}")
    for offset, (_, _, seconds) in zip(offsets, runs, strict=True):
        print(f"   offset {offset}: {seconds:.1f} s")
    failures = 0
    numbers = sorted({n for cells, _, _ in runs for n in cells})
    print(f"   {'cell':>4}  {'held':>6}  first assert")
    for n in numbers:
        held = sum(cells.get(n) is None for cells, _, _ in runs)  # absent: no error
        print(f"   {n:>4}  {held:>3}/{len(runs):<2}  {first_assert(path, n)}")
        for offset, (cells, _, _) in zip(offsets, runs, strict=True):
            if cells.get(n) is not None:
                failures += 1
                print(f"           offset {offset}: {cells[n]}")
    names = sorted({k for _, glued, _ in runs for k in glued})
    if names:
        print(f"   {'glued number':<34} {'median':>12} {'min':>12} {'max':>12}")
    for name in names:
        values = [g[name] for _, g, _ in runs if name in g]
        print(
            f"   {name:<34} {statistics.median(values):12.5g}"
            f" {min(values):12.5g} {max(values):12.5g}"
        )
    return failures


def main(argv):
    if argv[:1] == ["--one"]:
        run_one(pathlib.Path(argv[1]), int(argv[2]), pathlib.Path(argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=pathlib.Path)
    parser.add_argument("--n", type=int, default=10, help="offsets per notebook")
    parser.add_argument(
        "--offsets", help="comma-separated offsets instead of random ones"
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted(
        p for p in (ROOT / "chapters").glob("*.ipynb") if "_exercise" not in p.stem
    )
    if args.offsets:
        offsets = [int(s) for s in args.offsets.split(",")]
    else:
        offsets = random.SystemRandom().sample(range(1, 100_000), args.n)
    print("offsets:", ",".join(map(str, offsets)), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    jobs = [(p, o) for p in paths for o in offsets]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        done = dict(zip(jobs, pool.map(lambda job: launch(*job), jobs), strict=True))
    failures = 0
    for path in paths:
        runs = []
        for offset in offsets:
            nb = json.loads(done[path, offset].read_text())
            cells, glued = summarize(nb)
            runs.append((cells, glued, nb["metadata"]["sweep"]["seconds"]))
        failures += report(path, offsets, runs)
    print(f"\n{failures} failed assert(s) or error(s) in {len(jobs)} runs")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
