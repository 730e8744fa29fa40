"""Every `kansa` command, given a bad path, answers with a short message and its exit code,
never a traceback (issue 11 item 5); the checking commands exit 2 ("could not check")."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kansa.cli import main

# Commands that check something: 0 holds, 1 fails, 2 could not be checked.
CHECKING = {"ledger verify", "check"}
# Commands that never touch a path given on the command line.
NO_PATH = {"demo"}
# Commands that create what they are given, or read only a file beside the path.
MAY_SUCCEED = {"witness init", "keys new", "auditor list"}


def leaves(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from leaves(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def bad_arguments(command: click.Command, bad: str) -> list[str]:
    """The command's required arguments and options, each path pointing at `bad`."""
    args: list[str] = []
    for param in command.params:
        if isinstance(param, click.Argument) and param.required:
            value = "1" if isinstance(param.type, click.types.IntParamType) else bad
            if isinstance(param.type, click.Choice):
                value = str(param.type.choices[0])
            args += [value] * (param.nargs if param.nargs > 0 else 1)
        elif isinstance(param, click.Option) and (
            param.required or param.name in ("db", "store", "key", "outbox")
        ):
            if param.is_flag:
                continue
            value = "2026-09" if param.name == "month" else bad
            if isinstance(param.type, click.Choice):
                value = str(param.type.choices[0])
            args += [param.opts[0], value]
    return args


COMMANDS = [
    pytest.param(path, command, id=" ".join(path))
    for path, command in leaves(main)
    if " ".join(path) not in NO_PATH
]


@pytest.mark.parametrize(("path", "command"), COMMANDS)
@pytest.mark.parametrize("kind", ["missing", "not a ledger"])
def test_a_bad_path_is_one_short_line(
    path: tuple[str, ...], command: click.Command, kind: str, tmp_path: Path
) -> None:
    bad = tmp_path / "nowhere" / "ledger.db"
    if kind == "not a ledger":
        bad = tmp_path / "ledger.db"
        bad.write_bytes(os.urandom(4096))
    args = [*path, *bad_arguments(command, str(bad))]
    result = CliRunner().invoke(main, args, input="")
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
    assert "Traceback" not in result.output, args
    if " ".join(path) in MAY_SUCCEED:
        return
    assert result.exit_code != 0, (args, result.output)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert 0 < len(lines) <= 4, (args, result.output)
    if " ".join(path) in CHECKING:
        assert result.exit_code == 2, (args, result.exit_code, result.output)


def test_verify_tells_tampering_from_trouble(tmp_path: Path) -> None:
    """Real `kansa ledger verify` processes: 0 holds, 1 tampered (with the index), 2 not checkable."""
    import sqlite3
    import subprocess
    import sys

    kansa = str(Path(sys.executable).parent / "kansa")

    def verify(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kansa, "ledger", "verify", str(path)], capture_output=True, text=True, timeout=120
        )

    db = tmp_path / "ledger.db"
    subprocess.run(
        [kansa, "ledger", "init", str(db), "--origin", "t.example/l", "--contract", "c"], check=True
    )
    lines = "".join(
        f'{{"id":"e{i}","type":"case.stop","at":"2026-09-24T09:00:00+09:00","actor":"m",'
        f'"data":{{"case":"C{i}","by":"city01","reason":"paid"}}}}\n'
        for i in range(5)
    )
    subprocess.run(
        [kansa, "ledger", "append", str(db), "-"], input=lines, text=True, check=True, capture_output=True
    )
    good = verify(db)
    assert good.returncode == 0 and good.stdout.startswith("OK"), good.stdout + good.stderr

    noise = tmp_path / "noise.db"
    noise.write_bytes(b"\x00garbage" * 1000)
    for path in (noise, tmp_path / "missing.db", tmp_path):
        trouble = verify(path)
        assert trouble.returncode == 2, (path, trouble.stdout, trouble.stderr)
        assert "FAILED" not in trouble.stdout and "Traceback" not in trouble.stderr
        assert len([x for x in (trouble.stdout + trouble.stderr).splitlines() if x.strip()]) <= 3

    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("UPDATE entries SET leaf = replace(leaf, 'paid', 'unpaid') WHERE idx = 3")
    conn.commit()
    conn.close()
    tampered = verify(db)
    assert tampered.returncode == 1 and tampered.stdout.startswith("FAILED at index 3"), tampered.stdout


def test_json_nested_too_deeply_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """json.loads raises RecursionError, not ValueError, past ~1,000 levels."""
    key = tmp_path / "op.key"
    assert CliRunner().invoke(main, ["keys", "new", "--holder", "op01", "--out", str(key)]).exit_code == 0
    deep = "[" * 5000 + "]" * 5000
    args = ["client", "send", "--url", "http://127.0.0.1:1", "--key", str(key)]
    result = CliRunner().invoke(main, [*args, "--outbox", str(tmp_path / "ob.db"), "access.login", deep])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert "not recorded" in result.output and "Traceback" not in result.output
