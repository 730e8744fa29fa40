"""The log's side of tlog-witness: send each checkpoint to every configured witness and keep the cosignatures.

A witness is asked with a consistency proof from the size it last cosigned for
this log (kept in the ledger file's `witness_state` table, corrected by the
witness's 409 answer when it is stale). The cosignature lines it returns are
verified with its key and added to the checkpoint's note, stored as a new row
of the append-only `checkpoints` table (the newest row for a size wins).

`witnesses` and `witness_state` are configuration and bookkeeping: `verify`
does not hash them, and losing them costs one 409 round trip per witness.

Outcomes: `cosigned`; `refused` when the witness answered that the checkpoint
is not consistent with what it cosigned before (422, 400, or a 409 naming a
size the ledger cannot prove from: the ledger lost or rewrote entries);
`unreachable` when it could not be asked (network, timeout, 5xx) or does not
know this log or key (404, 403): retried with backoff until the deadline.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from .checkpoint import Checkpoint, parse_body
from .cosignature import (
    CosignerKey,
    SignatureLine,
    add_signatures,
    cosignatures,
    parse_signature_line,
    split_note,
)
from .merkle import ProofError
from .note import NoteError, b64encode, valid_key_name
from .reader import LedgerReader
from .store import Ledger, LedgerError, StoredCheckpoint, connect, format_time

SCHEMA = """
CREATE TABLE IF NOT EXISTS witnesses (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    vkey TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS witness_state (
    name TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    cosigned_at TEXT NOT NULL
);
"""

log = logging.getLogger(__name__)

COSIGNED, REFUSED, UNREACHABLE = "cosigned", "refused", "unreachable"
_BACKOFF = (0.25, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class WitnessConfig:
    name: str
    url: str
    key: CosignerKey


@dataclass(frozen=True)
class WitnessResult:
    witness: str
    status: str  # cosigned, refused or unreachable
    detail: str = ""
    line: SignatureLine | None = None
    size: int | None = None  # the size the witness says it cosigned last (from a 409)


@dataclass
class CosignOutcome:
    checkpoint: StoredCheckpoint
    results: list[WitnessResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 every witness cosigned, 1 one refused it as inconsistent, 2 one could not be asked."""
        statuses = {r.status for r in self.results}
        return 1 if REFUSED in statuses else 2 if UNREACHABLE in statuses else 0


def _tables(path: str) -> None:
    conn = connect(path)
    try:
        conn.executescript(SCHEMA)
    finally:
        conn.close()


def add_witness(ledger: Ledger, *, name: str, url: str, vkey: str, now: datetime) -> WitnessConfig:
    """Asks the witness at `url` (its submission prefix) to cosign this ledger's checkpoints."""
    key = CosignerKey.parse(vkey)
    if key.name != name or not valid_key_name(name):
        raise LedgerError(f"the witness key is named {key.name!r}, not {name!r}")
    if not url.startswith(("http://", "https://")):
        raise LedgerError(f"a witness URL starts with http:// or https://, not {url!r}")
    _tables(str(ledger.path))
    conn = connect(ledger.path)
    try:
        conn.execute(
            "INSERT INTO witnesses (name, url, vkey, added_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET url = excluded.url, vkey = excluded.vkey",
            (name, url.rstrip("/"), key.vkey, format_time(now)),
        )
    finally:
        conn.close()
    return WitnessConfig(name, url.rstrip("/"), key)


def configured_witnesses(ledger: LedgerReader) -> list[WitnessConfig]:
    conn = connect(ledger.path, readonly=True)
    try:
        rows = conn.execute("SELECT name, url, vkey FROM witnesses ORDER BY name").fetchall()
    except sqlite3.OperationalError:  # no such table: no witness was ever added
        return []
    finally:
        conn.close()
    return [WitnessConfig(name, url, CosignerKey.parse(vkey)) for name, url, vkey in rows]


def lacks_cosignatures(ledger: LedgerReader, stored: StoredCheckpoint) -> bool:
    """Whether some configured witness has not (validly) cosigned this stored checkpoint."""
    witnesses = configured_witnesses(ledger)
    try:
        found = cosignatures(stored.note, [w.key for w in witnesses])
    except NoteError:
        return True
    return len(found) < len(witnesses)


def last_cosigned(ledger: LedgerReader) -> dict[str, int]:
    """Witness name -> the size it last cosigned for this ledger, as far as the ledger knows."""
    conn = connect(ledger.path, readonly=True)
    try:
        return dict(conn.execute("SELECT name, size FROM witness_state").fetchall())
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()


def _remember(ledger: Ledger, name: str, checkpoint: Checkpoint, now: datetime) -> None:
    conn = connect(ledger.path)
    try:
        conn.execute(
            "INSERT INTO witness_state (name, size, root, cosigned_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET size = excluded.size, root = excluded.root,"
            " cosigned_at = excluded.cosigned_at",
            (name, checkpoint.size, checkpoint.root, format_time(now)),
        )
    finally:
        conn.close()


def request_body(old: int, proof: list[bytes], note: str) -> bytes:
    return (f"old {old}\n" + "".join(b64encode(h) + "\n" for h in proof) + "\n" + note).encode("utf-8")


def request_cosignature(
    witness: WitnessConfig,
    note: str,
    old: int,
    prove: Callable[[int], list[bytes]],
    *,
    deadline: float,
    client: httpx.Client,
) -> WitnessResult:
    """One witness, until it cosigns, refuses, or the deadline (time.monotonic) passes."""
    text, _ = split_note(note)
    checkpoint = parse_body(text)
    attempt, conflicts = 0, 0
    last_problem = "no answer"
    while True:
        try:
            proof = prove(old)
        except ProofError as exc:
            return WitnessResult(
                witness.name,
                REFUSED,
                f"{witness.name} cosigned size {old}, which this ledger cannot prove it extends: {exc}",
                size=old,
            )
        remaining = deadline - time.monotonic()
        try:
            answer = client.post(
                f"{witness.url}/add-checkpoint",
                content=request_body(old, proof, note),
                timeout=max(0.5, min(10.0, remaining)),
            )
        except httpx.HTTPError as exc:
            last_problem = f"{type(exc).__name__}: {exc}"
        else:
            if answer.status_code == 200:
                return _accept(witness, text, answer.text)
            if answer.status_code == 409 and conflicts < 3:
                conflicts += 1
                try:
                    old = int(answer.text.strip())
                except ValueError:
                    return WitnessResult(witness.name, UNREACHABLE, f"409 with a bad body {answer.text!r}")
                if old > checkpoint.size:
                    return WitnessResult(
                        witness.name,
                        REFUSED,
                        f"{witness.name} has cosigned size {old} but this checkpoint has only"
                        f" {checkpoint.size} entries: entries it saw are gone from the ledger",
                        size=old,
                    )
                continue
            detail = f"{witness.name} answered {answer.status_code}: {answer.text.strip()}"
            if answer.status_code in (400, 409, 422):
                return WitnessResult(witness.name, REFUSED, detail, size=old)
            if answer.status_code in (403, 404):
                return WitnessResult(witness.name, UNREACHABLE, detail)
            last_problem = detail
        delay = _BACKOFF[min(attempt, len(_BACKOFF) - 1)]
        attempt += 1
        if time.monotonic() + delay >= deadline:
            return WitnessResult(
                witness.name, UNREACHABLE, f"{witness.name} could not be reached: {last_problem}"
            )
        time.sleep(delay)


def _accept(witness: WitnessConfig, text: str, body: str) -> WitnessResult:
    try:
        lines = [parse_signature_line(line) for line in body.splitlines() if line]
        for line in lines:
            if witness.key.matches(line):
                witness.key.verify(text, line)
                return WitnessResult(witness.name, COSIGNED, line=line)
    except NoteError as exc:
        return WitnessResult(witness.name, UNREACHABLE, f"{witness.name} sent a bad cosignature: {exc}")
    return WitnessResult(witness.name, UNREACHABLE, f"{witness.name} sent no cosignature by its key")


def cosign(ledger: Ledger, stored: StoredCheckpoint, *, now: datetime, wait: float = 10.0) -> CosignOutcome:
    """Asks every configured witness to cosign `stored`; stores the cosigned note as a new row."""
    witnesses = configured_witnesses(ledger)
    outcome = CosignOutcome(stored)
    if not witnesses:
        return outcome
    known = last_cosigned(ledger)
    lock = threading.Lock()
    size = stored.size

    def prove(old: int) -> list[bytes]:
        if old == 0 or old == size:
            return []
        if old > size:
            raise ProofError(f"size {old} is beyond this checkpoint's {size}")
        with lock:
            return ledger.consistency_proof(old, size)

    deadline = time.monotonic() + wait
    with httpx.Client() as client, ThreadPoolExecutor(len(witnesses)) as pool:
        futures = [
            pool.submit(
                request_cosignature,
                w,
                stored.note,
                min(known.get(w.name, 0), size),
                prove,
                deadline=deadline,
                client=client,
            )
            for w in witnesses
        ]
        outcome.results = [f.result() for f in futures]
    lines = [r.line for r in outcome.results if r.line is not None]
    if lines:
        checkpoint = parse_body(split_note(stored.note)[0])
        for result in outcome.results:
            if result.status == COSIGNED:
                _remember(ledger, result.witness, checkpoint, now)
        newest = ledger.latest_checkpoint(max_size=size)  # may already carry other cosignatures
        base = newest.note if newest is not None and newest.size == size else stored.note
        outcome.checkpoint = ledger.add_cosigned_checkpoint(add_signatures(base, lines), now=now)
    return outcome


class BackgroundCosigning:
    """The service's witness thread: each checkpoint the writer signs is sent to the witnesses.

    It has its own connection (the writer's is busy). Unreachable witnesses are
    retried with backoff (up to a minute apart) until they answer or a newer
    checkpoint replaces the one waiting; a refusal is logged as an error, loudly:
    the witness says the ledger's history changed after it cosigned.
    """

    def __init__(self, path: str, clock: Callable[[], datetime], *, wait: float = 10.0) -> None:
        self._path = path
        self._clock = clock
        self._wait = wait
        self._pending: StoredCheckpoint | None = None
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="ledger-witnesses", daemon=True)
        self.last: CosignOutcome | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join()

    def submit(self, stored: StoredCheckpoint) -> None:
        with self._wake:
            self._pending = stored
            self._wake.notify()

    def _take(self, timeout: float | None) -> StoredCheckpoint | None:
        with self._wake:
            if self._pending is None and not self._stopping:
                self._wake.wait(timeout)
            stored, self._pending = self._pending, None
            return stored

    def _run(self) -> None:
        retry: StoredCheckpoint | None = None
        delay = 1.0
        with Ledger.open(self._path) as ledger:
            while not self._stopping:
                stored = self._take(delay if retry is not None else None) or retry
                if stored is None or self._stopping:
                    continue
                try:
                    self.last = cosign(ledger, stored, now=self._clock(), wait=self._wait)
                except Exception:  # never let the witness thread die: log, retry later
                    log.exception("witnesses: unexpected error")
                    retry, delay = stored, min(delay * 2, 60.0)
                    continue
                for result in self.last.results:
                    if result.status == REFUSED:
                        log.error("WITNESS REFUSED the checkpoint of size %d: %s", stored.size, result.detail)
                    elif result.status == UNREACHABLE:
                        log.warning("witness %s: %s (will retry)", result.witness, result.detail)
                if self.last.exit_code == 2:
                    retry, delay = stored, min(delay * 2, 60.0)
                else:
                    retry, delay = None, 1.0
