"""Receipts (C2SP tlog-proof): the spec's example, and a Kansa receipt checked offline under a policy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import NOW, VECTORS, event
from processes import EXE

from ledger import Ledger, Submission
from ledger.cosignature import Cosigner
from ledger.note import b64encode
from ledger.receipt import parse_receipt
from ledger.witness import Witness

SPEC = json.loads((VECTORS / "c2sp_witness.json").read_text())
ORIGIN = "city.example/kansa/receipts"


def kansa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=60)


def test_the_spec_example_parses() -> None:
    receipt = parse_receipt(SPEC["proof_example"])
    assert receipt.index == 73894 and len(receipt.proof) == 5
    assert receipt.extra is not None and receipt.note.startswith("example.com/fancylog\n109482\n")
    assert b64encode(receipt.proof[0]) == "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ="


@pytest.fixture
def receipt(tmp_path: Path) -> tuple[Path, Path, Path]:
    db = tmp_path / "ledger.db"
    kansa("ledger", "init", str(db), "--origin", ORIGIN, "--contract", "x")
    vkey = kansa("ledger", "vkey", str(db)).stdout.strip()
    with Witness.init(tmp_path / "w", "city.example/w") as witness:
        witness.add_log(ORIGIN, vkey, now=NOW)
        with Ledger.open(db, key_path=f"{db}.key") as led:
            led.append([Submission(event()) for _ in range(50)], now=NOW)
            note = led.sign_checkpoint(now=NOW).note
            answer = witness.add_checkpoint(f"old 0\n\n{note}".encode(), now=NOW)
            led.add_cosigned_checkpoint(note + answer.body, now=NOW)
        (tmp_path / "policy").write_text(f"log {vkey}\nwitness city {witness.vkey}\nquorum city\n")
    other = Cosigner.generate("other.example/w").key.vkey
    (tmp_path / "strict").write_text(
        f"log {vkey}\nwitness city {witness.vkey}\nwitness other {other}\ngroup g all city other\nquorum g\n"
    )
    made = kansa("ledger", "prove", str(db), "17", "--receipt")
    assert made.returncode == 0, made.stderr
    path = tmp_path / "entry-17.tlog-proof"
    path.write_text(made.stdout)
    return path, tmp_path / "policy", tmp_path / "strict"


def test_a_receipt_checks_offline_and_each_tampering_fails(receipt: tuple[Path, Path, Path]) -> None:
    path, policy, strict = receipt
    text = path.read_text()
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ") and "\nindex 17\n" in text
    ok = kansa("ledger", "verify-receipt", str(path), "--policy", str(policy))
    assert (
        ok.returncode == 0 and ok.stdout == "OK: entry 17 is in the checkpoint of size 50, cosigned by city\n"
    )

    quorum = kansa("ledger", "verify-receipt", str(path), "--policy", str(strict))
    assert quorum.returncode == 1 and "not the policy's quorum (2 of city, other)" in quorum.stdout

    lines = text.split("\n")
    leaf = json.loads(parse_receipt(text).extra or b"")
    leaf["event"]["actor"] = "someone-else"
    forged_leaf = [lines[0], "extra " + b64encode(json.dumps(leaf).encode()), *lines[2:]]
    proof_line = lines.index("index 17") + 1
    forged_proof = [*lines[:proof_line], b64encode(bytes(32)), *lines[proof_line + 1 :]]
    other_index = [line if line != "index 17" else "index 18" for line in lines]
    # a hostile receipt: an extra line nested past what Python's JSON parser can recurse into
    too_deep = [lines[0], "extra " + b64encode(b"[" * 200_000 + b"]" * 200_000), *lines[2:]]
    for forged, reason in (
        (too_deep, "the extra line is not a ledger leaf"),
        (forged_leaf, "inclusion proof does not lead to the root"),
        (forged_proof, "inclusion proof does not lead to the root"),
        (other_index, "is not entry 18"),
    ):
        path.write_text("\n".join(forged))
        failed = kansa("ledger", "verify-receipt", str(path), "--policy", str(policy))
        assert failed.returncode == 1 and reason in failed.stdout, failed.stdout

    missing = kansa("ledger", "verify-receipt", str(path.with_suffix(".gone")), "--policy", str(policy))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_no_receipt_for_an_entry_past_the_latest_checkpoint(receipt: tuple[Path, Path, Path]) -> None:
    db = receipt[0].parent / "ledger.db"
    late = kansa("ledger", "prove", str(db), "50", "--receipt")
    assert late.returncode == 1 and "entry 50 is not in a checkpoint yet" in late.stderr
