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
from ledger.canonical import canonicalize
from ledger.event import envelope
from ledger.leaf import leaf_length_bound
from ledger.note import b64encode
from ledger.store import MAX_LEAF_BYTES
from ledger.vocabulary import EventError, load_vocabulary
from ledger.wire import FINAL_STATUSES, MAX_BODY_BYTES, signed

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


@dataclass(frozen=True)
class OutboxStatus:
    pending: int
    delivered: int
    rejected: int
    disagree: list[dict[str, Any]]


@dataclass(frozen=True)
class Salvage:
    """What was saved of a damaged outbox: it was moved aside to `damaged` and every row that
    could still be read was copied into a fresh outbox. Each row is a signed event, so nothing
    read back from a damaged file can be forged on its way to the ledger."""

    damaged: Path
    problem: str
    recovered: int
    unreadable: list[int]  # seqs between readable rows that could not be read
    after: int | None  # rows after this seq could not be read either (how many is unknown)

    def describe(self) -> str:
        lost = f"rows {_ranges(self.unreadable)} could not be read" if self.unreadable else ""
        if self.after is not None:
            lost += ("; " if lost else "") + f"any rows after row {self.after} could not be read"
        return (
            f"the outbox was damaged ({self.problem}); moved aside to {self.damaged}; {self.recovered}"
            f" row(s) recovered into a fresh outbox" + (f"; {lost}" if lost else "")
        )


def _ranges(seqs: list[int]) -> str:
    out: list[str] = []
    for seq in seqs:
        if out and out[-1].split("-")[-1] == str(seq - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{seq}"
        else:
            out.append(str(seq))
    return ", ".join(out)


_ROW = "SELECT seq, id, body, created, state, entry, attempts, error FROM outbox"
# After the last readable row, this many unreadable or absent seqs in a row end the search.
_SALVAGE_LOOKAHEAD = 2000


def _outbox_problem(path: Path) -> str | None:
    """None when the outbox file is sound (or absent), else what SQLite says is wrong."""
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows[:3])


