"""Every command of the `kansa` CLI is documented in the README or docs/."""

from __future__ import annotations

from pathlib import Path

import click

from kansa.cli import main

ROOT = Path(__file__).parent.parent


def _commands(group: click.Group, prefix: str) -> list[str]:
    found = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found += _commands(command, path)
        else:
            found.append(path)
    return found


def test_every_command_is_documented() -> None:
    text = (ROOT / "README.md").read_text() + "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    commands = _commands(main, "kansa")
    assert "kansa ledger verify" in commands
    missing = [c for c in commands if f"`{c}" not in text]
    assert not missing


def test_readme_setup_is_exactly_make_demo_and_make_test() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up on a fresh machine", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in setup.strip().splitlines()] == ["make demo", "make test"]
