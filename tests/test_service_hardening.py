"""The append service and its clients under faults and hostile input (issue 11 items 1-4, 6),
with real `kansa` processes over real HTTP on loopback."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from conftest import register
from test_service import EXE, Server, body, free_port, now_event

from dialer_core.client import OperatorClient
from ledger import Ledger, Signer, verify_ledger, write_key


@pytest.fixture
def operator(tmp_path: Path) -> Signer:
    return Signer.generate("op01")


@pytest.fixture
def server(tmp_path: Path, operator: Signer) -> Iterator[Server]:
    db = tmp_path / "ledger.db"
    subprocess.run(
        [EXE, "ledger", "init", str(db), "--origin", "t.example/svc", "--contract", "x"],
        check=True,
        capture_output=True,
    )
    with Ledger.open(db, key_path=f"{db}.key") as led:
        led.append([register(operator)], now=datetime.now(UTC))
    srv = Server(db, free_port())
    srv.start()
    yield srv
    srv.stop()


def ledger_ids(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM entries")}
    finally:
        conn.close()


# -- item 6: a damaged outbox -----------------------------------------------------------------------


def test_a_truncated_outbox_delivers_what_it_still_holds(
    server: Server, operator: Signer, tmp_path: Path
) -> None:
    key = tmp_path / "op01.key"
    write_key(key, operator)
    outbox = tmp_path / "outbox.db"
    ids = []
    with OperatorClient("http://127.0.0.1:9", operator, outbox) as offline:  # nothing listens there
        for i in range(100):
            data = {"person": "op01", "terminal": f"t{i}-" + "x" * 400, "success": True}
            ids.append(offline.record("access.login", data))
    size = outbox.stat().st_size
    assert not Path(f"{outbox}-wal").exists() and size > 40_000
    with open(outbox, "r+b") as f:  # the device lost the end of the file
        f.truncate(size * 6 // 10)

    deliver = subprocess.run(
        [
            EXE,
            "client",
            "deliver",
            "--key",
            str(key),
            "--url",
            server.url,
            "--outbox",
            str(outbox),
            "--wait",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in deliver.stderr, deliver.stderr
    assert "the outbox was damaged" in deliver.stderr and "could not be read" in deliver.stderr
    assert deliver.returncode == 1  # rows were lost: a script must notice
    report = json.loads(deliver.stdout)
    in_ledger = ledger_ids(server.db) & set(ids)
    assert report["delivered"] == len(in_ledger) >= 40 and report["pending"] == 0
    # What was delivered is exactly a prefix of what was recorded: nothing invented, nothing doubled.
    assert in_ledger == set(ids[: len(in_ledger)])
    assert list(tmp_path.glob("outbox.db.damaged-*"))

    status = subprocess.run(
        [EXE, "client", "status", "--key", str(key), "--url", server.url, "--outbox", str(outbox)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr
    counts = json.loads(status.stdout)
    assert (counts["pending"], counts["delivered"], counts["rejected"]) == (0, len(in_ledger), 0)

    # A row marked delivered that the ledger does not hold is flagged.
    conn = sqlite3.connect(outbox)
    conn.execute(
        "INSERT INTO outbox (id, body, created, state, entry) VALUES ('lost-1', '{}', 'x', 'delivered', 7)"
    )
    conn.commit()
    conn.close()
    flagged = subprocess.run(
        [EXE, "client", "status", "--key", str(key), "--url", server.url, "--outbox", str(outbox)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert flagged.returncode == 1 and "lost-1 is delivered here but not in the ledger" in flagged.stderr


# -- item 4: the file stands alone ------------------------------------------------------------------


def post(server: Server, op: Signer, **data: object) -> httpx.Response:
    ev = now_event(actor=op.name, **data)
    return httpx.post(f"{server.url}/v1/events", json=body(op, ev), timeout=30)


def test_after_a_clean_stop_the_database_file_alone_holds_everything(
    server: Server, operator: Signer, tmp_path: Path
) -> None:
    acknowledged = {post(server, operator).json()["index"] for _ in range(50)}
    assert Path(f"{server.db}-wal").exists()  # while it runs, the WAL is part of the ledger
    backup = tmp_path / "backup" / "ledger.db"
    backup.parent.mkdir()
    made = subprocess.run(
        [EXE, "ledger", "backup", str(server.db), str(backup)], capture_output=True, text=True
    )
    assert made.returncode == 0 and "OK: 51 entries" in made.stdout, made.stdout + made.stderr
    assert not Path(f"{backup}-wal").exists()
    server.stop()  # SIGTERM: a clean stop
    alone = tmp_path / "alone" / "ledger.db"
    alone.parent.mkdir()
    shutil.copy(server.db, alone)  # the file only, as a careless backup would take it
    report = verify_ledger(alone)
    assert report.ok and report.size == 51
    with Ledger.open(alone, readonly=True) as copy:
        assert acknowledged <= {i for i, _, _ in copy.leaves()}
    again = subprocess.run(
        [EXE, "ledger", "backup", str(server.db), str(backup)], capture_output=True, text=True
    )
    assert again.returncode == 2 and "already exists" in again.stderr


def test_the_demo_ledger_opens_without_its_wal(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    subprocess.run(
        [EXE, "demo", "--out", str(out), "--months", "2026-09", "--scale", "0.02"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    assert (
        not Path(f"{out / 'ledger.db'}-wal").exists() or Path(f"{out / 'ledger.db'}-wal").stat().st_size == 0
    )
    alone = tmp_path / "alone.db"
    shutil.copy(out / "ledger.db", alone)
    assert verify_ledger(alone).ok
