"""The ledger: one SQLite file of signed, hash-chained entries under an RFC 6962 tree.

Appends are all-or-nothing: a batch is validated, signed or signature-checked,
chained and hashed in memory, then written in one transaction that commits
with fsync (WAL, synchronous=FULL). Nothing is written unless every event of
the batch is acceptable.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing

from . import merkle
from .canonical import CanonicalError, canonicalize_validated
from .checkpoint import Checkpoint
from .keyfile import read_key
from .leaf import KEY_EVENT_TYPES, build_leaf, case_of, event_bytes
from .note import NoteError, Signer, Verifier, b64decode, b64encode
from .schema import FORMAT, SCHEMA
from .vocabulary import EventError, Vocabulary, load_vocabulary

ZERO_HASH = bytes(32)


class LedgerError(Exception):
    """A ledger that cannot be opened or created as asked."""


class AppendError(Exception):
    """Why a batch was refused. Nothing of the batch was written.

    `kind` is `invalid` (the event does not fit the vocabulary), `conflict`
    (its id is taken by a different event) or `signature` (unknown or revoked
    key, or a bad signature); `position` is the event's place in the batch.
    """

    def __init__(self, position: int, kind: str, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.position = position
        self.kind = kind
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Signature:
    key: str
    ed25519: str  # base64


@dataclass(frozen=True)
class Submission:
    """An event to append, with its writer's signature, or None to sign it with the ledger's key."""

    event: dict[str, Any]
    sig: Signature | None = None


@dataclass(frozen=True)
class Appended:
    index: int
    leaf_hash: bytes
    created: bool  # False when the same event was already in the ledger (idempotent retry)


@dataclass(frozen=True)
class KeyRecord:
    key: str
    public_key: bytes
    holder: str
    registered_at: int
    revoked_at: int | None = None

    def valid_at(self, index: int) -> bool:
        return self.registered_at < index and (self.revoked_at is None or index < self.revoked_at)


@dataclass(frozen=True)
class StoredCheckpoint:
    seq: int
    size: int
    root: bytes
    note: str
    signed_at: str


@dataclass
class _State:
    """What an append needs to know about the tail of the ledger."""

    size: int = 0
    prev: bytes = ZERO_HASH
    edge: merkle.CompactRange = field(default_factory=merkle.CompactRange)
    keys: dict[str, KeyRecord] = field(default_factory=dict)
    ids: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # staged in this batch


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. 2026-09-21T01:15:03.120Z."""
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def connect(path: Path | str, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, isolation_level=None)
    else:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def parse_key_event(leaf_event: dict[str, Any], index: int, keys: dict[str, KeyRecord]) -> KeyRecord:
    """The key table change a key.registered / key.revoked event makes, or AppendError-style ValueError."""
    data = leaf_event["data"]
    if leaf_event["type"] == "key.registered":
        ref = data["key"]
        if ref in keys:
            raise ValueError(f"key {ref} is already registered")
        public = b64decode(data["public_key"])
        try:
            expected = Verifier.from_public_key(data["holder"], public).key_ref
        except NoteError as exc:
            raise ValueError(f"holder cannot name a key: {exc}") from exc
        if ref != expected:
            raise ValueError(f"key id must be {expected} (holder + key hash of the public key)")
        return KeyRecord(ref, public, data["holder"], index)
    record = keys.get(data["key"])
    if record is None:
        raise ValueError(f"key {data['key']} is not registered")
    if record.revoked_at is not None:
        raise ValueError(f"key {data['key']} is already revoked")
    return KeyRecord(record.key, record.public_key, record.holder, record.registered_at, index)


_THREADED_BATCH = 64


