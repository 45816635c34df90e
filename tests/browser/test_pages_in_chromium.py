"""Every page of the built book, opened in headless Chromium as a reader would see it.

Serves ``_build/html`` on localhost (run ``make book`` first) and checks, per page:
math typeset by MathJax with no error and no raw delimiters left; every image loaded,
described by alt text and drawn at 1.5 times the width it is shown at or more; no
Python traceback or stderr output shown; no error in the JavaScript console; the
Binder button of a notebook pointing at that notebook in this repository (on a
workbook page, at its exercise notebook); at desktop width (1400 px), no display
equation or printed output wider than its column and no second header bar; at a
phone's width of 390 px, no horizontal scrolling of the page, every figure within its
column and a link to open it full size, and printed sentences wrapped (tables and code
listings scroll in their own box). A screenshot of each page, at desktop and at phone
width, is saved under ``_build/screenshots`` for a person to look at.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them), or
another Chromium and its driver named by the environment variables ``CHROMIUM`` and
``CHROMEDRIVER``.
"""

import functools
import http.server
import threading
import time

import pytest
import yaml
from booktoc import HTML, ROOT, toc_files

SHOTS = ROOT / "_build" / "screenshots"
PHONE_WIDTH = 390
DESKTOP_WIDTH = 1400


def repository_path():
    """``owner/name`` from ``repository.url`` in ``_config.yml``."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    return config["repository"]["url"].removeprefix("https://github.com/").strip("/")


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").is_file():
        pytest.fail("no built book: run `make book` first")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def settle(driver, timeout=20.0):
    """Wait until the page, its fonts and MathJax are done; return MathJax's state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.execute_script(
            "return document.readyState === 'complete' && document.fonts.status === 'loaded'"
        ):
            break
        time.sleep(0.1)
    return wait_for_mathjax(driver, deadline - time.monotonic())


