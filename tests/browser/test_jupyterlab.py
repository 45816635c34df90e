"""The notebooks as a reader opens them in JupyterLab (``make lab``, Binder): prose
rendered by jupyterlab-myst, not shown as raw MyST.

Starts JupyterLab on localhost over a copy of ``chapters/`` (so that nothing the test
does can touch the book), opens a chapter and an exercise notebook of the workbook in
headless Chromium, brings every cell into view, and checks: no raw role or directive
text (``{eval}``, ``{glue``, ``{cite``, ``{doc}``, ``:::``); every number and citation
stored for the prose (``user_expressions``) shown in its cell; no reference left
unresolved; every dropdown (hints) closed; every cell the book folds (a solution's, a
check tagged hide-input) folded behind JupyterLab's placeholder. Screenshots go to
``_build/screenshots/jupyterlab-*.png``.
"""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from booktoc import ROOT
from conftest import SHOTS

NOTEBOOKS = (
    "09_noise_and_scale.ipynb",
    "10_deep_networks.ipynb",
    "10c_what_to_use_when.ipynb",
    "11_after_training.ipynb",
    "11b_export.ipynb",
    "workbook_1_forward_exercise.ipynb",
)
RAW = re.compile(
    r"\{(eval|glue[:a-z]*|cite[:a-z]*|doc|numref)\}|:::|glued\[|cite\.[tp]\("
)
# JupyterLab's settings for the test: every cell rendered (no virtual scrolling), no
# autosave, no news pop-up over the page.
SETTINGS = {
    "notebook-extension/tracker": {"windowingMode": "none"},
    "docmanager-extension/plugin": {"autosave": False},
    "apputils-extension/notification": {"fetchNews": "false"},
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "chapters", root / "chapters")
    settings = root / "settings"
    for name, values in SETTINGS.items():
        path = settings / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")
    port, token = free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"),
    )
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root / 'chapters'}",
        "--allow-root",  # a container's root, as in CI
    ]
    log = (root / "lab.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(
                    f"JupyterLab did not start: {(root / 'lab.log').read_text()}"
                )
            time.sleep(0.5)
    yield base, token, root / "chapters"
    server.terminate()
    server.wait(timeout=20)


PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def scroll_to(browser, index, pause=1.0):
    """Bring cell ``index`` of the open notebook to the top of the window."""
    browser.execute_script(
        f"document.querySelectorAll('{PANEL} .jp-Cell')[arguments[0]]"
        ".scrollIntoView({block: 'start'})",
        index,
    )
    time.sleep(pause)


def rendered_cells(browser, expected, timeout=60.0):
    """The cells of the open notebook once all ``expected`` are there, each scrolled
    into view (JupyterLab renders a Markdown cell when it is first seen):
    [{markdown, text, input_folded, output_folded, open_details, details, unresolved}]."""
    panel = PANEL
    deadline = time.monotonic() + timeout
    while (
        browser.execute_script(
            f"return document.querySelectorAll('{panel} .jp-Cell').length"
        )
        < expected
    ):
        if time.monotonic() > deadline:
            pytest.fail(f"JupyterLab showed fewer than {expected} cells")
        time.sleep(0.5)
    for index in range(expected):
        scroll_to(browser, index, pause=0)
    time.sleep(2)
    return browser.execute_script(f"""
        return [...document.querySelectorAll('{panel} .jp-Cell')].map(c => ({{
            markdown: c.classList.contains('jp-MarkdownCell'),
            text: (c.querySelector('.myst') || c).innerText,
            input_folded: !!c.querySelector('.jp-InputPlaceholder'),
            output_folded: !!c.querySelector('.jp-OutputPlaceholder'),
            details: c.querySelectorAll('details').length,
            open_details: c.querySelectorAll('details[open]').length,
            unresolved: [...c.querySelectorAll('[title$="Not Found"]')]
                .map(x => x.title + ': ' + x.innerText),
            unknown: [...c.querySelectorAll('.myst-exercise-title')]
                .map(x => x.innerText).filter(t => t.includes('Unknown Directive')),
        }}));
    """)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_reads_in_jupyterlab(lab, browser, name):
    base, token, _ = lab
    nb = json.loads((ROOT / "chapters" / name).read_text(encoding="utf-8"))
    browser.set_window_size(1400, 1000)
    browser.get(f"{base}/lab/tree/{name}?reset&token={token}")
    cells = rendered_cells(browser, len(nb["cells"]))
    exercise = next(
        i for i, c in enumerate(nb["cells"]) if ":::{exercise}" in "".join(c["source"])
    )
    for label, index in (("top", 0), ("exercise", exercise)):
        scroll_to(browser, index)
        shot = SHOTS / f"jupyterlab-{name.removesuffix('.ipynb')}-{label}.png"
        browser.save_screenshot(str(shot))
    problems = []
    dropdowns = 0
    for index, (cell, shown) in enumerate(zip(nb["cells"], cells, strict=True)):
        where = f"{name}, cell {index}"
        text = " ".join(shown["text"].split())
        hidden = cell["metadata"].get("jupyter", {})
        if hidden.get("source_hidden") and not shown["input_folded"]:
            problems.append(
                f"{where}: a cell the book folds (solution, hide-input) is shown"
            )
        if hidden.get("outputs_hidden") and not shown["output_folded"]:
            problems.append(f"{where}: an output the book folds is shown")
        if cell["cell_type"] != "markdown" or hidden.get("source_hidden"):
            continue
        source = "".join(cell["source"])
        dropdowns += source.count("{dropdown}")
        if found := RAW.search(text):
            problems.append(f"{where}: raw MyST {found.group()!r} in {text[:120]!r}")
        for expression in cell["metadata"].get("user_expressions", []):
            value = " ".join(expression["result"]["data"]["text/plain"].split())
            if value not in text:
                problems.append(
                    f"{where}: {expression['expression']} = {value!r} not shown"
                )
        if shown["unresolved"] or shown["unknown"]:
            problems.append(f"{where}: {shown['unresolved'] + shown['unknown']}")
        if shown["open_details"]:
            problems.append(f"{where}: a dropdown (hint or solution) is open")
    assert sum(c["details"] for c in cells) >= dropdowns
    assert not problems, "\n".join(problems)


def test_the_check_sees_what_jupyterlab_cannot_render(lab, browser):
    """A cell written with the Sphinx-only roles: what the check above looks for."""
    base, token, served = lab
    metadata = json.loads((ROOT / "chapters" / NOTEBOOKS[0]).read_text())["metadata"]
    source = (
        "As {cite:t}`ioffe2015batch` said (:::), see {numref}`fig-a`.\n\n"
        ":::{dropdown} Hint\n:open:\nA hint.\n:::\n\n:::{proof:lemma}\nx\n:::"
    )
    cell = {"cell_type": "markdown", "id": "raw", "metadata": {}, "source": source}
    nb = {"cells": [cell], "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}
    (served / "raw.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    browser.get(f"{base}/lab/tree/raw.ipynb?reset&token={token}")
    (shown,) = rendered_cells(browser, 1)
    assert RAW.search(shown["text"])
    assert [u.split(":")[0] for u in shown["unresolved"]] == [
        "Citation Not Found",
        "Cross Reference Not Found",
    ]
    assert shown["open_details"] == 1 and len(shown["unknown"]) == 1
