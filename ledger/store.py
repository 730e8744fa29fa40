"""The ledger: one SQLite file of signed, hash-chained entries under an RFC 6962 tree.

Appends are all-or-nothing: a batch is validated, signed or signature-checked,
chained and hashed in memory, then written in one transaction that commits
with fsync (WAL, synchronous=FULL). Nothing is written unless every event of
the batch is acceptable.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing

from . import merkle
from .canonical import CanonicalError, canonicalize_validated
from .checkpoint import Checkpoint, open_checkpoint
from .keyfile import read_key
from .keys import KeyEventError, KeyRecord, parse_key_event
from .leaf import KEY_EVENT_TYPES, ZERO_HASH, build_leaf, case_of
from .leaf import MAX_LEAF_BYTES as MAX_LEAF_BYTES  # kept importable from here (dialer_core.client)
from .note import NoteError, Signer, b64decode, b64encode
from .reader import LedgerError, LedgerReader, StoredCheckpoint, connect
from .schema import FORMAT, SCHEMA
from .vocabulary import EventError, Vocabulary, is_unicode, load_vocabulary


class AppendError(Exception):
    """Why a batch was refused. Nothing of the batch was written.

    `kind` is `invalid` (the event does not fit the vocabulary), `conflict`
    (its id is taken by a different event), `signature` (unknown or revoked
    key, or a bad signature) or `too_large` (its leaf would exceed
    MAX_LEAF_BYTES); `position` is the event's place in the batch.
    ledger.wire says which HTTP status each kind answers with.
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
    # Set by Ledger.prepare (outside the writer): the event's RFC 8785 bytes, already validated,
    # and the public key its signature was found to verify with. The writer then only judges
    # what depends on the ledger's state (the key's validity at the index, the id).
    canonical: bytes | None = None
    verified_with: bytes | None = None


@dataclass(frozen=True)
class Appended:
    index: int
    leaf_hash: bytes
    created: bool  # False when the same event was already in the ledger (idempotent retry)


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


class StorageError(Exception):
    """The ledger file cannot be written just now (`full`: no space left; `unwritable`: a
    read-only file or file system, an I/O error). Nothing of the append was written; the same
    append can succeed once the cause is gone."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def storage_error(exc: sqlite3.Error) -> StorageError | None:
    """The StorageError an SQLite error stands for, if it is about the file rather than the data."""
    text = str(exc).lower()
    if "full" in text:
        return StorageError("full", f"no space left for the ledger ({exc})")
    if any(word in text for word in ("readonly", "read-only", "i/o error", "unable to open")):
        return StorageError("unwritable", f"the ledger file cannot be written ({exc})")
    return None


def check_writable(path: Path | str) -> None:
    """Raises LedgerError when the ledger file or its directory (where SQLite keeps -wal and
    -shm) cannot be written: a service must not start on a ledger it cannot append to."""
    path = Path(path)
    for target in (path, path.parent, Path(f"{path}-wal")):
        if target.exists() and not os.access(target, os.W_OK):
            raise LedgerError(f"cannot write {target}: read-only file or file system, or no permission")
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as exc:
        raise LedgerError(f"cannot write {path}: {exc.strerror}") from exc
    os.close(fd)


_THREADED_BATCH = 64


@dataclass(frozen=True)
class _Job:
    """One Ed25519 operation of a batch: sign with the ledger's key, or check a writer's signature."""

    group: int
    position: int
    message: bytes
    public_key: bytes | None = None  # None: sign with the ledger's key
    signature: bytes = b""
    key: str = ""

    @property
    def cache_key(self) -> tuple[bytes, bytes | None, bytes]:
        return (self.message, self.public_key, self.signature)


def _run_jobs(signer: Signer | None, jobs: list[_Job]) -> list[bytes | None]:
    """Signs or checks a run of events; None where a writer's signature does not verify."""
    out: list[bytes | None] = []
    for job in jobs:
        if job.public_key is None:
            assert signer is not None
            out.append(signer.sign(job.message))
            continue
        try:
            nacl.signing.VerifyKey(job.public_key).verify(job.message, job.signature)
        except (nacl.exceptions.BadSignatureError, ValueError):
            out.append(None)
        else:
            out.append(job.signature)
    return out


