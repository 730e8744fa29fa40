"""Server-side sessions of the auditors' site, so that a session can be ended at once.

The signed `ds_actor` cookie carries a session id (`"s"`) beside the actor; the
middleware accepts a cookie only while its session is open here. Sign-out ends
the session; so does removing the auditor (`kansa auditor remove`), noticed on
the next request. Roles are never taken from the cookie: each request gets the
roles the auditors file holds now.

The table lives in its own SQLite file beside the access log (`LEDGER.sessions.db`,
mode 0600), so sessions survive a restart of `kansa serve` exactly as the cookies do.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    terminal TEXT NOT NULL,
    started INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    ended INTEGER,
    reason TEXT
)
"""


def default_sessions_path(ledger: Path | str) -> Path:
    return Path(f"{Path(ledger).with_suffix('')}.sessions.db")


class Sessions:
    """Open, look up and end sessions; safe to call from any thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.execute(SCHEMA)
        self._lock = threading.Lock()

    def start(self, person: str, terminal: str, *, now: int, expires: int) -> str:
        sid = secrets.token_urlsafe(24)
        with self._lock:
            self._conn.execute(
                "INSERT INTO sessions (id, person, terminal, started, expires) VALUES (?, ?, ?, ?, ?)",
                (sid, person, terminal, now, expires),
            )
        return sid

    def person(self, sid: str, *, now: int) -> str | None:
        """Who holds this session, or None when it is unknown, ended or expired."""
        with self._lock:
            row = self._conn.execute(
                "SELECT person FROM sessions WHERE id = ? AND ended IS NULL AND expires > ?", (sid, now)
            ).fetchone()
        return None if row is None else str(row[0])

    def end(self, sid: str, *, now: int, reason: str) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE sessions SET ended = ?, reason = ? WHERE id = ? AND ended IS NULL", (now, reason, sid)
            )

    def end_person(self, person: str, *, now: int, reason: str) -> int:
        """Ends every open session of one auditor; returns how many were open."""
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE sessions SET ended = ?, reason = ? WHERE person = ? AND ended IS NULL",
                (now, reason, person),
            )
        return cursor.rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()
