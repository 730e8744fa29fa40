"""The loop follows the ledger through the real service (kansa ledger serve, over HTTP)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from conftest import event, register
from test_service import EXE, Server, body, free_port

from dialer_core.follow import Knowledge, LedgerFollower
from ledger import Ledger, Signer


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, Signer]]:
    db = tmp_path / "ledger.db"
    subprocess.run(
        [EXE, "ledger", "init", str(db), "--origin", "t.example/f", "--contract", "x"],
        check=True,
        capture_output=True,
    )
    op = Signer.generate("op07")
    with Ledger.open(db, key_path=f"{db}.key") as led:
        led.append([register(op)], now=datetime.now(UTC))
        led.append([register(Signer.generate("op08"))], now=datetime.now(UTC))
    server = Server(db, free_port())
    server.start()
    yield server, op
    server.stop()


def test_follows_new_entries_and_learns_from_them(served: tuple[Server, Signer]) -> None:
    server, op = served
    follower = LedgerFollower(server.url, page=2)
    first = follower.poll()
    assert [e["index"] for e in first] == [0, 1] and follower.poll() == []
    now = datetime.now(UTC).isoformat()
    posted = [
        event("call.dialed", at=now, actor="system", call="K1", case="C1", number="1", result="answered"),
        event(
            "call.outcome",
            at=now,
            case="C1",
            call="K1",
            party="household",
            proxy_consent=False,
            script="not_started",
            disposition="absent_now",
            promise=None,
            callback_at="2026-09-25T18:00:00+09:00",
            mobile_asked=False,
            requests=[],
        ),
        event("case.stop", at=now, actor="op07", case="C2", by="city01", reason="paid"),
        event(
            "call.outcome",
            at=now,
            case="C3",
            call="K9",
            party="self",
            proxy_consent=False,
            script="completed",
            disposition="completed",
            promise=None,
            callback_at=None,
            mobile_asked=False,
            requests=[],
        ),
        # a resident's callback that completed C4 (T §10(4)キ, N §8(4)キ), and one that did not
        event(
            "callback.received", at=now, actor="system", case="C4", queued_s=3, handled="operator", call="B1"
        ),
        event(
            "callback.outcome",
            at=now,
            case="C4",
            call="B1",
            party="self",
            proxy_consent=False,
            script="completed",
            disposition="completed",
            promise=None,
            mobile_asked=False,
            requests=[],
        ),
        event(
            "callback.outcome",
            at=now,
            case="C5",
            call="B2",
            party="household",
            proxy_consent=False,
            script="incomplete",
            disposition="absent_now",
            promise=None,
            mobile_asked=False,
            requests=[],
        ),
    ]
    for ev in posted:
        response = httpx.post(f"{server.url}/v1/events", json=body(op, ev))
        assert response.status_code in (200, 201), response.text
    events = follower.poll()
    assert [e["id"] for e in events] == [e["id"] for e in posted]  # in order, each once, across pages
    knowledge = Knowledge()
    knowledge.apply_all(events)
    assert knowledge.callbacks == {"C1": datetime.fromisoformat("2026-09-25T18:00:00+09:00")}
    assert set(knowledge.stopped) == {"C2"} and knowledge.completed == {"C3", "C4"}
    assert follower.poll() == []
    follower.close()