def wait_for_mathjax(driver, timeout=20.0):
    """Wait until MathJax has typeset the page (or the page has no MathJax)."""
    script = """
        if (!window.MathJax) return 'absent';
        if (!MathJax.startup || !MathJax.startup.promise) return 'loading';
        if (!window.__typeset) {
            window.__typeset = 'pending';
            MathJax.startup.promise.then(() => { window.__typeset = 'done'; });
        }
        return window.__typeset;"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = driver.execute_script(script)
        if state in ("done", "absent"):
            return state
        time.sleep(0.1)
    return "timeout"


# Text outside code, outputs and typeset math that still holds a math delimiter.
RAW_MATH = r"""
    const root = document.querySelector('main') || document.body;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const skip = 'pre, code, script, style, .highlight, .cell_output, mjx-container';
    const pattern = /\\\(|\\\)|\\\[|\\\]|\$\$|(^|[^\\\w])\$[^$\s]/;
    const found = [];
    for (let node; (node = walker.nextNode()); ) {
        if (node.parentElement.closest(skip)) continue;
        if (pattern.test(node.textContent)) found.push(node.textContent.trim().slice(0, 80));
    }
    return found;"""


# Display equations (MathJax's CHTML) wider than the box they sit in.
WIDE_MATH = r"""
    const found = [];
    document.querySelectorAll('main mjx-container[display="true"]').forEach((c, i) => {
        const box = c.closest('div.math') || c.parentElement;
        const math = c.querySelector('mjx-math');
        const width = math ? math.getBoundingClientRect().width : c.scrollWidth;
        if (width > box.clientWidth + 1)
            found.push(`equation ${i + 1}: ${Math.round(width)} px in ${box.clientWidth} px`);
    });
    return found;"""

# Inline math that runs past the right edge of its paragraph (or admonition), where it
# is cut off: inline math cannot scroll, so a long formula belongs on a display line.
CLIPPED_INLINE_MATH = r"""
    return [...document.querySelectorAll('main article mjx-container:not([display="true"])')]
        .filter(c => c.offsetParent !== null)
        .filter(c => {
            const box = c.parentElement.closest('p, li, td, dd, div');
            return c.getBoundingClientRect().right > box.getBoundingClientRect().right + 1;
        })
        .map(c => (c.querySelector('mjx-assistive-mml') || c).textContent.slice(0, 60));"""

# Printed output that is not a table (pages.js marks those) yet scrolls: it should wrap.
UNWRAPPED = """
    return [...document.querySelectorAll('main .cell_output .output.stream pre')]
        .filter(p => !p.classList.contains('bn-table'))
        .filter(p => p.scrollWidth > p.clientWidth + 1)
        .map(p => p.textContent.slice(0, 60));"""

# The theme's top bar: hidden above 960 px by _static/custom.css.
HEADER_SHOWN = """
    const bar = document.querySelector('#pst-header');
    return bar !== null && getComputedStyle(bar).display !== 'none';"""


@pytest.mark.parametrize("doc", toc_files())
def test_page_holds_up(doc, server, browser):
    browser.set_window_size(DESKTOP_WIDTH, 1000)
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(f"{server}/{doc}.html")
    state = settle(browser)
    name = doc.replace("/", "_")
    browser.save_screenshot(str(SHOTS / f"{name}.png"))
    problems = []

    # No JavaScript error (a script declared twice, a theme complaint); the book has no
    # favicon, which the test server answers with a 404.
    errors = [
        entry["message"][:160]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and "/favicon.ico" not in entry["message"]
    ]
    if errors:
        problems.append(f"errors in the JavaScript console: {errors}")

    source = (HTML / f"{doc}.html").read_text(encoding="utf-8")
    has_math = 'class="math' in source
    if has_math:
        typeset = browser.find_elements("css selector", "mjx-container")
        if state != "done" or not typeset:
            problems.append(f"math not typeset (MathJax state {state})")
    if browser.find_elements("css selector", "mjx-merror, .MathJax_Error"):
        problems.append("MathJax reported an error")
    raw = browser.execute_script(RAW_MATH)
    if raw:
        problems.append(f"raw math delimiters in the text: {raw[:3]}")

    images = browser.execute_script(
        "return [...document.querySelectorAll('main img')].map(i => [i.getAttribute('src'),"
        " i.naturalWidth, i.getAttribute('alt'), i.getBoundingClientRect().width])"
    )
    for src, width, alt, shown in images:
        if not width:
            problems.append(f"image not loaded: {src}")
        if not (alt or "").strip():
            problems.append(f"image without alt text: {src}")
        # sharp: drawn at 1.5 times the size it is shown at, or more (or a vector image)
        if width and not src.endswith(".svg") and width < 1.5 * shown:
            problems.append(f"image drawn {width} px wide, shown {shown:.0f} px: {src}")

    if browser.execute_script(HEADER_SHOWN):
        problems.append("the theme's top bar with a second search box is shown")
    wide = browser.execute_script(WIDE_MATH)
    if wide:
        problems.append(f"display equations wider than the column: {wide}")
    scrolled = browser.execute_script(UNWRAPPED)
    if scrolled:
        problems.append(f"printed sentences wider than the column: {scrolled}")

    text = browser.find_element("tag name", "main").text
    if "Traceback (most recent call last)" in text:
        problems.append("a Python traceback is shown")
    if browser.find_elements("css selector", ".output.stderr, .output.traceback"):
        problems.append("an stderr or error output is shown")
    for warning in ("Warning:", "DeprecationWarning", "RuntimeWarning"):
        if warning in text:
            problems.append(f"a warning is shown: {warning}")

    if (ROOT / f"{doc}.ipynb").is_file():
        binder = [
            a.get_attribute("href")
            for a in browser.find_elements("css selector", "a[href*='mybinder.org']")
        ]
        # a page of the workbook opens its exercise notebook (tools/exercisenotebook.py)
        opens = f"{doc}_exercise" if doc.startswith("chapters/workbook_") else doc
        expected = f"/v2/gh/{repository_path()}/main?urlpath=lab/tree/{opens}.ipynb"
        if not any(expected in href for href in binder):
            problems.append(f"no Binder link to {expected}: {binder}")

    browser.set_window_size(PHONE_WIDTH, 844)
    browser.get(f"{server}/{doc}.html")
    settle(browser)
    time.sleep(0.3)  # let the typeset math and the theme's layout scripts finish
    widths = browser.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    browser.save_screenshot(str(SHOTS / f"{name}-phone.png"))
    # Every figure fits its column, and is a link that opens it full size (pages.js
    # marks Sphinx's link, and custom.css says so under the figure).
    figures = browser.execute_script(
        "return [...document.querySelectorAll('main .cell_output img')].map(i => {"
        " const a = i.closest('a.bn-enlarge'), box = i.closest('.cell_output');"
        " return [Math.round(i.getBoundingClientRect().width), box.clientWidth,"
        " a ? a.getAttribute('href') : null, i.getAttribute('src')]; })"
    )
    for shown, column, href, src in figures:
        if shown > column + 1:
            problems.append(f"figure {shown} px wide in a {column} px column: {src}")
        if href is None or not href.endswith(src.rsplit("/", 1)[-1]):
            problems.append(f"figure without a link to open it full size: {src}")
    # Printed sentences wrap at a phone's width; tables and listings may scroll in
    # their own box (the page itself must not, checked below).
    clipped = browser.execute_script(CLIPPED_INLINE_MATH)
    if clipped:
        problems.append(f"inline math cut off at {PHONE_WIDTH} px: {clipped}")
    unwrapped = browser.execute_script(UNWRAPPED)
    if unwrapped:
        problems.append(f"printed sentences scroll at {PHONE_WIDTH} px: {unwrapped}")
    if widths[0] > widths[1]:
        problems.append(
            f"scrolls sideways at {PHONE_WIDTH} px: content {widths[0]} px wide"
        )

    assert not problems, f"{doc}: " + "; ".join(problems)
