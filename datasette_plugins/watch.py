"""Keeps the contract's ledger verified while Datasette shows it, and says exactly how far.

Two kinds of check, kept apart because they promise different things:

- A **full** verification at every start (a background thread; 1M entries take
  about a minute): every entry, signature, tree node and checkpoint from index 0.
  History rewritten while the server was stopped is found here, and only here.
- **Incremental** checks on each visit of the status page, from the newest
  checkpoint verified so far (at start-up: the one the access log last recorded
  as verified). They check what was appended since, and that it extends that
  checkpoint; they take the history before it on trust.

The page never says "verified" over more than was checked: until this start's
full verification has finished it says what is running and what the incremental
checks covered; a failure of either is the red banner. Every result, good or bad,
is recorded as `ledger.verified` in the access log (`full`, `from_size`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ledger import Report, verify_ledger, verify_since
from ledger.note import b64encode

from .access_log import AccessLog, now_jst


@dataclass(frozen=True)
class Check:
    """One verification run: progress while it runs, then its report."""

    running: bool = False
    done: int = 0
    total: int = 0
    report: Report | None = None
    at: datetime | None = None
    start: int = 0  # the first index it checked (0 for a full verification)

    @property
    def ok(self) -> bool | None:
        return None if self.report is None else self.report.ok


@dataclass(frozen=True)
class Verification:
    full: Check = field(default_factory=Check)  # this start's full verification
    incremental: Check = field(default_factory=Check)  # the latest incremental check
    previous_full: dict[str, Any] | None = None  # the last full one the access log holds from before

    @property
    def ok(self) -> bool | None:
        """False when either check failed; True only once the full verification passed (and the
        latest incremental check, if any); None while that is not known yet."""
        if self.full.ok is False or self.incremental.ok is False:
            return False
        return True if self.full.ok else None

    @property
    def failed(self) -> Check | None:
        for check in (self.full, self.incremental):
            if check.ok is False:
                return check
        return None

    @property
    def verified_size(self) -> int | None:
        """How many entries, from index 0, are verified (full, extended by incremental checks)."""
        # The incremental checks start at a checkpoint no larger than what the full one covered,
        # so together they cover every index below the larger of the two sizes.
        if not self.ok or self.full.report is None:
            return None
        inc = self.incremental.report
        return max(self.full.report.size, inc.size if inc is not None else 0)

    @property
    def running(self) -> bool:
        return self.full.running or self.incremental.running


class LedgerWatch:
    def __init__(self, ledger_path: Path, origin: str, log: AccessLog) -> None:
        self.path = ledger_path
        self.origin = origin
        self.log = log
        self._trusted: str | None = log.last_verified_note(origin)
        self._state = Verification(previous_full=_last_full(log, origin))
        self._guard = threading.Lock()  # one verification at a time
        self._state_lock = threading.Lock()

    @property
    def state(self) -> Verification:
        with self._state_lock:
            return self._state

    def _update(self, **changes: Any) -> None:
        with self._state_lock:
            self._state = replace(self._state, **changes)

    def start(self) -> threading.Thread:
        """The full verification of this start, in the background."""
        thread = threading.Thread(target=self.verify_full, name="kansa-verify", daemon=True)
        thread.start()
        return thread

    def verify_full(self) -> Verification:
        with self._guard:
            self._update(full=Check(running=True))

            def progress(done: int, total: int) -> None:
                self._update(full=Check(running=True, done=done, total=total))

            report = verify_ledger(self.path, progress=progress)
            note = self._newest_note(report) if report.ok else None
            if note is not None:
                self._trusted = note
            self._record(report, note, full=True, start=0)
            self._update(full=Check(False, report.size, report.size, report, now_jst(), 0))
            return self.state

    def verify(self) -> Verification:
        """What a visit of the status page asks for: the full verification if this process has
        not run one (without a background thread), else an incremental check from the newest
        verified checkpoint. Returns at once with the current state while another runs."""
        if self.state.full.report is None and not self.state.full.running:
            return self.verify_full()
        if self._trusted is None or not self._guard.acquire(blocking=False):
            return self.state
        try:
            trusted = self._trusted
            start = _note_size(trusted)
            self._update(incremental=Check(running=True, start=start))

            def progress(done: int, total: int) -> None:
                self._update(incremental=Check(running=True, done=done, total=total, start=start))

            report = verify_since(self.path, trusted, workers=1, progress=progress)
            note = self._newest_note(report) if report.ok else None
            if note is not None:
                self._trusted = note
            self._record(report, note, full=False, start=start)
            self._update(incremental=Check(False, report.size, report.size, report, now_jst(), start))
            return self.state
        finally:
            self._guard.release()

    def _record(self, report: Report, note: str | None, *, full: bool, start: int) -> None:
        self.log.record_now(
            "ledger.verified",
            "system",
            {
                "origin": self.origin,
                "size": report.size,
                "root": b64encode(report.root) if report.root is not None else None,
                "ok": report.ok,
                "full": full,
                "from_size": start,
                **({"reason": report.reason} if report.reason else {}),
                **({"note": note} if note else {}),
            },
        )

    def _newest_note(self, report: Report) -> str | None:
        """The newest stored checkpoint the verification itself checked (no second read)."""
        return report.latest_note or self._trusted


def _note_size(note: str) -> int:
    """The tree size a checkpoint note states (its second line)."""
    lines = note.split("\n")
    return int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else 0


def _last_full(log: AccessLog, origin: str) -> dict[str, Any] | None:
    """The last full verification the access log recorded before this start: at, size, ok."""
    for at, data in log.verifications(origin):
        if data.get("full"):
            return {"at": at, "size": data["size"], "ok": data["ok"], "reason": data.get("reason", "")}
    return None


__all__ = ["Check", "LedgerWatch", "Verification"]