class _Crypto:
    """The Ed25519 work of a batch, collected in pass 1 and done at once before pass 2.

    A large batch is split over one thread per core while the caller waits:
    libsodium runs without the GIL, and nothing else needs it meanwhile. (A
    thread running beside pass 1 would gain nothing: it would wait for the GIL
    after every signature.) Results are cached, so restaging a batch after one
    group failed does not redo the work of the others.
    """

    def __init__(self, signer: Signer | None, cache: dict[tuple[bytes, bytes | None, bytes], bytes | None]):
        self._signer = signer
        self._cache = cache
        self.jobs: list[_Job] = []
        self.group = 0

    def sign(self, position: int, message: bytes) -> None:
        self.jobs.append(_Job(self.group, position, message))

    def verify(self, position: int, message: bytes, public_key: bytes, signature: bytes, key: str) -> None:
        self.jobs.append(_Job(self.group, position, message, public_key, signature, key))

    def verified(self, position: int, message: bytes, public_key: bytes, signature: bytes, key: str) -> None:
        """A writer's signature already checked (Ledger.prepare): kept in order, not redone."""
        job = _Job(self.group, position, message, public_key, signature, key)
        self._cache[job.cache_key] = signature
        self.jobs.append(job)

    def mark(self) -> int:
        return len(self.jobs)

    def drop_from(self, mark: int) -> None:
        del self.jobs[mark:]

    def run(self, jobs: list[_Job]) -> list[bytes | None]:
        todo = [job for job in jobs if job.cache_key not in self._cache]
        workers = os.cpu_count() or 1
        if workers == 1 or len(todo) < _THREADED_BATCH:
            done = _run_jobs(self._signer, todo)
        else:
            size = -(-len(todo) // workers)
            parts = [todo[i : i + size] for i in range(0, len(todo), size)]
            with ThreadPoolExecutor(len(parts)) as pool:
                done = [r for part in pool.map(_run_jobs, [self._signer] * len(parts), parts) for r in part]
        for job, result in zip(todo, done, strict=True):
            self._cache[job.cache_key] = result
        return [self._cache[job.cache_key] for job in jobs]

    def first_failures(self) -> dict[int, AppendError]:
        """Per group, the first writer's signature that does not verify."""
        failures: dict[int, AppendError] = {}
        for job, result in zip(self.jobs, self.run(self.jobs), strict=True):
            if result is None and job.group not in failures:
                failures[job.group] = _bad_signature(job)
        return failures

    def signatures(self) -> list[bytes]:
        return [r for r in self.run(self.jobs) if r is not None]

    def raise_first_failure(self, *, since: int, before: int) -> None:
        """When pass 1 fails at `before`, a bad signature earlier in the group is reported instead."""
        earlier = [job for job in self.jobs[since:] if job.position < before and job.public_key is not None]
        for job, result in zip(earlier, self.run(earlier), strict=True):
            if result is None:
                raise _bad_signature(job)


def _bad_signature(job: _Job) -> AppendError:
    return AppendError(
        job.position, "signature", "sig.ed25519", f"signature does not verify with key {job.key!r}"
    )


class Ledger(LedgerReader):
    """An open ledger file: the reader, plus appends and checkpoints. Use `Ledger.create` once,
    then `Ledger.open`."""

    def __init__(
        self, path: Path, conn: sqlite3.Connection, signer: Signer | None, *, writable: bool = True
    ) -> None:
        super().__init__(path, conn)
        self._writable = writable
        self._wrote = False  # whether this connection committed anything (close then checkpoints)
        self.check_format()
        self.vocabulary: Vocabulary = load_vocabulary(self.vocabulary_name)
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
            return cls(path, conn, signer, writable=not readonly)
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{path}: {exc}") from exc

    def close(self) -> None:
        """Closes the file; a writer first folds the WAL into the database file, so that the file
        alone holds every committed entry (a copy of it is a complete ledger)."""
        if self._writable and self._wrote:
            self.checkpoint_wal()
        super().close()

    def checkpoint_wal(self) -> bool:
        """`PRAGMA wal_checkpoint(TRUNCATE)`: True when the whole WAL is now in the database file
        (False when a reader elsewhere kept part of it; it is folded in later)."""
        # Wait a little for readers elsewhere, not the 30 s an append would.
        self._conn.execute("PRAGMA busy_timeout=2000")
        try:
            busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error:
            return False
        finally:
            self._conn.execute("PRAGMA busy_timeout=30000")
        return bool(busy == 0)

    def keys(self) -> dict[str, KeyRecord]:
        """Writers' keys as of the end of the ledger (kept up to date by appends)."""
        return dict(self._state.keys)

    # -- writing -----------------------------------------------------------

    def sign_checkpoint(self, *, now: datetime) -> StoredCheckpoint:
        """Signs a checkpoint of the current size (or returns the one already signed for it)."""
        signer = self._require_signer()
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            size = self.size
            root = self.root(size)
            note = Checkpoint(self.origin, size, root).sign(signer)
            self._conn.execute(
                "INSERT OR IGNORE INTO checkpoints (size, root, note, signed_at) VALUES (?, ?, ?, ?)",
                (size, root, note, format_time(now)),
            )
            self._conn.execute("COMMIT")
            self._wrote = True
        except BaseException:
            self._rollback()
            raise
        return self._stored_checkpoint(note)

    def add_cosigned_checkpoint(self, note: str, *, now: datetime) -> StoredCheckpoint:
        """Stores a checkpoint this ledger signed, now carrying witnesses' cosignatures, as a new row.

        The table stays append-only: the cosigned note is another row for the same
        size and root, and the newest row for a size is the one to use.
        """
        checkpoint = open_checkpoint(note, self.verifier)
        if checkpoint.origin != self.origin or checkpoint.root != self.root(checkpoint.size):
            raise LedgerError(f"the checkpoint of size {checkpoint.size} is not this ledger's")
        self._conn.execute(
            "INSERT OR IGNORE INTO checkpoints (size, root, note, signed_at) VALUES (?, ?, ?, ?)",
            (checkpoint.size, checkpoint.root, note, format_time(now)),
        )
        return self._stored_checkpoint(note)

    def _stored_checkpoint(self, note: str) -> StoredCheckpoint:
        stored = self.checkpoint_of_note(note)
        assert stored is not None  # just committed
        return stored

    def append(self, submissions: Iterable[Submission], *, now: datetime) -> list[Appended]:
        """Appends a batch, all or nothing; raises AppendError naming the first bad event."""
        (outcome,) = self.append_groups([list(submissions)], now=now)
        if isinstance(outcome, AppendError):
            raise outcome
        return outcome

    def append_groups(
        self, groups: Sequence[Sequence[Submission]], *, now: datetime
    ) -> list[list[Appended] | AppendError]:
        """Appends several batches in one transaction (one fsync): each all or nothing on its own.

        This is group commit for the service: one request's bad event fails that
        request alone, and the others are written.
        """
        received = format_time(now)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._refresh()
            outcomes, state, rows, nodes = self._stage_groups(groups, received)
            if rows:
                self._conn.executemany(
                    "INSERT INTO entries (idx, id, type, at, actor, case_ref, received, key, leaf,"
                    " leaf_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._conn.executemany("INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
            self._conn.execute("COMMIT")
            self._wrote = True
        except BaseException:
            self._rollback()
            raise
        state.ids = {}
        self._state = state
        return outcomes

    def _copy_state(self, state: _State) -> _State:
        return _State(state.size, state.prev, state.edge.copy(), dict(state.keys), dict(state.ids))

    def _stage_groups(
        self, groups: Sequence[Sequence[Submission]], received: str
    ) -> tuple[
        list[list[Appended] | AppendError], _State, list[tuple[Any, ...]], list[tuple[int, int, bytes]]
    ]:
        """Checks and chains the groups in memory, in two passes.

        Pass 1 validates, assigns indexes and tracks keys, and collects the
        Ed25519 work (signing with the ledger's key, or checking a writer's
        signature); that work is then done on all cores; a group with a bad
        signature is dropped and pass 1 runs again without it (indexes shift);
        pass 2 takes the signatures in order and builds the leaves, chain and tree.
        """
        ids = [item.event.get("id") for items in groups for item in items if isinstance(item.event, dict)]
        # An id that is not valid Unicode cannot even be looked up; its request fails alone, below.
        stored_ids = self.events_by_id(i for i in ids if isinstance(i, str) and is_unicode(i))
        failed: dict[int, AppendError] = {}
        cache: dict[tuple[bytes, bytes | None, bytes], bytes | None] = {}
        while True:
            state = self._copy_state(self._state)
            crypto = _Crypto(self._signer, cache)
            staged: list[tuple[int, int, int, dict[str, Any], bytes, str]] = []
            duplicates: list[tuple[int, int, int]] = []  # group, position, index it repeats
            for group, items in enumerate(groups):
                if group in failed:
                    continue
                saved, mark, staged_mark, dup_mark = (
                    self._copy_state(state),
                    crypto.mark(),
                    len(staged),
                    len(duplicates),
                )
                crypto.group = group
                try:
                    for position, item in enumerate(items):
                        try:
                            self._stage_one(
                                group, position, item, state, stored_ids, staged, duplicates, crypto, received
                            )
                        except AppendError:
                            crypto.raise_first_failure(since=mark, before=position)
                            raise
                        except LedgerError:  # the caller's mistake (no signing key): not per request
                            raise
                        except Exception as unexpected:  # a bug must fail this request, not the group
                            raise AppendError(
                                position,
                                "server",
                                "event",
                                f"the ledger could not process this event ({type(unexpected).__name__})",
                            ) from unexpected
                except AppendError as exc:
                    failed[group] = exc
                    state = saved
                    crypto.drop_from(mark)
                    del staged[staged_mark:]
                    del duplicates[dup_mark:]
            bad = crypto.first_failures()
            if not bad:
                break
            failed.update(bad)
        rows: list[tuple[Any, ...]] = []
        nodes: list[tuple[int, int, bytes]] = []
        results: dict[tuple[int, int], Appended] = {}
        for (group, position, index, event, message, key_ref), signature in zip(
            staged, crypto.signatures(), strict=True
        ):
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
            results[(group, position)] = Appended(index, digest, True)
        staged_hash = {a.index: a.leaf_hash for a in results.values()}
        for group, position, index in duplicates:
            digest = staged_hash[index] if index in staged_hash else self.node(0, index)
            results[(group, position)] = Appended(index, digest, False)
        outcomes: list[list[Appended] | AppendError] = [
            failed[g] if g in failed else [results[(g, p)] for p in range(len(items))]
            for g, items in enumerate(groups)
        ]
        return outcomes, state, rows, nodes

    def _stage_one(
        self,
        group: int,
        position: int,
        item: Submission,
        state: _State,
        stored_ids: dict[str, tuple[int, bytes]],
        staged: list[tuple[int, int, int, dict[str, Any], bytes, str]],
        duplicates: list[tuple[int, int, int]],
        crypto: _Crypto,
        received: str,
    ) -> None:
        event = item.event
        event_bytes = item.canonical if item.canonical is not None else self._checked_bytes(event, position)
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
            duplicates.append((group, position, index))
            return
        index = state.size
        key_ref = self._queue_signature(position, item, event, event_bytes, state, index, crypto)
        # The leaf is the event plus a fixed-shape envelope; its length is known before signing.
        length = len(event_bytes) + len(build_leaf(b"", index, ZERO_HASH, received, key_ref, bytes(64)))
        if length > MAX_LEAF_BYTES:
            raise AppendError(
                position,
                "too_large",
                "event",
                f"the entry would be {length:,} bytes; an entry holds at most {MAX_LEAF_BYTES:,}"
                " (C2SP tlog-tiles)",
            )
        if event["type"] in KEY_EVENT_TYPES:
            try:
                record = parse_key_event(event, index, state.keys)
            except ValueError as exc:
                raise AppendError(position, "invalid", "data.key", str(exc)) from exc
            state.keys[record.key] = record
        staged.append((group, position, index, event, event_bytes, key_ref))
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
        if item.verified_with == public_key and item.canonical == event_bytes:
            crypto.verified(position, event_bytes, public_key, signature, key_ref)
        else:
            crypto.verify(position, event_bytes, public_key, signature, key_ref)
        return key_ref

    def _checked_bytes(self, event: Any, position: int) -> bytes:
        """The event's RFC 8785 bytes once it fits the vocabulary, or AppendError (invalid)."""
        try:
            self.vocabulary.validate(event)
            return canonicalize_validated(event)
        except EventError as exc:
            raise AppendError(position, "invalid", exc.field, exc.message) from exc
        except CanonicalError as exc:
            raise AppendError(position, "invalid", "event", str(exc)) from exc

    def prepare(self, item: Submission, position: int = 0) -> Submission:
        """Everything about one submission that does not depend on the ledger's state, done
        before it reaches the writer (any thread): validation, RFC 8785 bytes, and the signature
        checked with the key as currently registered. Raises AppendError as `append` would; the
        writer still judges the key's validity at the index and the id."""
        event = item.event
        canonical = self._checked_bytes(event, position)
        if item.sig is None:
            return Submission(event, None, canonical)
        key = item.sig.key
        record = self._state.keys.get(key)
        public_key = (
            self.verifier.public_key if key == self.key_ref else record.public_key if record else None
        )
        if public_key is None:
            return Submission(event, item.sig, canonical)  # maybe registered by the time it is written
        try:
            signature = b64decode(item.sig.ed25519)
            nacl.signing.VerifyKey(public_key).verify(canonical, signature)
        except (NoteError, nacl.exceptions.BadSignatureError, ValueError) as exc:
            raise AppendError(
                position, "signature", "sig.ed25519", f"signature does not verify with key {key!r}"
            ) from exc
        return Submission(event, item.sig, canonical, public_key)

    def _rollback(self) -> None:
        # SQLite rolls back by itself on some errors (a full disk, an I/O error); a second
        # ROLLBACK would then raise "no transaction is active" and hide the real cause.
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

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
        try:
            keys = self.key_timeline(start=start, keys=keys)
        except KeyEventError as exc:  # a tampered file: one line to the user, never a traceback
            raise LedgerError(f"{self.path}: entry {exc.index}: {exc}; the ledger does not verify") from exc
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


__all__ = [
    "StorageError",
    "check_writable",
    "storage_error",
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
