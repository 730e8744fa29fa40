"""Go's golang.org/x/mod/sumdb/note and sumdb/tlog read our artefacts as they are.

tests/go/check_with_go.go (none of Kansa's code) verifies a checkpoint's
signature with the verifier key, re-hashes every exported leaf into a tlog
tree whose root must be the checkpoint's, and checks `kansa ledger prove` and
`consistency` proofs with tlog.CheckRecord and tlog.CheckTree. Go and x/mod
come from Debian (golang-go, golang-golang-x-mod-dev); `make install` installs
them. Under CI the test fails rather than skips when they are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NOW, event

from ledger import Ledger, Signer, Submission

GO_SOURCE = Path(__file__).parent / "go" / "check_with_go.go"
GOPATH = Path("/usr/share/gocode")
HAVE_GO = shutil.which("go") is not None and (GOPATH / "src/golang.org/x/mod/sumdb/tlog").is_dir()

pytestmark = pytest.mark.skipif(
    not HAVE_GO and not os.environ.get("CI"),
    reason="needs Debian's golang-go and golang-golang-x-mod-dev (make install adds them as root)",
)


def kansa(*args: str) -> str:
    exe = Path(sys.executable).parent / "kansa"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, check=True).stdout


def go_check(tmp_path: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    paths = []
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text)
        paths.append(str(path))
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOCACHE": str(tmp_path / "gocache"),
        "GOFLAGS": "",
    }
    return subprocess.run(["go", "run", str(GO_SOURCE), *paths], capture_output=True, text=True, env=env)


@pytest.fixture
def artefacts(tmp_path: Path) -> dict[str, str]:
    db = tmp_path / "ledger.db"
    kansa("ledger", "init", str(db), "--origin", "kansa.test/go-interop", "--contract", "x")
    with Ledger.open(db, key_path=f"{db}.key") as led:
        op = Signer.generate("op07")
        from conftest import register, signed

        led.append(
            [register(op)] + [signed(event(), op) if i % 2 else Submission(event()) for i in range(300)],
            now=NOW,
        )
    checkpoint = kansa("ledger", "checkpoint", str(db))
    size = int(checkpoint.split("\n")[1])
    proofs = [
        kansa("ledger", "prove", str(db), str(i), "--size", str(n))
        for i, n in ((0, size), (1, size), (150, size), (size - 1, size), (3, 7), (64, 65))
    ]
    proofs += [
        kansa("ledger", "consistency", str(db), str(m), str(n))
        for m, n in ((1, size), (7, size), (64, 128), (100, size - 1), (size, size))
    ]
    return {
        "vkey": kansa("ledger", "vkey", str(db)),
        "checkpoint": checkpoint,
        "export.jsonl": kansa("ledger", "export", str(db)),
        "proofs.jsonl": "".join(proofs),
    }


def test_go_verifies_signature_tree_and_proofs(tmp_path: Path, artefacts: dict[str, str]) -> None:
    result = go_check(tmp_path, artefacts)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: signature by kansa.test/go-interop, tree of 301 leaves, 11 proofs")


def test_go_rejects_a_tampered_proof_leaf_or_note(tmp_path: Path, artefacts: dict[str, str]) -> None:
    proofs = [json.loads(line) for line in artefacts["proofs.jsonl"].splitlines()]
    proofs[2]["hashes"][0] = proofs[3]["hashes"][0]
    bad_proof = {**artefacts, "proofs.jsonl": "".join(json.dumps(p) + "\n" for p in proofs)}
    assert go_check(tmp_path, bad_proof).returncode == 1
    lines = artefacts["export.jsonl"].splitlines()
    entry = json.loads(lines[5])
    entry["leaf"] = json.loads(lines[6])["leaf"]
    bad_leaf = {**artefacts, "export.jsonl": "\n".join([*lines[:5], json.dumps(entry), *lines[6:]]) + "\n"}
    result = go_check(tmp_path, bad_leaf)
    assert result.returncode == 1 and "tree hash" in result.stdout
    bad_note = {**artefacts, "checkpoint": artefacts["checkpoint"].replace("\n301\n", "\n300\n")}
    result = go_check(tmp_path, bad_note)
    assert result.returncode == 1 and "signature" in result.stdout
