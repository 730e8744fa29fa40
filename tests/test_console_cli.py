"""`kansa console serve CONFIG.toml` and `kansa keys new --passphrase`, as real processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from console_world import build_world
from processes import free_port

from console.keystore import read_sealed

EXE = str(Path(sys.executable).parent / "kansa")


def test_keys_new_with_a_passphrase_writes_only_a_sealed_key(tmp_path: Path) -> None:
    out = tmp_path / "op09.sealed"
    done = subprocess.run(
        [EXE, "keys", "new", "--holder", "op09", "--passphrase", "--out", str(out)],
        input="長いパスフレーズ 9\n長いパスフレーズ 9\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"type": "key.registered"' in done.stdout and '"holder": "op09"' in done.stdout
    assert "PRIVATE+KEY" not in out.read_text()
    assert read_sealed(out, "長いパスフレーズ 9").name == "op09"
    short = subprocess.run(
        [EXE, "keys", "new", "--holder", "op10", "--passphrase", "--out", str(tmp_path / "x.sealed")],
        input="short\nshort\n",
        capture_output=True,
        text=True,
    )
    assert (
        short.returncode == 1 and "at least 8 characters" in short.stderr and "Traceback" not in short.stderr
    )


def test_keys_new_creates_the_keys_folder_as_docs_console_md_writes_it(tmp_path: Path) -> None:
    """`kansa keys new --holder op07 --passphrase --out keys/op07.sealed` in a fresh folder."""
    done = subprocess.run(
        [EXE, "keys", "new", "--holder", "op07", "--passphrase", "--out", "keys/op07.sealed"],
        input="長いパスフレーズ 7\n長いパスフレーズ 7\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert read_sealed(tmp_path / "keys" / "op07.sealed", "長いパスフレーズ 7").name == "op07"
    plain = subprocess.run(
        [EXE, "keys", "new", "--holder", "op08", "--out", "more/keys/op08.key"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert plain.returncode == 0, plain.stderr
    assert (tmp_path / "more" / "keys" / "op08.key").stat().st_mode & 0o777 == 0o600


def test_console_serve_answers_the_sign_in_page(tmp_path: Path) -> None:
    world = build_world(tmp_path / "w")
    port = free_port()
    config = tmp_path / "console.toml"
    config.write_text(
        f"""[console]
ledger_url = "http://127.0.0.1:8730"
ledger_copy = "w/ledger.db"
loop_url = "http://127.0.0.1:8780"
store = "w/store.db"
keys = "w/keys"
outboxes = "w/outboxes"
documents = "w/documents"
device_key = "w/console01.key"
port = {port}
""",
        encoding="utf-8",
    )
    assert world.cases
    proc = subprocess.Popen(
        [EXE, "console", "serve", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/signin", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert page.status_code == 200 and "サインイン" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in page.headers["content-security-policy"]
    finally:
        proc.terminate()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    bad = tmp_path / "bad.toml"
    bad.write_text('[console]\nledger_url = "x"\n', encoding="utf-8")
    refused = subprocess.run([EXE, "console", "serve", str(bad)], capture_output=True, text=True)
    assert refused.returncode == 1 and "lacks" in refused.stderr and "Traceback" not in refused.stderr
    # `device` names the holder of `device_key` (who signs failed sign-ins): a key of someone
    # else is refused in one line rather than signing as them
    other = tmp_path / "other-device.toml"
    other.write_text(config.read_text().replace("port =", 'device = "console02"\nport ='), encoding="utf-8")
    refused = subprocess.run(
        [EXE, "console", "serve", str(other)], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "device_key" in refused.stderr and "console01" in refused.stderr and "console02" in refused.stderr


def test_a_rehearsal_time_needs_its_offset(tmp_path: Path) -> None:
    """`--start-at` of `kansa ledger serve` and `kansa console serve`: a time without its offset
    would be read in the host's zone; it is refused in one line before anything starts."""
    db = tmp_path / "ledger.db"
    db.write_bytes(b"")
    config = tmp_path / "console.toml"
    config.write_text(
        '[console]\nledger_url = "x"\nledger_copy = "l.db"\nloop_url = "y"\nstore = "s.db"\nkeys = "k"\n'
        'outboxes = "o"\ndocuments = "d"\ndevice_key = "c.key"\n',
        encoding="utf-8",
    )
    for args in (["ledger", "serve", str(db)], ["console", "serve", str(config)]):
        done = subprocess.run(
            [EXE, *args, "--start-at", "2026-09-24T10:00"], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2 and "needs its offset" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
