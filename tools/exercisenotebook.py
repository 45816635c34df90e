"""A Sphinx extension: on a page of the workbook, the Binder button opens the page's
exercise notebook (the blanks), not the solution notebook the page is built from, and
the download button gives that exercise notebook too.

_config.yml loads it (``sphinx.local_extensions``). sphinx-book-theme builds its launch
and download buttons in handlers of ``html-page-context`` at priority 501; this one runs
after them and rewrites their links. The exercise notebooks are not pages of the book,
so Sphinx does not copy them into ``_sources``: this extension copies each one next to
its solution there, where the download button points.
"""

import pathlib
import shutil

WORKBOOK = "chapters/workbook_"
EXERCISE = "_exercise.ipynb"


def open_exercise(app, pagename, templatename, context, doctree):
    if not pagename.startswith(WORKBOOK):
        return
    exercise = pathlib.Path(app.srcdir, pagename + EXERCISE)
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []):
            url = button.get("url", "")
            if "binder" in url and url.endswith(".ipynb"):
                button["url"] = url.removesuffix(".ipynb") + EXERCISE
            elif button.get("label") == "download-source-button":
                button["url"] = url.removesuffix(".ipynb") + EXERCISE
                button["tooltip"] = "Download the exercise notebook"
                target = pathlib.Path(app.outdir, "_sources", pagename + EXERCISE)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(exercise, target)


def setup(app):
    app.connect("html-page-context", open_exercise, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
