"""The book's pages, as ``_toc.yml`` lists them (shared by the build and browser tests;
``tests/conftest.py`` puts this folder on the import path)."""

import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"


def toc_files():
    """Every document of ``_toc.yml``, root first, as paths without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [entry["file"] for entry in part["chapters"]]
    return files
