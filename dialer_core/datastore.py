"""Residents' personal data, encrypted, one key per batch, destroyable (crypto-shredding).

Personal data (names, phone numbers, amounts) never enters the ledger: events
name cases and numbers by opaque references. The clear data lives here as
NaCl SecretBox ciphertext, each batch under its own random 32-byte key in its
own key file (mode 0600) beside the store. Destroying a batch overwrites and
removes its key file: the ciphertext stays, but nobody can read it again, and
every ledger proof still holds. That is how the contract's "irrecoverable
deletion" (復元不可能な方法で削除) is met without rewriting history.

A resident keeps one case reference for the whole contract: the reference is
HMAC-SHA-256 of the city's 案件番号 under a per-contract secret, a key file
beside the batch keys (docs/targets.md says why a keyed hash). A phone number
keeps its reference (`1`, `2`, then `3`, ...) while it is the same number: the
store keeps, per case, a keyed hash of each number it has seen and the
reference it was given. Destroying the contract (`destroy_contract`) shreds
every remaining batch key and the secret, and deletes those hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
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
-- A re-listed resident has one record per batch; reading a case reads its newest live batch.
CREATE TABLE IF NOT EXISTS records (
    case_ref TEXT NOT NULL,
    batch TEXT NOT NULL REFERENCES batches (batch),
    ciphertext BLOB NOT NULL,
    PRIMARY KEY (case_ref, batch)
);
-- The per-contract secret (its key file is key_dir/<key_id>.key) and, per case, a keyed
-- hash of each phone number seen with the reference it was given.
CREATE TABLE IF NOT EXISTS contract (
    key_id TEXT NOT NULL,
    destroyed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS numbers (
    case_ref TEXT NOT NULL,
    tag TEXT NOT NULL,
    ref TEXT NOT NULL,
    PRIMARY KEY (case_ref, tag)
);
-- Inbound callbacks name their caller through this: a keyed hash of the number alone
-- (no clear number is stored) -> the case and the number's reference.
CREATE TABLE IF NOT EXISTS callers (
    tag TEXT NOT NULL,
    case_ref TEXT NOT NULL,
    ref TEXT NOT NULL,
    PRIMARY KEY (tag, case_ref)
);
"""
CASE_REF_HEX = 16  # 64 bits of the HMAC: no collision among a contract's residents in practice


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
    numbers: tuple[str, ...]  # normalised phone numbers
    category: str
    amount: int
    extra: dict[str, str]
    number_refs: tuple[str, ...] = ()  # the ledger's reference of each number; "1", "2" if not given

    def __post_init__(self) -> None:
        if not self.number_refs:
            object.__setattr__(self, "number_refs", tuple(str(i + 1) for i in range(len(self.numbers))))

    def phone(self, ref: str) -> str:
        """The phone number the ledger calls `ref`."""
        try:
            return self.numbers[self.number_refs.index(ref)]
        except ValueError:
            raise DataStoreError(f"case {self.case_ref} has no number {ref} in its newest batch") from None

    def to_json(self) -> bytes:
        return json.dumps(
            self.__dict__ | {"numbers": list(self.numbers), "number_refs": list(self.number_refs)},
            ensure_ascii=False,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Resident:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            **(data | {"numbers": tuple(data["numbers"]), "number_refs": tuple(data.get("number_refs", ()))})
        )


def new_ref(prefix: str) -> str:
    """An opaque reference: random, so it says nothing about the resident."""
    return f"{prefix}{secrets.token_hex(6)}"


def _keyed(secret: bytes, purpose: str, value: str, prefix: str, hex_chars: int) -> str:
    """HMAC-SHA-256 under the contract's secret, domain-separated by `purpose`."""
    mac = hmac.new(secret, f"kansa/{purpose}\0{value}".encode(), hashlib.sha256).hexdigest()
    return prefix + mac[:hex_chars]


