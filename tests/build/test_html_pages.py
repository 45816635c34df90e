"""The HTML book exists after `jupyter-book build`, with a page for every toc entry."""

import json

import bs4
import pytest
from booktoc import HTML, ROOT, toc_files


def test_index_exists():
    assert (HTML / "index.html").is_file(), "run `make book` first"


@pytest.mark.parametrize("doc", toc_files())
def test_every_toc_page_is_built(doc):
    page = HTML / f"{doc}.html"
    assert page.is_file(), f"{page} is missing"
    assert "<h1" in page.read_text(encoding="utf-8")


def test_every_notebook_and_page_is_in_the_toc():
    # but the workbook's exercise notebooks: Binder opens them, the book shows their
    # solution notebooks
    docs = set(toc_files())
    on_disk = {
        f"chapters/{p.stem}"
        for p in (ROOT / "chapters").iterdir()
        if p.suffix in {".md", ".ipynb"} and not p.stem.endswith("_exercise")
    }
    assert on_disk == docs, f"not in _toc.yml: {on_disk - docs}"


def test_a_workbook_page_launches_its_exercise_notebook_on_binder():
    page = (HTML / "chapters/workbook_1_forward.html").read_text(encoding="utf-8")
    assert "urlpath=lab/tree/chapters/workbook_1_forward_exercise.ipynb" in page
    assert "urlpath=lab/tree/chapters/workbook_1_forward.ipynb" not in page
    chapter = (HTML / "chapters/03_numpy_step_by_step.html").read_text(encoding="utf-8")
    assert "urlpath=lab/tree/chapters/03_numpy_step_by_step.ipynb" in chapter


def _follows_a_solution_harmlessly(element):
    """The end of the section, or the next exercise. (A workbook's check cell sits inside
    its solution's dropdown, so that its "passed" is read as the solution's, never as
    the blank's.)"""
    if element is None:
        return True
    classes = element.get("class") or []
    return element.name == "div" and "exercise" in classes


@pytest.mark.parametrize("doc", [d for d in toc_files() if d.startswith("chapters/")])
def test_nothing_of_a_solution_sits_outside_its_dropdown(doc):
    page = bs4.BeautifulSoup((HTML / f"{doc}.html").read_text("utf-8"), "html.parser")
    for solution in page.select("div.solution"):
        after = solution.find_next_sibling()
        assert _follows_a_solution_harmlessly(after), (
            f"{doc}: after {solution.get('id')}, outside the dropdown: "
            f"{after.get_text()[:80]!r}"
        )


WORKBOOK = [d for d in toc_files() if d.startswith("chapters/workbook_")]


@pytest.mark.parametrize("doc", WORKBOOK)
def test_a_workbook_check_shows_its_output_inside_the_solution(doc):
    page = bs4.BeautifulSoup((HTML / f"{doc}.html").read_text("utf-8"), "html.parser")
    checks = [
        cell
        for cell in page.select("div.cell")
        if cell.find("div", class_="cell_input")
        and cell.find("div", class_="cell_input")
        .get_text()
        .strip()
        .startswith("check_")
    ]
    assert checks, f"{doc}: no check cell"
    for cell in checks:
        solution = cell.find_parent("div", class_="solution")
        assert solution is not None, f"{doc}: a check cell outside its solution"
        assert "run on the solution above" in solution.get_text()
        assert "passed" in cell.find("div", class_="cell_output").get_text()


@pytest.mark.parametrize("doc", WORKBOOK)
def test_a_workbook_page_numbers_its_exercises_within_the_workbook(doc):
    # the part is numbered (_toc.yml): page N's exercises are N.1, N.2, ..., not the
    # chapters' count going on
    page = bs4.BeautifulSoup((HTML / f"{doc}.html").read_text("utf-8"), "html.parser")
    number = doc.removeprefix("chapters/workbook_")[0]
    titles = [
        t.get_text(" ", strip=True)
        for t in page.select("div.exercise .admonition-title")
    ]
    assert titles, f"{doc}: no exercise"
    for k, title in enumerate(titles, start=1):
        assert title.startswith(f"Exercise {number}.{k} "), title


def test_a_workbook_page_downloads_its_exercise_notebook():
    # tools/exercisenotebook.py: the download button gives the blanks, as Binder does
    for doc in WORKBOOK:
        page = (HTML / f"{doc}.html").read_text(encoding="utf-8")
        name = doc.removeprefix("chapters/")
        assert f'href="../_sources/chapters/{name}_exercise.ipynb"' in page, doc
        assert f'href="../_sources/chapters/{name}.ipynb"' not in page, doc
        copy = HTML / "_sources" / f"{doc}_exercise.ipynb"
        assert copy.read_bytes() == (ROOT / f"{doc}_exercise.ipynb").read_bytes(), doc
    chapter = (HTML / "chapters/03_numpy_step_by_step.html").read_text(encoding="utf-8")
    assert 'href="../_sources/chapters/03_numpy_step_by_step.ipynb"' in chapter


@pytest.mark.parametrize("doc", toc_files())
def test_no_inline_script_twice(doc):
    # tools/inlinescripts.py: a second `const THEBE_JS_URL = ...` is a JavaScript error
    page = bs4.BeautifulSoup((HTML / f"{doc}.html").read_text("utf-8"), "html.parser")
    bodies = [
        s.string for s in page.find_all("script") if not s.get("src") and s.string
    ]
    twice = {body[:60] for body in bodies if bodies.count(body) > 1}
    assert not twice, f"{doc}: inline scripts twice: {twice}"


def test_bibliography_labels_keep_the_name_particle():
    # tools/authoryear.py: labelled as the text cites the work, "van Laarhoven (2017)"
    page = (HTML / "chapters/references.html").read_text(encoding="utf-8")
    assert "[</span>van Laarhoven, 2017" in page
    assert "[</span>Laarhoven, 2017" not in page


def test_search_titles_are_plain_text():
    # the search shows a heading's text as is: math in a heading comes out as raw TeX
    # ("Why \\epsilon"), so a heading writes its symbols in Unicode ("Why ε")
    text = (HTML / "searchindex.js").read_text(encoding="utf-8")
    index = json.loads(text.removeprefix("Search.setIndex(").removesuffix(")"))
    tex = {title for title in index["alltitles"] if "\\" in title or "$" in title}
    assert not tex, sorted(tex)
