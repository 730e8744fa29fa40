"""ledger.event: one envelope and one id scheme (UUIDv7) for every writer."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import ORIGIN

from datasette_plugins.access_log import AccessLog
from dialer_core.client import OperatorClient, key_registration
from ledger import Ledger, Signer
from ledger.event import envelope, uuid7

MOMENT = datetime(2026, 9, 24, 1, 2, 3, 456000, tzinfo=UTC)


def millis_of(event_id: str) -> int:
    value = uuid.UUID(event_id)
    assert value.version == 7 and value.variant == uuid.RFC_4122, event_id
    return value.int >> 80


def test_uuid7_carries_the_time_and_sorts_by_it() -> None:
    assert millis_of(uuid7(MOMENT)) == int(MOMENT.timestamp() * 1000)
    later = [uuid7(MOMENT + timedelta(milliseconds=i)) for i in range(50)]
    assert later == sorted(later) and len(set(later)) == 50
    # Seeded bits give the same id (the demo); the default draws fresh ones.
    assert uuid7(MOMENT, 12345) == uuid7(MOMENT, 12345) != uuid7(MOMENT, 12346)
    assert uuid7(MOMENT) != uuid7(MOMENT)


def test_the_envelope_has_the_five_fields_in_one_shape() -> None:
    ev = envelope("access.login", "op07", {"person": "op07"}, MOMENT)
    assert list(ev) == ["id", "type", "at", "actor", "data"]
    assert ev["at"] == MOMENT.isoformat() and millis_of(ev["id"]) == int(MOMENT.timestamp() * 1000)
    written = MOMENT + timedelta(hours=1)
    late = envelope("access.login", "op07", {}, "2026-09-24T10:00:00.123+09:00", written=written)
    assert late["at"] == "2026-09-24T10:00:00.123+09:00"
    assert millis_of(late["id"]) == int(written.timestamp() * 1000)
    assert envelope("access.login", "op07", {}, MOMENT, event_id="kept")["id"] == "kept"


def test_the_writers_all_use_it(tmp_path: Path) -> None:
    op = Signer.generate("op07")
    client = OperatorClient("http://127.0.0.1:9", op, tmp_path / "outbox.db", clock=lambda: MOMENT)
    recorded = client.record("access.login", {"person": "op07", "terminal": "t1", "success": True})
    client.close()
    assert millis_of(recorded) == int(MOMENT.timestamp() * 1000)
    assert millis_of(key_registration(op, by="mgr01", now=MOMENT)["id"])

    log = AccessLog(tmp_path / "access.db", f"{ORIGIN}/access-log")
    index = log.record_now("access.logout", "auditor1", {"person": "auditor1", "terminal": "t1"})
    log.close()
    with Ledger.open(tmp_path / "access.db") as led:
        millis_of(json.loads(led.leaf(index))["event"]["id"])
