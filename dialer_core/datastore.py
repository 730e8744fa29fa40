"""Residents' personal data, encrypted, one key per batch, destroyable (crypto-shredding).

Personal data (names, phone numbers, amounts) never enters the ledger: events
name cases and numbers by opaque references. The clear data lives here as
NaCl SecretBox ciphertext, each batch under its own random 32-byte key in its
own key file (mode 0600) beside the store. Destroying a batch overwrites and
removes its key file: the ciphertext stays, but nobody can read it again, and
every ledger proof still holds. That is how the contract's "irrecoverable
deletion" (復元不可能な方法で削除) is met without rewriting history.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.secret
import nacl.utils

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch TEXT PRIMARY KEY,
    month TEXT NOT NULL,
    key_id TEXT NOT NULL,
    records INTEGER NOT NULL,
    destroyed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS records (
    case_ref TEXT PRIMARY KEY,
    batch TEXT NOT NULL REFERENCES batches (batch),
    ciphertext BLOB NOT NULL
);
"""


class DataStoreError(Exception):
    pass


class Destroyed(DataStoreError):
    """The batch's key was destroyed: its records can never be read again."""


@dataclass(frozen=True)
class Resident:
    """One case's personal data, in clear: only ever held in memory."""

    case_ref: str
    case_number: str
    name: str
    numbers: tuple[str, ...]  # normalised phone numbers; refs "1", "2" in this order
    category: str
    amount: int
    extra: dict[str, str]

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__ | {"numbers": list(self.numbers)}, ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Resident:
        data: dict[str, Any] = json.loads(raw)
        return cls(**(data | {"numbers": tuple(data["numbers"])}))


def new_ref(prefix: str) -> str:
    """An opaque reference: random, so it says nothing about the resident."""
    return f"{prefix}{secrets.token_hex(6)}"


class DataStore:
    """The encrypted store: `path` (SQLite) and `path`.keys/ (one key file per batch)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.key_dir = Path(f"{self.path}.keys")
        self.key_dir.mkdir(mode=0o700, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        # Freed pages are zeroed, so nothing of a deleted row lingers in the file.
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> DataStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _key_path(self, key_id: str) -> Path:
        return self.key_dir / f"{key_id}.key"

    def add_batch(self, batch: str, month: str, residents: list[Resident]) -> str:
        """Encrypts a batch under a new key; all or nothing. Returns the key id."""
        key = nacl.utils.random(nacl.secret.SecretBox.KEY_SIZE)
        key_id = new_ref("K")
        box = nacl.secret.SecretBox(key)
        fd = os.open(self._key_path(key_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO batches (batch, month, key_id, records) VALUES (?, ?, ?, ?)",
                (batch, month, key_id, len(residents)),
            )
            self._db.executemany(
                "INSERT INTO records (case_ref, batch, ciphertext) VALUES (?, ?, ?)",
                [(r.case_ref, batch, bytes(box.encrypt(r.to_json()))) for r in residents],
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._shred(self._key_path(key_id))
            raise
        return key_id

    def batch_of(self, case_ref: str) -> str | None:
        row = self._db.execute("SELECT batch FROM records WHERE case_ref = ?", (case_ref,)).fetchone()
        return None if row is None else str(row[0])

    def read(self, case_ref: str) -> Resident:
        """Decrypts one case. Callers that show it to a person log access.viewed (see reader())."""
        row = self._db.execute(
            "SELECT r.ciphertext, b.key_id, b.destroyed, b.batch FROM records r JOIN batches b USING (batch)"
            " WHERE r.case_ref = ?",
            (case_ref,),
        ).fetchone()
        if row is None:
            raise DataStoreError(f"no case {case_ref}")
        ciphertext, key_id, destroyed, batch = row
        key_path = self._key_path(key_id)
        if destroyed or not key_path.exists():
            raise Destroyed(f"batch {batch} was destroyed; case {case_ref} cannot be read")
        try:
            return Resident.from_json(nacl.secret.SecretBox(key_path.read_bytes()).decrypt(ciphertext))
        except nacl.exceptions.CryptoError as exc:
            raise DataStoreError(f"case {case_ref}: ciphertext or key damaged") from exc

    def destroy(self, batch: str) -> str:
        """Crypto-shreds a batch: overwrites and removes its key. Returns the destroyed key id."""
        row = self._db.execute("SELECT key_id, destroyed FROM batches WHERE batch = ?", (batch,)).fetchone()
        if row is None:
            raise DataStoreError(f"no batch {batch}")
        key_id, destroyed = row
        if destroyed:
            raise Destroyed(f"batch {batch} was already destroyed")
        self._shred(self._key_path(key_id))
        self._db.execute("UPDATE batches SET destroyed = 1 WHERE batch = ?", (batch,))
        return str(key_id)

    def _shred(self, key_path: Path) -> None:
        if not key_path.exists():
            return
        size = key_path.stat().st_size
        with open(key_path, "r+b") as f:
            f.write(secrets.token_bytes(size))
            f.flush()
            os.fsync(f.fileno())
        key_path.unlink()
        dir_fd = os.open(self.key_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def read_case(
        self, case_ref: str, *, person: str, purpose: str, log: Callable[[dict[str, Any]], object]
    ) -> Resident:
        """What a person is shown: `log` records access.viewed (who, which case, why) first,
        so no one sees a resident's data without the ledger knowing."""
        if person == "system":
            raise DataStoreError("access.viewed is for people; the dialing core reads with read()")
        log({"person": person, "case": case_ref, "purpose": purpose})
        return self.read(case_ref)

    def batches(self) -> list[tuple[str, str, int, bool]]:
        rows = self._db.execute("SELECT batch, month, records, destroyed FROM batches ORDER BY batch")
        return [(b, m, n, bool(d)) for b, m, n, d in rows]
