"""The operators' client: sign first, store first (outbox), deliver later, exactly once.

Each event is signed with the operator's key and committed to a local SQLite
outbox before anything is sent, so a call's outcome survives the service being
down, the network dropping, or this process being killed. Delivery retries
with backoff; the event id makes a retry of something already delivered
harmless (the ledger answers 200 with the existing index).
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ledger import Signer, read_key
from ledger.event import envelope
from ledger.note import b64encode
from ledger.vocabulary import EventError, load_vocabulary
from ledger.wire import FINAL_STATUSES, signed

OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    created TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'rejected')),
    entry INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT
)
"""


@dataclass(frozen=True)
class DeliveryReport:
    delivered: int
    rejected: int
    pending: int


class OperatorClient:
    """One operator's device. Not thread-safe: one per operator process."""

    def __init__(
        self,
        url: str,
        key: Signer | Path | str,
        outbox: Path | str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        http: httpx.Client | None = None,
        timeout: float = 10.0,
        transport: Callable[[str], httpx.Response] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.signer = key if isinstance(key, Signer) else read_key(Path(key))
        self.actor = self.signer.name
        self._clock = clock
        self._vocabulary = load_vocabulary()
        self._http = http or httpx.Client(timeout=timeout)
        self._transport = transport or self._post
        self.outbox = Path(outbox)
        # One thread at a time, not necessarily the one that built the client.
        self._db = sqlite3.connect(str(outbox), isolation_level=None, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(OUTBOX_SCHEMA)

    def close(self) -> None:
        self._db.close()
        self._http.close()

    def __enter__(self) -> OperatorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(
        self, kind: str, data: dict[str, Any], *, at: datetime | None = None, event_id: str | None = None
    ) -> str:
        """Builds, checks, signs and stores an event; returns its id. Delivery is separate."""
        now = self._clock()
        event = envelope(kind, self.actor, data, at or now, event_id=event_id, written=now)
        self._vocabulary.validate(event)  # refuse locally what the ledger would refuse
        body = signed(event, self.signer)
        self._db.execute(
            "INSERT INTO outbox (id, body, created) VALUES (?, ?, ?)",
            (event["id"], json.dumps(body, ensure_ascii=False), now.isoformat()),
        )
        return str(event["id"])

    def _post(self, body: str) -> httpx.Response:
        return self._http.post(
            f"{self.url}/v1/events",
            content=body.encode("utf-8"),
            headers={"content-type": "application/json"},
        )

    def pending(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0])

    def entry_of(self, event_id: str) -> int | None:
        row = self._db.execute("SELECT entry FROM outbox WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else row[0]

    def rejected(self) -> list[tuple[str, str]]:
        return list(self._db.execute("SELECT id, error FROM outbox WHERE state = 'rejected' ORDER BY seq"))

    def deliver(
        self, *, deadline: float | None = None, base_delay: float = 0.05, max_delay: float = 5.0
    ) -> DeliveryReport:
        """Sends every pending event in order, retrying until delivered or `deadline` (monotonic)."""
        delivered = rejected = 0
        delay = base_delay
        while True:
            row = self._db.execute(
                "SELECT seq, id, body FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                break
            seq, event_id, body = row
            self._db.execute("UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?", (seq,))
            try:
                response = self._transport(body)
            except httpx.TransportError as exc:
                error = f"{type(exc).__name__}: {exc}"
                response = None
            if response is not None and response.status_code in (200, 201):
                self._db.execute(
                    "UPDATE outbox SET state = 'delivered', entry = ?, error = NULL WHERE seq = ?",
                    (response.json()["index"], seq),
                )
                delivered += 1
                delay = base_delay
                continue
            if response is not None and response.status_code in FINAL_STATUSES:
                self._db.execute(
                    "UPDATE outbox SET state = 'rejected', error = ? WHERE seq = ?",
                    (f"{response.status_code} {response.text}", seq),
                )
                rejected += 1
                continue
            if response is not None:
                error = f"{response.status_code} {response.text[:200]}"
            self._db.execute("UPDATE outbox SET error = ? WHERE seq = ?", (error, seq))
            if deadline is not None and time.monotonic() + delay > deadline:
                break
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, max_delay)
        return DeliveryReport(delivered, rejected, self.pending())


def new_key(holder: str, path: Path | str) -> Signer:
    """Creates an operator's key file (mode 0600)."""
    from ledger import write_key

    signer = Signer.generate(holder)
    write_key(Path(path), signer)
    return signer


def key_registration(signer: Signer, *, by: str, now: datetime) -> dict[str, Any]:
    """The `key.registered` event for the manager to append with `kansa ledger append`."""
    verifier = signer.verifier
    data = {"key": verifier.key_ref, "public_key": b64encode(verifier.public_key), "holder": verifier.name}
    return envelope("key.registered", by, data, now)


def local_transport(ledger: Any, clock: Callable[[], datetime]) -> Callable[[str], httpx.Response]:
    """Delivery straight into a Ledger on this host, answering as the service would (for the demo)."""
    from ledger import AppendError
    from ledger.wire import appended_body, appended_status, error_body, parse_signed, status_of

    def send(body: str) -> httpx.Response:
        item = parse_signed(json.loads(body))
        try:
            (appended,) = ledger.append([item], now=clock())
        except AppendError as exc:
            return httpx.Response(status_of(exc), json=error_body(exc))
        return httpx.Response(appended_status(appended), json=appended_body(appended))

    return send


__all__ = [
    "DeliveryReport",
    "EventError",
    "OperatorClient",
    "key_registration",
    "local_transport",
    "new_key",
]