def _digits(phone: str) -> str:
    """A number as the network shows a caller: digits only, +81 as a leading 0."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    return "0" + digits[2:] if phone.strip().startswith("+81") else digits


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

    # -- the per-contract secret and stable references ------------------------------------

    def _secret(self, create: bool) -> tuple[str, bytes, bool] | None:
        """(key id, secret, created just now), or None when there is none and create is False."""
        row = self._db.execute("SELECT key_id, destroyed FROM contract").fetchone()
        if row is not None:
            key_id, destroyed = str(row[0]), bool(row[1])
            if destroyed:
                raise Destroyed("the contract's data was destroyed: its secret is gone")
            path = self._key_path(key_id)
            if not path.exists():
                raise DataStoreError(f"the contract's secret {path} is missing")
            return key_id, path.read_bytes(), False
        if not create:
            return None
        key_id = new_ref("S")
        secret = secrets.token_bytes(32)
        self._write_key(key_id, secret)
        self._db.execute("INSERT INTO contract (key_id) VALUES (?)", (key_id,))
        return key_id, secret, True

    def case_ref(self, case_number: str) -> str:
        """The case's reference for the whole contract: HMAC-SHA-256(secret, 案件番号)."""
        found = self._secret(create=True)
        assert found is not None
        return _keyed(found[1], "case", case_number, "C", CASE_REF_HEX)

    def known_case_ref(self, case_number: str) -> str | None:
        """The reference of the city's 案件番号 if this store has the contract's secret (never
        creates one: for desks that look a case up, not for imports)."""
        found = self._secret(create=False)
        return None if found is None else _keyed(found[1], "case", case_number.strip(), "C", CASE_REF_HEX)

    def _number_refs(self, secret: bytes, case_ref: str, phones: tuple[str, ...]) -> tuple[str, ...]:
        """The same number keeps its reference across months; a new one gets the next free one.
        Runs inside add_batch's transaction."""
        known = dict(
            self._db.execute("SELECT tag, ref FROM numbers WHERE case_ref = ?", (case_ref,)).fetchall()
        )
        taken = [int(r) for r in known.values()]
        refs = []
        for phone in phones:
            tag = _keyed(secret, "number", f"{case_ref}\0{phone}", "", 64)
            if tag not in known:
                known[tag] = str(max(taken, default=0) + 1)
                taken.append(int(known[tag]))
                self._db.execute(
                    "INSERT INTO numbers (case_ref, tag, ref) VALUES (?, ?, ?)", (case_ref, tag, known[tag])
                )
            refs.append(known[tag])
            self._db.execute(
                "INSERT OR REPLACE INTO callers (tag, case_ref, ref) VALUES (?, ?, ?)",
                (_keyed(secret, "caller", _digits(phone), "", 64), case_ref, known[tag]),
            )
        return tuple(refs)

    def caller(self, phone: str) -> tuple[str, str] | None:
        """The (case, number reference) a calling number belongs to, through the keyed-hash index;
        None when unknown, or when the number belongs to several cases (a shared landline)."""
        found = self._secret(create=False)
        if found is None:
            return None
        rows = self._db.execute(
            "SELECT case_ref, ref FROM callers WHERE tag = ?",
            (_keyed(found[1], "caller", _digits(phone), "", 64),),
        ).fetchall()
        return (str(rows[0][0]), str(rows[0][1])) if len(rows) == 1 else None

    # -- batches ---------------------------------------------------------------------------

    def _write_key(self, key_id: str, key: bytes) -> None:
        fd = os.open(self._key_path(key_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())

    def add_batch(self, batch: str, month: str, residents: list[Resident]) -> tuple[str, list[Resident]]:
        """Encrypts a batch under a new key; all or nothing. Each resident gets the contract's
        reference of its 案件番号 and of each of its numbers. Returns the key id and the residents
        with their references."""
        key = nacl.utils.random(nacl.secret.SecretBox.KEY_SIZE)
        key_id = new_ref("K")
        box = nacl.secret.SecretBox(key)
        self._write_key(key_id, key)
        created: str | None = None
        try:
            self._db.execute("BEGIN IMMEDIATE")
            found = self._secret(create=True)
            assert found is not None
            secret_id, secret, fresh = found
            created = secret_id if fresh else None
            placed = []
            for r in residents:
                ref = _keyed(secret, "case", r.case_number, "C", CASE_REF_HEX)
                placed.append(replace(r, case_ref=ref, number_refs=self._number_refs(secret, ref, r.numbers)))
            self._db.execute(
                "INSERT INTO batches (batch, month, key_id, records) VALUES (?, ?, ?, ?)",
                (batch, month, key_id, len(placed)),
            )
            self._db.executemany(
                "INSERT INTO records (case_ref, batch, ciphertext) VALUES (?, ?, ?)",
                [(r.case_ref, batch, bytes(box.encrypt(r.to_json()))) for r in placed],
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._shred(self._key_path(key_id))
            if created is not None:  # the secret was born in this transaction: it goes with it
                self._shred(self._key_path(created))
            raise
        return key_id, placed

    def batch_of(self, case_ref: str) -> str | None:
        """The newest batch that lists the case and is not destroyed (else the newest at all)."""
        row = self._db.execute(
            "SELECT r.batch FROM records r JOIN batches b USING (batch) WHERE r.case_ref = ?"
            " ORDER BY b.destroyed, b.month DESC, b.rowid DESC LIMIT 1",
            (case_ref,),
        ).fetchone()
        return None if row is None else str(row[0])

    def read(self, case_ref: str) -> Resident:
        """Decrypts one case from its newest batch not yet destroyed. Callers that show it to a
        person log access.viewed (see read_case())."""
        row = self._db.execute(
            "SELECT r.ciphertext, b.key_id, b.destroyed, b.batch FROM records r JOIN batches b USING (batch)"
            " WHERE r.case_ref = ? ORDER BY b.destroyed, b.month DESC, b.rowid DESC LIMIT 1",
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
        """Crypto-shreds a batch: overwrites and removes its key. Returns the destroyed key id.
        The contract's secret stays: later months still map residents to their references."""
        row = self._db.execute("SELECT key_id, destroyed FROM batches WHERE batch = ?", (batch,)).fetchone()
        if row is None:
            raise DataStoreError(f"no batch {batch}")
        key_id, destroyed = row
        if destroyed:
            raise Destroyed(f"batch {batch} was already destroyed")
        self._shred(self._key_path(key_id))
        self._db.execute("UPDATE batches SET destroyed = 1 WHERE batch = ?", (batch,))
        return str(key_id)

    def destroy_contract(self) -> tuple[list[tuple[str, str]], str | None]:
        """At the contract's end: shreds every batch key not yet destroyed and the contract's
        secret, and deletes the numbers' keyed hashes. Returns ((batch, key id) destroyed now,
        the secret's key id, or None if there was none)."""
        row = self._db.execute("SELECT key_id, destroyed FROM contract").fetchone()
        if row is not None and row[1]:
            raise Destroyed("the contract's data was already destroyed")
        batches = [
            (str(b), self.destroy(str(b)))
            for (b,) in self._db.execute(
                "SELECT batch FROM batches WHERE destroyed = 0 ORDER BY month, rowid"
            ).fetchall()
        ]
        if row is None:
            return batches, None
        secret_id = str(row[0])
        self._shred(self._key_path(secret_id))
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute("DELETE FROM numbers")
        self._db.execute("DELETE FROM callers")
        self._db.execute("UPDATE contract SET destroyed = 1")
        self._db.execute("COMMIT")
        return batches, secret_id

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