def _run_jobs(signer: Signer | None, jobs: list[tuple[Any, ...]]) -> list[bytes | None]:
    """Signs or checks a run of events; None where a writer's signature does not verify."""
    out: list[bytes | None] = []
    for job in jobs:
        if job[0] == "sign":
            assert signer is not None
            out.append(signer.sign(job[2]))
        else:
            _, _, message, public_key, signature, _ = job
            try:
                nacl.signing.VerifyKey(public_key).verify(message, signature)
            except (nacl.exceptions.BadSignatureError, ValueError):
                out.append(None)
            else:
                out.append(signature)
    return out


class _Crypto:
    """The Ed25519 work of one batch, collected in pass 1 and done at once in pass 2.

    A large batch is split over one thread per core while the caller waits:
    libsodium runs without the GIL, and nothing else needs it meanwhile. (A
    thread running beside pass 1 would gain nothing: it would wait for the GIL
    after every signature.)
    """

    def __init__(self, signer: Signer | None, *, threaded: bool) -> None:
        self._signer = signer
        self._jobs: list[tuple[Any, ...]] = []
        self._threaded = threaded

    def sign(self, position: int, message: bytes) -> None:
        self._jobs.append(("sign", position, message))

    def verify(self, position: int, message: bytes, public_key: bytes, signature: bytes, key: str) -> None:
        self._jobs.append(("verify", position, message, public_key, signature, key))

    def _run(self, jobs: list[tuple[Any, ...]]) -> list[bytes | None]:
        workers = os.cpu_count() or 1
        if not self._threaded or workers == 1 or len(jobs) < _THREADED_BATCH:
            return _run_jobs(self._signer, jobs)
        size = -(-len(jobs) // workers)
        parts = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        with ThreadPoolExecutor(len(parts)) as pool:
            done = pool.map(_run_jobs, [self._signer] * len(parts), parts)
            return [result for part in done for result in part]

    def results(self) -> list[bytes]:
        """The signatures in order; AppendError at the first writer's signature that does not verify."""
        done = self._run(self._jobs)
        for job, result in zip(self._jobs, done, strict=True):
            if result is None:
                raise AppendError(
                    job[1], "signature", "sig.ed25519", f"signature does not verify with key {job[5]!r}"
                )
        return [r for r in done if r is not None]

    def raise_first_failure(self, *, before: int) -> None:
        """When pass 1 fails at `before`, a bad signature earlier in the batch is reported instead."""
        earlier = [job for job in self._jobs if job[1] < before and job[0] == "verify"]
        for job, result in zip(earlier, self._run(earlier), strict=True):
            if result is None:
                raise AppendError(
                    job[1], "signature", "sig.ed25519", f"signature does not verify with key {job[5]!r}"
                )


class Ledger:
    """An open ledger file. Use `Ledger.create` once, then `Ledger.open`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, signer: Signer | None) -> None:
        self.path = path
        self._conn = conn
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("format") != FORMAT:
            raise LedgerError(f"{path} is not a Kansa ledger ({FORMAT})")
        self.origin: str = meta["origin"]
        self.contract: str = meta.get("contract", "")
        self.verifier = Verifier.parse(meta["vkey"])
        self.vocabulary: Vocabulary = load_vocabulary(meta["vocabulary"])
        if signer is not None and signer.verifier != self.verifier:
            raise LedgerError("the key file does not hold this ledger's key")
        self._signer = signer
        self._state = _State()
        self._refresh()

    # -- opening -----------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Path | str,
        *,
        origin: str,
        signer: Signer,
        contract: str = "",
        vocabulary: str = "kansa-events-v1",
        now: datetime,
    ) -> Ledger:
        path = Path(path)
        if path.exists():
            raise LedgerError(f"{path} already exists")
        if signer.name != origin:
            raise LedgerError("the ledger's key must be named after its origin")
        load_vocabulary(vocabulary)
        conn = connect(path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN IMMEDIATE")
        for statement in _statements(SCHEMA):
            conn.execute(statement)
        meta = {
            "format": FORMAT,
            "origin": origin,
            "contract": contract,
            "vkey": signer.verifier.vkey,
            "vocabulary": vocabulary,
            "created": format_time(now),
        }
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
        conn.execute("COMMIT")
        return cls(path, conn, signer)

    @classmethod
    def open(cls, path: Path | str, *, key_path: Path | str | None = None, readonly: bool = False) -> Ledger:
        path = Path(path)
        if not path.exists():
            raise LedgerError(f"no ledger at {path}")
        signer = read_key(Path(key_path)) if key_path is not None else None
        try:
            conn = connect(path, readonly=readonly)
            return cls(path, conn, signer)
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{path}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def key_ref(self) -> str:
        """How events signed by the ledger's own key name it."""
        return self.verifier.key_ref

    # -- reading -----------------------------------------------------------

    @property
    def size(self) -> int:
        row = self._conn.execute("SELECT max(idx) FROM entries").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def node(self, level: int, index: int) -> bytes:
        if level == 0:
            row = self._conn.execute("SELECT leaf_hash FROM entries WHERE idx = ?", (index,)).fetchone()
        else:
            row = self._conn.execute(
                "SELECT hash FROM tree_nodes WHERE level = ? AND idx = ?", (level, index)
            ).fetchone()
        if row is None:
            raise merkle.ProofError(f"tree node ({level}, {index}) is missing")
        return bytes(row[0])

    def _cached_reader(self) -> merkle.NodeReader:
        cache: dict[tuple[int, int], bytes] = {}

        def read(level: int, index: int) -> bytes:
            if (level, index) not in cache:
                cache[(level, index)] = self.node(level, index)
            return cache[(level, index)]

        return read

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        self._check_size(size)
        return merkle.root_hash(self._cached_reader(), size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        return merkle.inclusion_proof(self._cached_reader(), index, size)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        self._check_size(new)
        return merkle.consistency_proof(self._cached_reader(), old, new)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise merkle.ProofError(f"the ledger has {self.size} entries, not {size}")

    def leaf(self, index: int) -> bytes:
        row = self._conn.execute("SELECT leaf FROM entries WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise IndexError(f"no entry {index}")
        return str(row[0]).encode("utf-8")

    def leaves(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, bytes, bytes]]:
        """(index, leaf bytes, leaf hash) in index order."""
        stop = self.size if stop is None else stop
        cursor = self._conn.execute(
            "SELECT idx, leaf, leaf_hash FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, stop),
        )
        for idx, leaf, digest in cursor:
            yield idx, leaf.encode("utf-8"), bytes(digest)

    def keys(self) -> dict[str, KeyRecord]:
        return dict(self._state.keys)

    def checkpoints(self) -> list[StoredCheckpoint]:
        rows = self._conn.execute(
            "SELECT seq, size, root, note, signed_at FROM checkpoints ORDER BY seq"
        ).fetchall()
        return [StoredCheckpoint(s, n, bytes(r), note, at) for s, n, r, note, at in rows]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        found = self.checkpoints()
        return found[-1] if found else None

    # -- writing -----------------------------------------------------------

    def sign_checkpoint(self, *, now: datetime) -> StoredCheckpoint:
        """Signs a checkpoint of the current size (or returns the one already signed for it)."""
        signer = self._require_signer()
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            size = self.size
            note = Checkpoint(self.origin, size, self.root(size)).sign(signer)
            self._conn.execute(
                "INSERT OR IGNORE INTO checkpoints (size, root, note, signed_at) VALUES (?, ?, ?, ?)",
                (size, self.root(size), note, format_time(now)),
            )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        row = self._conn.execute(
            "SELECT seq, size, root, note, signed_at FROM checkpoints WHERE note = ?", (note,)
        ).fetchone()
        return StoredCheckpoint(row[0], row[1], bytes(row[2]), row[3], row[4])

    def append(self, submissions: Iterable[Submission], *, now: datetime) -> list[Appended]:
        """Appends a batch, all or nothing; raises AppendError naming the first bad event."""
        items = list(submissions)
        received = format_time(now)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._refresh()
            state = _State(
                self._state.size, self._state.prev, self._state.edge.copy(), dict(self._state.keys)
            )
            results, rows, nodes = self._stage(items, state, received)
            if rows:
                self._conn.executemany(
                    "INSERT INTO entries (idx, id, type, at, actor, case_ref, received, key, leaf,"
                    " leaf_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._conn.executemany("INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        state.ids = {}
        self._state = state
        return results

    def _stage(
        self, items: Sequence[Submission], state: _State, received: str
    ) -> tuple[list[Appended], list[tuple[Any, ...]], list[tuple[int, int, bytes]]]:
        """Checks and chains a batch in memory, in two passes.

        Pass 1 validates, assigns indexes and tracks keys, and collects the
        Ed25519 work (signing with the ledger's key, or checking a writer's
        signature); that work is then done on all cores; pass 2 takes the
        signatures in order and builds the leaves, chain and tree.
        """
        stored_ids = self._find_ids([item.event.get("id") for item in items if isinstance(item.event, dict)])
        staged: list[tuple[int, int, dict[str, Any], bytes, str]] = []  # position, index, event, bytes, key
        duplicates: dict[int, int] = {}  # position -> index of the entry it repeats
        crypto = _Crypto(self._signer, threaded=len(items) >= _THREADED_BATCH)
        for position, item in enumerate(items):
            try:
                self._stage_one(position, item, state, stored_ids, staged, duplicates, crypto)
            except AppendError as exc:
                crypto.raise_first_failure(before=position)
                raise exc
        signatures = crypto.results()
        rows: list[tuple[Any, ...]] = []
        nodes: list[tuple[int, int, bytes]] = []
        by_position: dict[int, Appended] = {}
        for (position, index, event, message, key_ref), signature in zip(staged, signatures, strict=True):
            leaf = build_leaf(message, index, state.prev, received, key_ref, signature)
            digest = merkle.leaf_hash(leaf)
            nodes.extend(state.edge.append(digest))
            rows.append(
                (
                    index,
                    event["id"],
                    event["type"],
                    event["at"],
                    event["actor"],
                    case_of(event),
                    received,
                    key_ref,
                    leaf.decode("utf-8"),
                    digest,
                )
            )
            state.prev = digest
            by_position[position] = Appended(index, digest, True)
        staged_hash = {a.index: a.leaf_hash for a in by_position.values()}
        for position, index in duplicates.items():
            digest = staged_hash[index] if index in staged_hash else self.node(0, index)
            by_position[position] = Appended(index, digest, False)
        return [by_position[p] for p in range(len(items))], rows, nodes

    def _stage_one(
        self,
        position: int,
        item: Submission,
        state: _State,
        stored_ids: dict[str, tuple[int, bytes]],
        staged: list[tuple[int, int, dict[str, Any], bytes, str]],
        duplicates: dict[int, int],
        crypto: _Crypto,
    ) -> None:
        event = item.event
        try:
            self.vocabulary.validate(event)
            event_bytes = canonicalize_validated(event)
        except EventError as exc:
            raise AppendError(position, "invalid", exc.field, exc.message) from exc
        except CanonicalError as exc:
            raise AppendError(position, "invalid", "event", str(exc)) from exc
        existing = state.ids.get(event["id"]) or stored_ids.get(event["id"])
        if existing is not None:
            index, stored = existing
            if stored != event_bytes:
                raise AppendError(
                    position,
                    "conflict",
                    "id",
                    f"id {event['id']!r} is already entry {index} with different content",
                )
            duplicates[position] = index
            return
        index = state.size
        key_ref = self._queue_signature(position, item, event, event_bytes, state, index, crypto)
        if event["type"] in KEY_EVENT_TYPES:
            try:
                record = parse_key_event(event, index, state.keys)
            except ValueError as exc:
                raise AppendError(position, "invalid", "data.key", str(exc)) from exc
            state.keys[record.key] = record
        staged.append((position, index, event, event_bytes, key_ref))
        state.ids[event["id"]] = (index, event_bytes)
        state.size += 1

    def _queue_signature(
        self,
        position: int,
        item: Submission,
        event: dict[str, Any],
        event_bytes: bytes,
        state: _State,
        index: int,
        crypto: _Crypto,
    ) -> str:
        if item.sig is None:
            self._require_signer()
            crypto.sign(position, event_bytes)
            return self.key_ref
        key_ref = item.sig.key
        if event["type"] in KEY_EVENT_TYPES and key_ref != self.key_ref:
            raise AppendError(
                position,
                "signature",
                "sig.key",
                "key events must be signed by the ledger's own key (appended by its host)",
            )
        if key_ref == self.key_ref:
            public_key = self.verifier.public_key
        else:
            record = state.keys.get(key_ref)
            if record is None:
                raise AppendError(position, "signature", "sig.key", f"unknown key {key_ref!r}")
            if not record.valid_at(index):
                raise AppendError(position, "signature", "sig.key", f"key {key_ref!r} is revoked")
            public_key = record.public_key
        try:
            signature = b64decode(item.sig.ed25519)
        except NoteError as exc:
            raise AppendError(position, "signature", "sig.ed25519", str(exc)) from exc
        crypto.verify(position, event_bytes, public_key, signature, key_ref)
        return key_ref

    def _find_ids(self, ids: list[Any]) -> dict[str, tuple[int, bytes]]:
        """The entries already holding any of these ids: id -> (index, event bytes)."""
        wanted = [i for i in set(ids) if isinstance(i, str)]
        found: dict[str, tuple[int, bytes]] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            rows = self._conn.execute(
                f"SELECT id, idx, leaf FROM entries WHERE id IN ({', '.join('?' * len(part))})", part
            )
            for event_id, idx, leaf in rows:
                found[event_id] = (int(idx), event_bytes(leaf.encode("utf-8")))
        return found

    def _leaf_hash_of(self, index: int, staged: list[tuple[Any, ...]]) -> bytes:
        if index >= self._state.size:
            return bytes(staged[index - self._state.size][9])
        return self.node(0, index)

    def _require_signer(self) -> Signer:
        if self._signer is None:
            raise LedgerError("this needs the ledger's signing key (open the ledger with its key file)")
        return self._signer

    def _refresh(self) -> None:
        """Brings the cached tail up to date when another process appended meanwhile."""
        size = self.size
        state = self._state
        if size == state.size and (size == 0 or state.edge.size == size):
            return
        edge = merkle.CompactRange(size, [self.node(level, i) for level, i in merkle.perfect_subtrees(size)])
        keys = dict(state.keys) if size >= state.size else {}
        start = state.size if size >= state.size else 0
        rows = self._conn.execute(
            "SELECT idx, leaf FROM entries WHERE idx >= ? AND type IN ('key.registered', 'key.revoked')"
            " ORDER BY idx",
            (start,),
        )
        for idx, leaf in rows:
            event = json.loads(leaf)["event"]
            record = parse_key_event(event, idx, keys)
            keys[record.key] = record
        prev = self.node(0, size - 1) if size else ZERO_HASH
        self._state = _State(size, prev, edge, keys)


def _statements(script: str) -> list[str]:
    """Splits the schema into statements (triggers keep their inner semicolons)."""
    out, current = [], []
    for line in script.strip().splitlines():
        current.append(line)
        joined = "\n".join(current)
        if joined.rstrip().endswith(";") and sqlite3.complete_statement(joined):
            out.append(joined)
            current = []
    return out


def decode_hash(text: str) -> bytes:
    raw = b64decode(text)
    if len(raw) != merkle.HASH_SIZE:
        raise ValueError("a hash has 32 bytes")
    return raw


__all__ = [
    "AppendError",
    "Appended",
    "KeyRecord",
    "Ledger",
    "LedgerError",
    "Signature",
    "StoredCheckpoint",
    "Submission",
    "b64encode",
    "connect",
    "format_time",
]
