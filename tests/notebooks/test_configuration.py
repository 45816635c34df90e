"""The pages take the repository's address from the configuration, in one place."""

import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_pages_clone_command_uses_the_configured_url():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = config["repository"]["url"]
    shown = config["parse"]["myst_substitutions"]["git_clone"]
    assert shown == f"`git clone {url}`", f"git_clone is {shown!r}, the url {url!r}"
    assert "{{ git_clone }}" in (ROOT / "chapters" / "intro.md").read_text()
