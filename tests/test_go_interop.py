"""Go's golang.org/x/mod/sumdb/note and sumdb/tlog read our artefacts as they are.

tests/go/check_witnessed.go reads a cosigned checkpoint and the C2SP tiles (see its header).

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
WITNESSED_SOURCE = Path(__file__).parent / "go" / "check_witnessed.go"
GOPATH = Path("/usr/share/gocode")
HAVE_GO = shutil.which("go") is not None and (GOPATH / "src/golang.org/x/mod/sumdb/tlog").is_dir()

pytestmark = pytest.mark.skipif(
    not HAVE_GO and not os.environ.get("CI"),
    reason="needs Debian's golang-go and golang-golang-x-mod-dev (make install adds them as root)",
)


def kansa(*args: str) -> str:
    exe = Path(sys.executable).parent / "kansa"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, check=True).stdout


def go_run(tmp_path: Path, source: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOPATH), "GOCACHE": str(tmp_path / "gocache")}
    return subprocess.run(
        ["go", "run", str(source), *args], capture_output=True, text=True, env={**env, "GOFLAGS": ""}
    )


def go_check(tmp_path: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    paths = []
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text)
        paths.append(str(path))
    return go_run(tmp_path, GO_SOURCE, *paths)


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


def test_go_reads_cosigned_checkpoint_and_tiles(tmp_path: Path) -> None:
    """sumdb/note ignores the cosignature lines, crypto/ed25519 checks them from the spec, and
    sumdb/tlog reads our C2SP tiles (after the path mapping) to prove an entry's inclusion."""
    from ledger.witness import Witness

    db = tmp_path / "ledger.db"
    kansa("ledger", "init", str(db), "--origin", "kansa.test/go-tiles", "--contract", "x")
    witnesses = []
    for name in ("a", "b"):
        witness = Witness.init(tmp_path / name, f"{name}.city.example/w")
        witness.add_log("kansa.test/go-tiles", kansa("ledger", "vkey", str(db)).strip(), now=NOW)
        witnesses.append(witness)
    with Ledger.open(db, key_path=f"{db}.key") as led:
        led.append([Submission(event()) for _ in range(700)], now=NOW)
        stored = led.sign_checkpoint(now=NOW)
        note = stored.note
        for witness in witnesses:
            answer = witness.add_checkpoint(f"old 0\n\n{note}".encode(), now=NOW)
            assert answer.status == 200
            note = note + answer.body  # the answer is signature lines: append them to the note
        led.add_cosigned_checkpoint(note, now=NOW)
    tiles = tmp_path / "tiles"
    kansa("ledger", "tiles", str(db), str(tiles))
    (tmp_path / "log.vkey").write_text(kansa("ledger", "vkey", str(db)))
    (tmp_path / "witnesses").write_text("".join(w.vkey + "\n" for w in witnesses))
    args = [str(tmp_path / "log.vkey"), str(tmp_path / "witnesses"), str(tiles)]
    result = go_run(tmp_path, WITNESSED_SOURCE, *args, "300")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(
        "ok: signature by kansa.test/go-tiles, cosigned by a.city.example/w, b.city.example/w,"
        " tiles of 700 leaves, entry 300 included"
    )
    # A tile changed on the mirror is caught by tlog's tile reader; a forged cosignature by Go's ed25519.
    tile = tiles / "tile/0/001"
    data = bytearray(tile.read_bytes())
    data[100] ^= 1
    tile.write_bytes(bytes(data))
    assert go_run(tmp_path, WITNESSED_SOURCE, *args, "300").returncode == 1
    tile.write_bytes(bytes(data[:100]) + bytes([data[100] ^ 1]) + bytes(data[101:]))
    checkpoint = (tiles / "checkpoint").read_text()
    sig = checkpoint.split("\n— b.city.example/w ")[1].split("\n")[0]
    (tiles / "checkpoint").write_text(
        checkpoint.replace(sig, sig[:40] + ("A" if sig[40] != "A" else "B") + sig[41:])
    )
    result = go_run(tmp_path, WITNESSED_SOURCE, *args, "300")
    assert result.returncode == 1 and "cosignature by b.city.example/w does not verify" in result.stdout
