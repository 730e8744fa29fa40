"""Keeps the contract's ledger verified while Datasette shows it.

At start-up a background thread verifies the ledger: incrementally from the
checkpoint the access log last recorded as verified, or in full the first
time. Each visit to the status page then runs a fresh incremental check from
the newest checkpoint verified so far. Every result, good or bad, is recorded
as `ledger.verified` in the access log.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from ledger import Ledger, Report, verify_ledger, verify_since

from .access_log import AccessLog, now_jst


@dataclass(frozen=True)
class Verification:
    running: bool = False
    done: int = 0
    total: int = 0
    report: Report | None = None
    at: datetime | None = None
    full: bool = False

    @property
    def ok(self) -> bool | None:
        return None if self.report is None else self.report.ok


class LedgerWatch:
    def __init__(self, ledger_path: Path, origin: str, log: AccessLog) -> None:
        self.path = ledger_path
        self.origin = origin
        self.log = log
        self._trusted: str | None = log.last_verified_note(origin)
        self._state = Verification()
        self._guard = threading.Lock()  # one verification at a time
        self._state_lock = threading.Lock()

    @property
    def state(self) -> Verification:
        with self._state_lock:
            return self._state

    def _set(self, state: Verification) -> None:
        with self._state_lock:
            self._state = state

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.verify, name="kansa-verify", daemon=True)
        thread.start()
        return thread

    def verify(self) -> Verification:
        """Verify now (incrementally when a trusted checkpoint is known); returns at once with the
        current state when another verification is already running."""
        if not self._guard.acquire(blocking=False):
            return self.state
        try:
            full = self._trusted is None
            self._set(replace(self.state, running=True, done=0, total=0, full=full))

            def progress(done: int, total: int) -> None:
                self._set(replace(self.state, done=done, total=total))

            if self._trusted is None:
                report = verify_ledger(self.path, progress=progress)
            else:
                report = verify_since(self.path, self._trusted, workers=1, progress=progress)
            note = self._newest_note(report) if report.ok else None
            if note is not None:
                self._trusted = note
            self.log.record_now(
                "ledger.verified",
                "system",
                {
                    "origin": self.origin,
                    "size": report.size,
                    "root": report.root.hex() if report.root is not None else None,
                    "ok": report.ok,
                    **({"reason": report.reason} if report.reason else {}),
                    **({"note": note} if note else {}),
                },
            )
            state = Verification(False, report.size, report.size, report, now_jst(), full)
            self._set(state)
            return state
        finally:
            self._guard.release()

    def _newest_note(self, report: Report) -> str | None:
        with Ledger.open(self.path, readonly=True) as ledger:
            notes = [cp.note for cp in ledger.checkpoints() if cp.size <= report.size]
        return notes[-1] if notes else self._trusted
