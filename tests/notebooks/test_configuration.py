"""The pages take the repository's address from the configuration, in one place; CI
runs the README's test command."""

import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_pages_clone_command_uses_the_configured_url():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = config["repository"]["url"]
    shown = config["parse"]["myst_substitutions"]["git_clone"]
    assert shown == f"`git clone {url}`", f"git_clone is {shown!r}, the url {url!r}"
    assert "{{ git_clone }}" in (ROOT / "chapters" / "intro.md").read_text()


def test_ci_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```bash\n(.*?)^```", readme, re.DOTALL | re.MULTILINE)
    commands = [line.split("#")[0].strip() for b in blocks for line in b.splitlines()]
    test = [c for c in commands if c.startswith("make test")]
    assert len(test) == 1, f"the README's test commands: {test}"
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    ci = [s for s in map(str.strip, lines) if s and not s.startswith("#")]
    assert ci[-1] == test[0], (
        f".ci/run ends with {ci[-1]!r}, the README says {test[0]!r}"
    )