def pending_events(path: Path) -> list[dict[str, Any]]:
    """The envelopes an outbox file still holds for delivery, in order, read without opening
    it for writing (a console at start, showing what earlier runs recorded); none when the
    file is absent or unreadable (salvage_outbox is for that)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    try:
        rows = conn.execute("SELECT body FROM outbox WHERE state = 'pending' ORDER BY seq").fetchall()
    except sqlite3.Error:
        rows = []
    finally:
        conn.close()
    return [json.loads(body)["event"] for (body,) in rows]


def _read_rows(path: Path) -> tuple[dict[int, tuple[Any, ...]], list[int]]:
    """Every row of the outbox at `path` that can be read, and the seqs whose lookup failed.

    Rows are looked up one by one: a lookup only needs the pages on its own path, so what
    a truncated or scribbled file still holds is found around what it lost."""
    rows: dict[int, tuple[Any, ...]] = {}
    failed: list[int] = []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.DatabaseError:
        return rows, failed
    try:
        seq, misses = 1, 0
        while misses < _SALVAGE_LOOKAHEAD:
            try:
                row = conn.execute(f"{_ROW} WHERE seq = ?", (seq,)).fetchone()
            except sqlite3.DatabaseError:
                failed.append(seq)
                row = None
            if row is not None:
                rows[seq] = row
                misses = 0
            else:
                misses += 1
            seq += 1
    finally:
        conn.close()
    return rows, failed


def _size_patched_copy(path: Path, copy: Path) -> None:
    """A copy whose header states the number of pages the file really has: SQLite refuses to
    read anything of a file shorter than its header says (a truncated file), not just the end."""
    data = bytearray(path.read_bytes())
    if len(data) < 100 or not data.startswith(b"SQLite format 3\x00"):
        copy.write_bytes(bytes(data))
        return
    page = int.from_bytes(data[16:18], "big")
    page = 65536 if page == 1 else page
    pages = len(data) // page
    data = data[: pages * page]
    data[28:32] = pages.to_bytes(4, "big")
    copy.write_bytes(bytes(data))


def salvage_outbox(path: Path, problem: str, *, now: datetime) -> Salvage:
    """Moves a damaged outbox aside and copies every readable row into a fresh one at `path`."""
    rows, failed = _read_rows(path)
    patched = path.with_name(f"{path.name}.salvage")
    try:
        _size_patched_copy(path, patched)
        more, failed_too = _read_rows(patched)
    finally:
        patched.unlink(missing_ok=True)
    rows = {**more, **rows}
    last = max(rows, default=0)
    lost = sorted(s for s in set(failed) | set(failed_too) if s not in rows)
    unreadable = [s for s in lost if s < last]
    after = last if any(s > last for s in lost) else None
    damaged = path.with_name(f"{path.name}.damaged-{now.strftime('%Y%m%dT%H%M%S')}")
    path.rename(damaged)
    for suffix in ("-wal", "-shm"):
        side = Path(f"{path}{suffix}")
        if side.exists():
            side.rename(Path(f"{damaged}{suffix}"))
    fresh = sqlite3.connect(str(path), isolation_level=None)
    try:
        fresh.execute(OUTBOX_SCHEMA)
        fresh.execute("BEGIN")
        fresh.executemany(
            "INSERT INTO outbox (seq, id, body, created, state, entry, attempts, error)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows.values(),
        )
        fresh.execute("COMMIT")
    finally:
        fresh.close()
    return Salvage(damaged, problem, len(rows), unreadable, after)


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
    ) -> None:
        self.url = url.rstrip("/")
        self.signer = key if isinstance(key, Signer) else read_key(Path(key))
        self.actor = self.signer.name
        self._clock = clock
        self._vocabulary = load_vocabulary()
        self._http = http or httpx.Client(timeout=timeout)
        self.outbox = Path(outbox)
        problem = _outbox_problem(self.outbox)
        self.salvage = salvage_outbox(self.outbox, problem, now=clock()) if problem else None
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
        text = json.dumps(body, ensure_ascii=False)
        leaf = leaf_length_bound(canonicalize(event), self.signer.verifier.key_ref)
        if leaf > MAX_LEAF_BYTES or len(text.encode("utf-8")) > MAX_BODY_BYTES:
            # It could never be delivered: refuse it now rather than let it sit in the outbox.
            raise EventError(
                "event",
                f"too large to deliver: its entry would be up to {leaf:,} bytes, at most {MAX_LEAF_BYTES:,}",
            )
        self._db.execute(
            "INSERT INTO outbox (id, body, created) VALUES (?, ?, ?)",
            (event["id"], text, now.isoformat()),
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

    def status(self) -> OutboxStatus:
        """Counts by state, and the rows whose state disagrees with the ledger (asked by id):
        delivered but not in the ledger, or at another index; pending but already in it."""
        counts = dict(self._db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
        disagree: list[dict[str, Any]] = []
        for event_id, state, entry in self._db.execute(
            "SELECT id, state, entry FROM outbox WHERE state IN ('delivered', 'pending') ORDER BY seq"
        ).fetchall():
            response = self._http.get(f"{self.url}/v1/events/{event_id}")
            if response.status_code == 404:
                held = None
            elif response.status_code == 200:
                held = int(response.json()["index"])
            else:
                response.raise_for_status()
                continue
            if state == "delivered" and held != entry:
                what = "not in the ledger" if held is None else f"the ledger holds it at {held}"
                disagree.append({"id": event_id, "state": state, "entry": entry, "problem": what})
            elif state == "pending" and held is not None:
                disagree.append(
                    {"id": event_id, "state": state, "entry": held, "problem": "already in the ledger"}
                )
        return OutboxStatus(
            counts.get("pending", 0), counts.get("delivered", 0), counts.get("rejected", 0), disagree
        )

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
                response = self._post(body)
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


__all__ = [
    "DeliveryReport",
    "OutboxStatus",
    "Salvage",
    "EventError",
    "OperatorClient",
    "key_registration",
    "new_key",
]
