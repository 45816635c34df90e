"""Every internal link of the built book resolves, anchors included; external links
are listed in ``_build/external-links.txt`` for a person to check, never fetched.
Sphinx's own linkcheck (``make links``) agrees: its report is checked here too."""

import html.parser
import json
import pathlib
import re
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"


class _Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def _parse(path, cache={}):  # noqa: B006 (a cache shared by the calls of one run)
    if path not in cache:
        page = _Page()
        page.feed(path.read_text(encoding="utf-8"))
        cache[path] = page
    return cache[path]


def book_pages():
    skip = {"genindex.html", "search.html"}
    return [
        p
        for p in sorted(HTML.rglob("*.html"))
        if p.name not in skip and "_static" not in p.parts and "_sources" not in p.parts
    ]


def test_internal_links_and_anchors_resolve():
    assert (HTML / "index.html").is_file(), "run `make book` first"
    broken, external = [], set()
    for page in book_pages():
        for href in _parse(page).links:
            url = urllib.parse.urlsplit(href)
            if url.scheme in ("http", "https"):
                external.add(href)
                continue
            if url.scheme:  # mailto: and the like
                continue
            target = (page.parent / urllib.parse.unquote(url.path)).resolve()
            if not url.path:
                target = page
            if target.is_dir():
                target = target / "index.html"
            where = f"{page.relative_to(HTML)}: {href}"
            if not target.is_file():
                broken.append(f"{where} (no file)")
            elif url.fragment and target.suffix == ".html":
                if url.fragment not in _parse(target).ids:
                    broken.append(f"{where} (no anchor)")
    (HTML.parent / "external-links.txt").write_text(
        "".join(f"{link}\n" for link in sorted(external)), encoding="utf-8"
    )
    assert not broken, f"{len(broken)} broken links: {broken[:10]}"
    assert external, "no external links found: is the parser still reading the pages?"


def test_sphinx_linkcheck_offline():
    """`make links` (Sphinx's linkcheck builder) found every local target and fetched
    nothing: every external link is reported as ignored, and none is missing."""
    report = HTML.parent / "linkcheck" / "output.json"
    assert report.is_file(), "run `make links` first"
    rows = [
        json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()
    ]
    external = [r for r in rows if r["uri"].startswith(("http://", "https://"))]
    local = [r for r in rows if r not in external]
    # Sphinx leaves same-page anchors (#...) unchecked: the test above checks them.
    assert all(r["status"] == "working" for r in local if r["uri"][0] != "#"), local
    assert {r["status"] for r in external} == {"ignored"}, (
        "an external link was fetched"
    )
    bib = (ROOT / "references.bib").read_text(encoding="utf-8")
    urls = set(re.findall(r"url\s*=\s*\{([^}]+)\}", bib))
    assert urls and urls <= {r["uri"] for r in external}, "a reference's URL is missing"
