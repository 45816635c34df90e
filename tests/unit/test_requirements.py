"""Every third-party module that the book imports is a pinned direct dependency.

The modules are found in the source: every ``import`` in code/, tests/, tools/ and the
notebooks' code cells, and in the scripts that tests hand to a fresh interpreter as
strings. Each must be pinned exactly in requirements.txt (which includes
requirements-book.txt); what the book build itself imports (its local Sphinx
extensions) must be in requirements-book.txt, all that `make book` installs; and what
bnbook imports must be among code/pyproject.toml's dependencies or extras.
"""

import ast
import json
import pathlib
import re
import sys
import tomllib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
# make mutation runs a copy of tests/ without the repository around it
pytestmark = pytest.mark.skipif(
    not (ROOT / "requirements.txt").exists(), reason="not in the repository"
)

# Import names whose distribution on PyPI is named otherwise.
DISTRIBUTIONS = {
    "IPython": "ipython",
    "bs4": "beautifulsoup4",
    "matplotlib_inline": "matplotlib-inline",
    "myst_nb": "myst-nb",
    "sklearn": "scikit-learn",
    "yaml": "PyYAML",
}
# The book's own modules: the package (requirements.txt installs it, -e ./code), the
# tests' helper modules and the tools.
LOCAL = {"bnbook"} | {
    p.stem for folder in ("tests", "tools") for p in (ROOT / folder).glob("*.py")
}


def normalized(distribution):
    return re.sub(r"[-_.]+", "-", distribution).lower()


def imported(source):
    """The top-level names of the modules ``source`` imports, also inside its string
    constants that are Python code (a script run in a fresh interpreter)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.search(r"^\s*(import|from) \w", node.value, re.MULTILINE):
                try:
                    yield from imported(node.value)
                except SyntaxError:  # prose that mentions an import
                    pass


def notebook_code(path):
    """A notebook's code cells, without IPython's magics and shell lines."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        if cell["cell_type"] == "code":
            lines = "".join(cell["source"]).splitlines()
            yield "\n".join(
                line for line in lines if not line.lstrip().startswith(("%", "!"))
            )


def sources(*folders):
    """(file, code) for every Python file under ``folders`` and every notebook."""
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        for code in notebook_code(path):
            yield path, code


def third_party(files):
    """{distribution: the first file that imports it} for ``files``' imports."""
    found = {}
    for path, code in files:
        for name in imported(code):
            if name in sys.stdlib_module_names or name in LOCAL:
                continue
            distribution = normalized(DISTRIBUTIONS.get(name, name))
            found.setdefault(distribution, path.relative_to(ROOT).as_posix())
    return found


def pins(path):
    """{distribution: version} of a requirements file and the files it includes."""
    pinned = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            pinned |= pins(path.parent / line.removeprefix("-r ").strip())
        elif not line.startswith("-e "):
            name, sep, version = line.partition("==")
            assert sep and version, f"{path.name}: {line!r} is not pinned with =="
            pinned[normalized(name)] = version
    return pinned


def test_every_imported_module_is_pinned():
    found = third_party(sources("code", "tests", "tools"))
    assert {"numpy", "pyyaml", "nbformat", "pybtex", "ipython"} <= set(found)
    pinned = pins(ROOT / "requirements.txt")
    missing = [f"{d} ({where})" for d, where in found.items() if d not in pinned]
    assert not missing, f"not pinned in requirements*.txt: {missing}"


def test_what_the_book_build_imports_is_in_requirements_book():
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    extensions = config["sphinx"]["local_extensions"]
    files = [
        (path, path.read_text(encoding="utf-8"))
        for name, folder in extensions.items()
        for path in [ROOT / folder / f"{name}.py"]
    ]
    found = third_party(files)
    assert "pybtex" in found
    pinned = pins(ROOT / "requirements-book.txt")
    assert set(found) <= set(pinned), f"not in requirements-book.txt: {found}"


def test_what_bnbook_imports_is_declared_in_its_pyproject():
    project = tomllib.loads((ROOT / "code" / "pyproject.toml").read_text())["project"]
    declared = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared |= set(extra)
    package = ROOT / "code" / "bnbook"
    found = third_party(
        (p, p.read_text(encoding="utf-8")) for p in package.glob("*.py")
    )
    assert {"numpy", "ipython", "myst-nb"} <= set(found)
    missing = set(found) - {normalized(d) for d in declared}
    assert not missing, f"bnbook imports {missing}: add them to code/pyproject.toml"
