"""`kansa ledger ...`: the commands and output formats of verification.md."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import event, tamper

from kansa.cli import main
from ledger import Ledger, Verifier, merkle, open_checkpoint, verify_consistency, verify_inclusion
from ledger.leaf import parse_leaf


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "l.db"
    result = run(
        "ledger", "init", str(path), "--origin", "test.example/cli", "--contract", "nagaoka-nhi-2026"
    )
    assert result.exit_code == 0, result.output
    return path


def lines(n: int, **kw) -> str:
    return "".join(json.dumps(event(**kw)) + "\n" for _ in range(n))


def test_init_creates_a_0600_key_outside_the_database_and_prints_its_path(db: Path) -> None:
    key = Path(f"{db}.key")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("PRIVATE+KEY+test.example/cli+")
    assert b"PRIVATE+KEY" not in db.read_bytes()
    again = CliRunner().invoke(main, ["ledger", "init", str(db), "--origin", "x", "--contract", "y"])
    assert again.exit_code == 1 and "already exists" in again.output


def test_append_prints_each_index_and_vkey_checkpoint_verify(db: Path, tmp_path: Path) -> None:
    src = tmp_path / "events.jsonl"
    src.write_text(lines(3))
    assert run("ledger", "append", str(db), str(src)).output.split() == ["0", "1", "2"]
    assert run("ledger", "append", str(db), "-", input=lines(2)).output.split() == ["3", "4"]
    vkey = run("ledger", "vkey", str(db)).output.strip()
    note = run("ledger", "checkpoint", str(db)).output
    cp = open_checkpoint(note, Verifier.parse(vkey))
    assert (cp.origin, cp.size) == ("test.example/cli", 5)
    assert note.split("\n")[:2] == ["test.example/cli", "5"]
    result = run("ledger", "verify", str(db))
    assert result.exit_code == 0 and result.output.startswith("OK: 5 entries")


def test_a_bad_line_appends_nothing_and_names_the_line(db: Path) -> None:
    text = lines(2) + "\n" + json.dumps(event("call.dialed", ring_s=-3)) + "\n" + lines(1)
    result = CliRunner().invoke(main, ["ledger", "append", str(db), "-"], input=text)
    assert result.exit_code == 1
    assert "line 4: data.ring_s" in result.output and "nothing from this file was appended" in result.output
    assert Ledger.open(db).size == 0
    broken = CliRunner().invoke(main, ["ledger", "append", str(db), "-"], input=lines(1) + "{not json\n")
    assert broken.exit_code == 1 and "line 2: not a valid event line" in broken.output


def test_an_appended_line_may_carry_a_registered_keys_signature(db: Path) -> None:
    from conftest import register, signed

    from ledger import Signer

    op = Signer.generate("op07")
    reg = register(op).event
    sub = signed(event(), op)
    text = json.dumps(reg) + "\n" + json.dumps({"event": sub.event, "sig": sub.sig.__dict__}) + "\n"
    assert run("ledger", "append", str(db), "-", input=text).output.split() == ["0", "1"]
    leaf = parse_leaf(Ledger.open(db).leaf(1))
    assert leaf["sig"]["key"] == op.verifier.key_ref


def test_export_prove_and_consistency_check_out_independently(db: Path) -> None:
    run("ledger", "append", str(db), "-", input=lines(13))
    run("ledger", "checkpoint", str(db))
    exported = [json.loads(x) for x in run("ledger", "export", str(db)).output.splitlines()]
    assert [e["index"] for e in exported] == list(range(13))
    hashes = [merkle.leaf_hash(base64.b64decode(e["leaf"])) for e in exported]
    edge = merkle.CompactRange()
    roots = [edge.root()]
    for h in hashes:
        edge.append(h)
        roots.append(edge.root())
    proof = json.loads(run("ledger", "prove", str(db), "6", "--size", "11").output)
    assert set(proof) == {"index", "size", "hashes"} and (proof["index"], proof["size"]) == (6, 11)
    verify_inclusion(6, 11, hashes[6], [base64.b64decode(h) for h in proof["hashes"]], roots[11])
    default = json.loads(run("ledger", "prove", str(db), "6").output)
    assert default["size"] == 13
    cons = json.loads(run("ledger", "consistency", str(db), "5", "13").output)
    assert set(cons) == {"old", "new", "hashes"}
    verify_consistency(5, 13, roots[5], roots[13], [base64.b64decode(h) for h in cons["hashes"]])
    part = run("ledger", "export", str(db), "--from", "3", "--to", "5").output.splitlines()
    assert [json.loads(x)["index"] for x in part] == [3, 4]


def test_proofs_out_of_range_are_clear_errors(db: Path) -> None:
    run("ledger", "append", str(db), "-", input=lines(3))
    bad = CliRunner().invoke(main, ["ledger", "prove", str(db), "5", "--size", "3"])
    assert bad.exit_code == 1 and "index 5 is not below tree size 3" in bad.output
    big = CliRunner().invoke(main, ["ledger", "consistency", str(db), "2", "9"])
    assert big.exit_code == 1 and "has 3 entries" in big.output
    none = CliRunner().invoke(main, ["ledger", "prove", str(db), "0"])
    assert none.exit_code == 1 and "no checkpoint" in none.output


def test_verify_exits_1_with_the_first_bad_index(db: Path, tmp_path: Path) -> None:
    run("ledger", "append", str(db), "-", input=lines(6))
    kept = tmp_path / "kept.txt"
    kept.write_text(run("ledger", "checkpoint", str(db)).output)
    assert run("ledger", "verify", str(db), "--checkpoint", str(kept)).exit_code == 0
    run("ledger", "append", str(db), "-", input=lines(3))
    since = run("ledger", "verify", str(db), "--since-checkpoint", str(kept))
    assert since.exit_code == 0 and "since checkpoint of size 6 (3 checked)" in since.output
    tamper(db, "UPDATE entries SET actor = 'op99' WHERE idx = 4")
    result = CliRunner().invoke(main, ["ledger", "verify", str(db)])
    assert result.exit_code == 1 and result.output.startswith("FAILED at index 4:")


def test_the_installed_command_runs(db: Path) -> None:
    exe = Path(sys.executable).parent / "kansa"
    out = subprocess.run([str(exe), "ledger", "vkey", str(db)], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("test.example/cli+")
    missing = subprocess.run(
        [str(exe), "ledger", "append", str(db), "/nonexistent.jsonl"], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_a_key_file_others_can_read_is_refused(db: Path) -> None:
    os.chmod(f"{db}.key", 0o644)
    result = CliRunner().invoke(main, ["ledger", "checkpoint", str(db)])
    assert result.exit_code == 1 and "chmod 600" in result.output
