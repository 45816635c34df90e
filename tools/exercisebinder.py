"""A Sphinx extension: on a page of the workbook, the Binder button opens the page's
exercise notebook (the blanks), not the solution notebook the page is built from.

_config.yml loads it (``sphinx.local_extensions``). sphinx-book-theme builds its launch
buttons in a handler of ``html-page-context`` at priority 501; this one runs after it
and rewrites their links.
"""

WORKBOOK = "chapters/workbook_"


def open_exercise(app, pagename, templatename, context, doctree):
    if not pagename.startswith(WORKBOOK):
        return
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []):
            url = button.get("url", "")
            if "binder" in url and url.endswith(".ipynb"):
                button["url"] = url.removesuffix(".ipynb") + "_exercise.ipynb"


def setup(app):
    app.connect("html-page-context", open_exercise, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
