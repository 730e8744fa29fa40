from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger import Ledger, Signer, Submission
from ledger.canonical import canonicalize
from ledger.note import b64encode
from ledger.store import Signature

NOW = datetime(2026, 9, 24, 1, 0, tzinfo=UTC)
ORIGIN = "test.example/ledger"
VECTORS = Path(__file__).parent / "vectors"


def event(
    kind: str = "access.login",
    *,
    at: str = "2026-09-24T09:00:00+09:00",
    actor: str = "op07",
    event_id: str | None = None,
    **data: Any,
) -> dict[str, Any]:
    defaults: dict[str, dict[str, Any]] = {
        "access.login": {"person": "op07", "terminal": "t1", "success": True},
        "case.stop": {"case": "C1", "by": "city01", "reason": "paid"},
        "call.dialed": {
            "case": "C1",
            "number": "1",
            "call": "K1",
            "caller_id": "0258-00-0001",
            "ended_at": "2026-09-24T09:01:00+09:00",
            "ring_s": 35,
            "result": "no_answer",
        },
    }
    body = {**defaults.get(kind, {}), **data}
    return {"id": event_id or str(uuid.uuid4()), "type": kind, "at": at, "actor": actor, "data": body}


def signed(ev: dict[str, Any], signer: Signer) -> Submission:
    sig = signer.sign(canonicalize(ev))
    return Submission(ev, Signature(signer.verifier.key_ref, b64encode(sig)))


def register(signer: Signer) -> Submission:
    v = signer.verifier
    return Submission(
        event(
            "key.registered", actor="mgr01", key=v.key_ref, public_key=b64encode(v.public_key), holder=v.name
        )
    )


@pytest.fixture
def ledger_signer() -> Signer:
    return Signer.generate(ORIGIN)


@pytest.fixture
def make_ledger(tmp_path: Path, ledger_signer: Signer) -> Callable[..., Ledger]:
    def make(n: int = 0, name: str = "ledger.db") -> Ledger:
        led = Ledger.create(tmp_path / name, origin=ORIGIN, signer=ledger_signer, now=NOW)
        if n:
            led.append([Submission(event()) for _ in range(n)], now=NOW)
        return led

    return make


def tamper(db: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    """What an attacker with the file can do: drop the append-only triggers and write."""
    conn = sqlite3.connect(db, isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute(sql, params)
    conn.close()


def later(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)
