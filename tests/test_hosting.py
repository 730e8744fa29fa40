"""`kansa ledger serve DIR`: every ledger in a directory behind one server, routed by origin."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
from conftest import NOW, event, register
from processes import EXE, Served

from ledger import Ledger, Signer, canonicalize
from ledger.note import b64encode
from ledger.tiles import parse_entry_bundle

ORIGINS = ["city.example/kansa/tax-2023", "city.example/kansa/nhi-2026", "city.example/kansa/nhi-2026/call"]


def test_each_ledger_under_its_origin(tmp_path: Path) -> None:
    operator = Signer.generate("op07")
    for n, origin in enumerate(ORIGINS):
        db = tmp_path / f"contract-{n}.db"
        subprocess.run([EXE, "ledger", "init", str(db), "--origin", origin, "--contract", "x"], check=True)
        with Ledger.open(db, key_path=f"{db}.key") as led:
            led.append([register(operator)], now=NOW)
    served = Served(["ledger", "serve", str(tmp_path), "--checkpoint-seconds", "0.1"], tmp_path / "serve.log")
    served.start()
    try:
        assert httpx.get(served.url + "/").json() == {
            "ledgers": [{"origin": o, "path": f"/{o}/"} for o in sorted(ORIGINS)]
        }
        for n, origin in enumerate(ORIGINS):
            for _ in range(n + 1):
                ev = event()
                sig = b64encode(operator.sign(canonicalize(ev)))
                body = {"event": ev, "sig": {"key": operator.verifier.key_ref, "ed25519": sig}}
                assert httpx.post(f"{served.url}/{origin}/v1/events", json=body).status_code == 201
        for n, origin in enumerate(ORIGINS):
            # The second origin is a path prefix of the third: each still gets its own ledger.
            assert httpx.get(f"{served.url}/{origin}/healthz").json()["origin"] == origin
            bundle = httpx.get(f"{served.url}/{origin}/tile/entries/000.p/{n + 2}")
            assert bundle.status_code == 200 and len(parse_entry_bundle(bundle.content)) == n + 2
        assert httpx.get(f"{served.url}/city.example/kansa/other/healthz").status_code == 404
    finally:
        served.stop()
    for n, origin in enumerate(ORIGINS):
        with Ledger.open(tmp_path / f"contract-{n}.db") as led:
            assert (led.origin, led.size) == (origin, n + 2)


def test_a_directory_without_keys_or_ledgers_is_refused(tmp_path: Path) -> None:
    empty = subprocess.run([EXE, "ledger", "serve", str(tmp_path)], capture_output=True, text=True)
    assert empty.returncode == 1 and "no ledger (*.db)" in empty.stderr
    subprocess.run(
        [EXE, "ledger", "init", str(tmp_path / "a.db"), "--origin", "o.example/a", "--contract", "x"]
    )
    (tmp_path / "a.db.key").unlink()
    keyless = subprocess.run([EXE, "ledger", "serve", str(tmp_path)], capture_output=True, text=True)
    assert keyless.returncode == 1 and "no key file" in keyless.stderr and "Traceback" not in keyless.stderr
