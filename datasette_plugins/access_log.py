"""The auditors' access log: its own ledger (same `ledger` library, own file, origin and key).

Every request of a signed-in auditor and every sign-in, failed sign-in and
sign-out becomes an entry. It is never written into the contract's ledger.
Appends are serialised on one thread; a checkpoint is signed every
`CHECKPOINT_EVERY` entries and when the server stops, so the log is
tamper-evident like the contract's ledger.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ledger import Ledger
from ledger.event import envelope
from ledger.keyfile import write_key
from ledger.note import Signer
from ledger.store import Submission

VOCABULARY = "kansa-access-v1"
CHECKPOINT_EVERY = 100
JST = timezone(timedelta(hours=9))


def default_access_log_path(ledger: Path | str) -> Path:
    return Path(f"{Path(ledger).with_suffix('')}.access.db")


def access_origin(ledger_origin: str) -> str:
    return f"{ledger_origin}/access-log"


def now_jst() -> datetime:
    return datetime.now(JST)


class AccessLog:
    """Appends access events to the access-log ledger, creating it (and its key) on first use."""

    def __init__(self, path: Path, origin: str) -> None:
        self.path = path
        self.origin = origin
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kansa-access-log")
        self._lock = threading.Lock()
        self._ledger = self._executor.submit(self._open).result()
        self._since_checkpoint = 0
        self._closed = False

    def _open(self) -> Ledger:
        key = Path(f"{self.path}.key")
        if self.path.exists():
            ledger = Ledger.open(self.path, key_path=key)
            if ledger.origin != self.origin:
                raise ValueError(f"{self.path} is the access log of {ledger.origin!r}, not {self.origin!r}")
            return ledger
        signer = Signer.generate(self.origin)
        write_key(key, signer)
        return Ledger.create(
            self.path, origin=self.origin, signer=signer, vocabulary=VOCABULARY, now=now_jst()
        )

    def _append(self, kind: str, person: str, data: dict[str, Any]) -> int:
        with self._lock:
            now = now_jst()
            at = now.isoformat(timespec="milliseconds")
            event = envelope(kind, person or "anonymous", data, at, written=now)
            (appended,) = self._ledger.append([Submission(event)], now=now)
            self._since_checkpoint += 1
            if self._since_checkpoint >= CHECKPOINT_EVERY:
                self._ledger.sign_checkpoint(now=now)
                self._since_checkpoint = 0
            return appended.index

    async def record(self, kind: str, person: str, data: dict[str, Any]) -> int:
        """Append one event; raises if it could not be written (the caller then refuses the request)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._append, kind, person, data)

    def record_now(self, kind: str, person: str, data: dict[str, Any]) -> int:
        return self._executor.submit(self._append, kind, person, data).result()

    def last_verified_note(self, ledger_origin: str) -> str | None:
        """The newest checkpoint note a successful `ledger.verified` recorded: where incremental
        verification of the contract's ledger starts after a restart."""
        for _, data in self.verifications(ledger_origin):
            if data.get("ok") and data.get("note"):
                return str(data["note"])
        return None

    def verifications(self, ledger_origin: str) -> list[tuple[str, dict[str, Any]]]:
        """The `ledger.verified` records of that ledger, newest first: (at, data)."""

        def find() -> list[tuple[str, dict[str, Any]]]:
            rows = self._ledger.leaves_of_type(["ledger.verified"], newest_first=True)
            events = [json.loads(leaf)["event"] for _, leaf in rows]
            return [(e["at"], e["data"]) for e in events if e["data"].get("origin") == ledger_origin]

        return self._executor.submit(find).result()

    def recent_logins(self, since: datetime) -> list[tuple[float, dict[str, Any]]]:
        """The sign-in records (`access.login` data) from `since` on, oldest first, with their
        time in seconds: what the lock-out counters are rebuilt from after a restart."""

        def find() -> list[tuple[float, dict[str, Any]]]:
            rows = self._ledger.leaves_of_type(
                ["access.login"], at_from=since.astimezone(JST).isoformat(timespec="milliseconds")
            )
            events = [json.loads(leaf)["event"] for _, leaf in rows]
            return [(datetime.fromisoformat(e["at"]).timestamp(), e["data"]) for e in events]

        return self._executor.submit(find).result()

    def size(self) -> int:
        return self._executor.submit(lambda: self._ledger.size).result()

    def close(self) -> None:
        """Sign a checkpoint over what is not yet covered, and close; a second call does nothing."""
        if self._closed:
            return
        self._closed = True

        def finish() -> None:
            if self._since_checkpoint:
                self._ledger.sign_checkpoint(now=now_jst())
            self._ledger.close()

        self._executor.submit(finish).result()
        self._executor.shutdown()
