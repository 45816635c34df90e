"""The HTML book exists after `jupyter-book build`, with a page for every toc entry."""

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
    """The end of the section, the next exercise, or a workbook's check cell (which
    runs the check on the reader's own code)."""
    if element is None:
        return True
    classes = element.get("class") or []
    if element.name == "div" and "exercise" in classes:
        return True
    code = element.find("div", class_="cell_input")
    return (
        "cell" in classes
        and code is not None
        and code.get_text().strip().startswith("check_")
    )


@pytest.mark.parametrize("doc", [d for d in toc_files() if d.startswith("chapters/")])
def test_nothing_of_a_solution_sits_outside_its_dropdown(doc):
    page = bs4.BeautifulSoup((HTML / f"{doc}.html").read_text("utf-8"), "html.parser")
    for solution in page.select("div.solution"):
        after = solution.find_next_sibling()
        assert _follows_a_solution_harmlessly(after), (
            f"{doc}: after {solution.get('id')}, outside the dropdown: "
            f"{after.get_text()[:80]!r}"
        )
