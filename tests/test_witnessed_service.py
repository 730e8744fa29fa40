"""`kansa ledger serve` with a witness: its checkpoints get cosigned in the background, it serves
C2SP tlog-tiles (the same bytes `kansa ledger tiles` writes), and it says loudly when the witness
refuses a checkpoint because the ledger was restored from an old copy."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from conftest import NOW, event
from processes import EXE, Served

from ledger import Ledger, Submission
from ledger.cosignature import CosignerKey, cosignatures

ORIGIN = "city.example/kansa/served"


def kansa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=60)


def append(db: Path, n: int) -> None:
    with Ledger.open(db, key_path=f"{db}.key") as led:
        led.append([Submission(event()) for _ in range(n)], now=NOW)


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[tuple[Path, Served, CosignerKey]]:
    db = tmp_path / "ledger.db"
    assert kansa("ledger", "init", str(db), "--origin", ORIGIN, "--contract", "x").returncode == 0
    directory = tmp_path / "witness"
    vkey = kansa("witness", "init", str(directory), "--name", "city.example/w").stdout.strip()
    kansa(
        "witness",
        "add-log",
        str(directory),
        "--origin",
        ORIGIN,
        "--vkey",
        kansa("ledger", "vkey", str(db)).stdout,
    )
    served = Served(["witness", "serve", str(directory)], tmp_path / "witness.log").start()
    added = kansa(
        "ledger", "witness", "add", str(db), "--name", "city.example/w", "--url", served.url, "--vkey", vkey
    )
    assert added.returncode == 0, added.stderr
    yield db, served, CosignerKey.parse(vkey)
    served.stop()


def wait_for(url: str, check: Callable[[str], bool], seconds: float = 20) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = httpx.get(url, timeout=5)
        if answer.status_code == 200 and check(answer.text):
            return answer.text
        time.sleep(0.1)
    raise AssertionError(f"{url} never became what was expected")


def test_served_checkpoints_are_cosigned_and_tiles_match_the_static_ones(
    tmp_path: Path, witness: tuple[Path, Served, CosignerKey]
) -> None:
    db, _, key = witness
    append(db, 10)
    backup = tmp_path / "backup.db"  # an old copy, restored below
    with closing(sqlite3.connect(db)) as src, closing(sqlite3.connect(backup)) as dst:
        src.backup(dst)
    args = ["ledger", "serve", str(db), "--checkpoint-seconds", "0.2"]
    log = tmp_path / "serve.log"
    service = Served(args, log, probe="/healthz").start()
    try:
        append(db, 290)  # another writer on the host; the service checkpoints what it finds
        note = wait_for(
            f"{service.url}/checkpoint", lambda t: "\n300\n" in t and bool(cosignatures(t, [key]))
        )
        # The tiles it serves are the bytes the static writer writes, for any web server.
        static = tmp_path / "tiles"
        assert kansa("ledger", "tiles", str(db), str(static)).returncode == 0
        assert (static / "checkpoint").read_text() == note
        for path in (
            "tile/0/000",
            "tile/0/001.p/44",
            "tile/1/000.p/1",
            "tile/entries/000",
            "tile/entries/001.p/44",
        ):
            answer = httpx.get(f"{service.url}/{path}")
            assert answer.status_code == 200 and answer.headers["content-type"] == "application/octet-stream"
            assert answer.content == (static / path).read_bytes(), path
        assert httpx.get(f"{service.url}/tile/0/001.p/45").status_code == 404  # beyond the tree
        assert httpx.get(f"{service.url}/tile/0/1").status_code == 404  # not a tile path
    finally:
        service.stop()

    # The host restores the old copy (10 entries) and carries on: the witness, which cosigned
    # 300, refuses the next checkpoint, and the service says so.
    shutil.copy(backup, db)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    service = Served(args, log, probe="/healthz").start()
    try:
        append(db, 5)
        deadline = time.monotonic() + 20
        while "WITNESS REFUSED" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        service.stop()
    text = log.read_text()
    assert "WITNESS REFUSED the checkpoint of size 15" in text
    assert "has cosigned size 300 but this checkpoint has only 15 entries" in text


def test_a_checkpoint_left_uncosigned_is_sent_again_after_a_restart_and_then_published(
    tmp_path: Path, witness: tuple[Path, Served, CosignerKey]
) -> None:
    db, served_witness, key = witness
    served_witness.stop()
    policy = tmp_path / "city.policy"
    policy.write_text(
        f"log {kansa('ledger', 'vkey', str(db)).stdout.strip()}\nwitness city {key.vkey}\nquorum city\n"
    )
    args = ["ledger", "serve", str(db), "--checkpoint-seconds", "0.2", "--policy", str(policy)]
    log = tmp_path / "serve.log"
    service = Served(args, log, probe="/healthz").start()
    try:
        append(db, 7)
        note = wait_for(f"{service.url}/v1/checkpoint", lambda t: "\n7\n" in t)
        assert not cosignatures(note, [key])
        # Not cosigned, so not published: the tiles' checkpoint is not served under the policy.
        assert httpx.get(f"{service.url}/checkpoint").status_code == 404
    finally:
        service.stop()
    served_witness.start()
    service = Served(args, log, probe="/healthz").start()
    try:
        wait_for(f"{service.url}/checkpoint", lambda t: "\n7\n" in t and bool(cosignatures(t, [key])))
    finally:
        service.stop()
