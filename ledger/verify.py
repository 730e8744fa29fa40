"""Checking a ledger file without trusting whoever wrote it.

`verify_ledger` re-derives everything from the leaves: each leaf's hash and
canonical form, the chain link to the previous leaf, the event against the
vocabulary (optionally), the signature against the key valid at that index, every browsing
column, every stored tree node, and every stored checkpoint's signature and
root. It stops at the first bad index and says why.

Signature checks dominate the cost, so entries are checked in aligned chunks of
2**CHUNK_LEVEL by one worker process per core; the parent folds the chunks'
subtree roots into the tree in order and checks what spans chunks.

`verify_since` starts from a checkpoint the caller trusts (its signature is
checked): the stored tree must reproduce that checkpoint's root, and only the
entries after it are checked one by one, plus a consistency proof to the end.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing

from . import merkle
from .canonical import CanonicalError
from .checkpoint import Checkpoint, CheckpointError, open_checkpoint
from .keys import KeyEventError, KeyRecord
from .leaf import KEY_EVENT_TYPES, ZERO_HASH, case_of, event_bytes, parse_leaf
from .note import NoteError, Verifier, b64decode, b64encode
from .reader import ENTRY_COLUMNS, LedgerError, LedgerReader, connect
from .schema import FORMAT
from .vocabulary import EventError, Vocabulary, load_vocabulary

CHUNK_LEVEL = 13
CHUNK = 1 << CHUNK_LEVEL
_COLUMNS = ENTRY_COLUMNS

Progress = Callable[[int, int], None]


class Bad(Exception):
    """The first thing found wrong, at `index` (None when no entry can be named)."""

    def __init__(self, index: int | None, reason: str) -> None:
        super().__init__(reason)
        self.index = index
        self.reason = reason


class Unchecked(Exception):
    """The file could not be read as a ledger (missing, unreadable, not a database, I/O error):
    nothing can be said about its integrity either way."""


@dataclass
class Report:
    """`ok` says whether everything holds; `checked` is False when the file could not even be
    read (exit 2 in the CLI), as opposed to a ledger that fails verification (exit 1)."""

    ok: bool
    size: int
    root: bytes | None = None
    checkpoints: int = 0
    entries_checked: int = 0
    bad_index: int | None = None
    reason: str = ""
    trusted: Checkpoint | None = None
    notes: list[str] = field(default_factory=list)
    checked: bool = True
    latest_note: str | None = None  # the newest stored checkpoint, verified (where to start next time)

    @property
    def exit_code(self) -> int:
        """0 everything holds, 1 the ledger fails verification, 2 it could not be checked
        (docs/verification.md, as PolicyReport.exit_code)."""
        return 0 if self.ok else 1 if self.checked else 2

    def summary(self) -> str:
        if not self.checked:
            return f"COULD NOT CHECK: {self.reason}"
        if not self.ok:
            where = f"index {self.bad_index}" if self.bad_index is not None else "the ledger"
            return f"FAILED at {where}: {self.reason}"
        root = b64encode(self.root) if self.root is not None else "-"
        start = f" since checkpoint of size {self.trusted.size}" if self.trusted else ""
        return (
            f"OK: {self.size} entries{start} ({self.entries_checked} checked): chain, signatures,"
            f" columns, tree and {self.checkpoints} checkpoint(s) hold; root {root}"
        )


@dataclass(frozen=True)
class _Context:
    path: str
    vocabulary: str
    ledger_key: str
    ledger_public: bytes
    keys: tuple[KeyRecord, ...]
    check_events: bool


# -- the per-chunk work (runs in worker processes) ----------------------------

_worker: dict[str, Any] = {}


def _init_worker(ctx: _Context) -> None:
    _worker["ctx"] = ctx
    _worker["reader"] = LedgerReader(Path(ctx.path), connect(ctx.path, readonly=True))
    _worker["vocabulary"] = load_vocabulary(ctx.vocabulary) if ctx.check_events else None
    verifiers: dict[str, tuple[nacl.signing.VerifyKey, KeyRecord | None]] = {
        ctx.ledger_key: (nacl.signing.VerifyKey(ctx.ledger_public), None)
    }
    for record in ctx.keys:
        verifiers[record.key] = (nacl.signing.VerifyKey(record.public_key), record)
    _worker["verifiers"] = verifiers


def _check_chunk(lo: int, hi: int) -> tuple[bytes, tuple[int, str] | None]:
    """Checks entries [lo, hi); returns their leaf hashes and the first problem, if any."""
    try:
        return _check_entries(lo, hi), None
    except Bad as bad:
        return b"", (bad.index if bad.index is not None else lo, bad.reason)


def _check_entries(lo: int, hi: int) -> bytes:
    reader: LedgerReader = _worker["reader"]
    vocabulary: Vocabulary | None = _worker["vocabulary"]
    verifiers = _worker["verifiers"]
    ledger_key = _worker["ctx"].ledger_key
    prev = ZERO_HASH
    if lo > 0:
        try:
            prev = merkle.leaf_hash(reader.leaf(lo - 1))
        except IndexError as exc:
            raise Bad(lo - 1, f"entry {lo - 1} is missing") from exc
    hashes = []
    expected = lo
    for row in reader.rows(lo, hi):
        index = row[0]
        if index != expected:
            raise Bad(expected, f"entry {expected} is missing (rows deleted or renumbered)")
        expected += 1
        if type(row[8]) is not str:
            raise Bad(index, "the leaf column is not text")
        leaf = str(row[8]).encode("utf-8")
        digest = merkle.leaf_hash(leaf)
        if row[9] != digest:
            raise Bad(index, "leaf_hash column does not match the hash of the leaf")
        try:
            value = parse_leaf(leaf)
        except (ValueError, CanonicalError) as exc:
            raise Bad(index, f"malformed leaf: {exc}") from exc
        if value["index"] != index:
            raise Bad(index, f"the leaf says index {value['index']} (rows reordered?)")
        if value["prev"] != b64encode(prev):
            raise Bad(index, "chain broken: prev is not the hash of the previous leaf")
        event = value["event"]
        if vocabulary is not None:
            try:
                vocabulary.validate(event)
            except EventError as exc:
                raise Bad(index, f"event does not fit the vocabulary: {exc}") from exc
        key = value["sig"]["key"]
        known = verifiers.get(key)
        if known is None:
            raise Bad(index, f"signed by unknown key {key!r}")
        verifier, record = known
        if record is not None and not record.valid_at(index):
            raise Bad(index, f"signed by key {key!r}, which is not valid at this index")
        if event["type"] in KEY_EVENT_TYPES and key != ledger_key:
            raise Bad(index, "a key event not signed by the ledger's own key")
        try:
            signature = b64decode(value["sig"]["ed25519"])
        except NoteError as exc:
            raise Bad(index, f"bad signature encoding: {exc}") from exc
        try:
            verifier.verify(event_bytes(leaf), signature)
        except (nacl.exceptions.BadSignatureError, ValueError) as exc:
            raise Bad(index, f"signature by {key!r} does not verify") from exc
        columns = (
            event["id"],
            event["type"],
            event["at"],
            event["actor"],
            case_of(event),
            value["received"],
            key,
        )
        for name, stored, actual in zip(_COLUMNS, row[1:8], columns, strict=True):
            if stored != actual:
                raise Bad(index, f"column {name} says {stored!r} but the signed leaf says {actual!r}")
        hashes.append(digest)
        prev = digest
    if expected != hi:
        raise Bad(expected, f"entry {expected} is missing")
    _check_nodes_within(reader, lo, hashes)
    return b"".join(hashes)


def _check_nodes_within(reader: LedgerReader, lo: int, hashes: list[bytes]) -> None:
    """Compares the stored interior nodes that lie wholly inside [lo, lo + len(hashes))."""
    hi = lo + len(hashes)
    level_hashes, first = hashes, lo  # nodes of the current level, and the index of the first
    level = 0
    while True:
        # Nodes of level+1 inside the range: children must both be present in this level.
        start = -(-first // 2) * 2  # first even index at this level
        offset = start - first
        parents = [
            merkle.node_hash(level_hashes[i], level_hashes[i + 1])
            for i in range(offset, len(level_hashes) - 1, 2)
        ]
        level += 1
        if not parents:
            return
        first = start // 2
        stored = reader.nodes(level, first, first + len(parents))
        for k, computed in enumerate(parents):
            idx = first + k
            if k >= len(stored) or stored[k][0] != idx:
                raise Bad(min((idx + 1) << level, hi) - 1, f"tree node ({level}, {idx}) is missing")
            if stored[k][1] != computed:
                raise Bad(
                    min((idx + 1) << level, hi) - 1,
                    f"stored tree node ({level}, {idx}) does not match the leaves",
                )
        level_hashes = parents


# -- the parent's side ---------------------------------------------------------


@dataclass
class _Ledger:
    path: Path
    reader: LedgerReader
    origin: str
    verifier: Verifier
    vocabulary: str
    size: int


def _open(path: Path, vkey: str | None) -> _Ledger:
    if not path.is_file():
        raise Unchecked(f"no ledger at {path}")
    try:
        reader = LedgerReader(path, connect(path, readonly=True))
    except sqlite3.DatabaseError as exc:
        raise Unchecked(f"{path} is not a ledger: {exc}") from exc
    try:
        meta = reader.meta
    except LedgerError as exc:
        reader.close()
        raise Unchecked(str(exc)) from exc
    if meta.get("format") != FORMAT:
        raise Unchecked(f"{path} is not a Kansa ledger ({FORMAT})")
    try:
        stored = Verifier.parse(meta["vkey"])
        verifier = Verifier.parse(vkey) if vkey else stored
    except NoteError as exc:
        raise Bad(None, f"bad verifier key: {exc}") from exc
    if verifier != stored:
        raise Bad(None, "the ledger's stored verifier key is not the one given")
    if meta["origin"] != verifier.name:
        raise Bad(None, "the ledger's origin is not its key's name")
    # A gap below max(idx) is found, and named, by the chunk scan.
    return _Ledger(path, reader, meta["origin"], verifier, meta["vocabulary"], reader.size)


def _key_timeline(ledger: _Ledger, below: int) -> tuple[KeyRecord, ...]:
    try:
        return tuple(ledger.reader.key_timeline(stop=below).values())
    except KeyEventError as exc:  # a tampered type column is skipped: the chunk scan reports it
        raise Bad(exc.index, str(exc)) from exc


def _chunks(start: int, stop: int) -> Iterator[tuple[int, int]]:
    lo = start
    while lo < stop:
        hi = min((lo // CHUNK + 1) * CHUNK, stop)
        yield lo, hi
        lo = hi


def _scan(
    ledger: _Ledger,
    start: int,
    edge: merkle.CompactRange,
    keys: tuple[KeyRecord, ...],
    sizes_wanted: set[int],
    workers: int | None,
    progress: Progress | None,
    check_events: bool,
) -> dict[int, bytes]:
    """Checks entries [start, size) and extends `edge` to the end; returns roots at `sizes_wanted`."""
    ctx = _Context(
        str(ledger.path),
        ledger.vocabulary,
        ledger.verifier.key_ref,
        ledger.verifier.public_key,
        keys,
        check_events,
    )
    chunks = list(_chunks(start, ledger.size))
    roots: dict[int, bytes] = {}
    if edge.size in sizes_wanted:
        roots[edge.size] = edge.root()
    workers = workers or os.cpu_count() or 1
    done = 0

    def fold(lo: int, hi: int, hashes: bytes) -> None:
        nonlocal done
        aligned_full = hi - lo == CHUNK and lo % CHUNK == 0
        if aligned_full and not any(lo < s < hi for s in sizes_wanted):
            root = _chunk_root(hashes)
            for level, idx, digest in edge.append_node(CHUNK_LEVEL, root):
                _check_stored_node(ledger.reader, level, idx, digest, hi)
        else:
            for i in range(0, len(hashes), 32):
                for level, idx, digest in edge.append(hashes[i : i + 32]):
                    # Nodes inside the chunk were checked by the worker; this checks the rest.
                    if (idx << level) < lo:
                        _check_stored_node(ledger.reader, level, idx, digest, lo + i // 32)
                if edge.size in sizes_wanted:
                    roots[edge.size] = edge.root()
        if edge.size in sizes_wanted:
            roots[edge.size] = edge.root()
        done += hi - lo
        if progress is not None:
            progress(done, ledger.size - start)

    def in_process(todo: list[tuple[int, int]]) -> None:
        _init_worker(ctx)
        try:
            for lo, hi in todo:
                hashes, bad = _check_chunk(lo, hi)
                if bad is not None:
                    raise Bad(*bad)
                fold(lo, hi, hashes)
        finally:
            _worker.pop("reader").close()

    if len(chunks) <= 1 or workers == 1:
        in_process(chunks)
        return roots
    folded = 0
    try:
        with ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(ctx,)
        ) as pool:
            results = pool.map(_check_chunk, [c[0] for c in chunks], [c[1] for c in chunks])
            try:
                for (lo, hi), (hashes, bad) in zip(chunks, results, strict=True):
                    if bad is not None:
                        raise Bad(*bad)
                    fold(lo, hi, hashes)
                    folded += 1
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    except BrokenProcessPool:
        # Workers could not start (e.g. a __main__ that cannot be re-imported): go on here.
        in_process(chunks[folded:])
    return roots


def _chunk_root(hashes: bytes) -> bytes:
    level = [hashes[i : i + 32] for i in range(0, len(hashes), 32)]
    while len(level) > 1:
        level = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def _check_stored_node(reader: LedgerReader, level: int, idx: int, digest: bytes, at: int) -> None:
    found = reader.find_node(level, idx)
    if found is None:
        raise Bad(at - 1 if at else 0, f"tree node ({level}, {idx}) is missing")
    if found != digest:
        raise Bad(at - 1 if at else 0, f"stored tree node ({level}, {idx}) does not match the leaves")


def _check_node_count(ledger: _Ledger, since: int = 0) -> None:
    """Every perfect subtree of level >= 1 is stored once, and nothing else is. Counted per
    level by index range from `since` (a trusted size; 0 checks them all), so an incremental
    check reads only the new nodes instead of scanning the whole table."""
    size = ledger.size
    top = size.bit_length()
    stray = ledger.reader.count_stray_nodes(top)
    if stray:
        raise Bad(None, f"tree_nodes has {stray} rows at impossible positions")
    for level in range(1, top + 1):
        first = since >> level
        count, last = ledger.reader.count_nodes(level, first)
        expected = (size >> level) - first
        if last is not None and (last + 1) << level > size:
            raise Bad(
                size, f"truncated: tree nodes cover {(last + 1) << level} entries but only {size} remain"
            )
        if count != expected:
            raise Bad(
                None, f"tree_nodes level {level} has {count} rows from index {first} where {expected} belong"
            )


def _check_stored_checkpoints(ledger: _Ledger, roots: dict[int, bytes]) -> tuple[int, str | None]:
    stored = ledger.reader.checkpoints()
    for row in stored:
        try:
            checkpoint = open_checkpoint(row.note, ledger.verifier)
        except CheckpointError as exc:
            raise Bad(None, f"stored checkpoint #{row.seq}: {exc}") from exc
        if checkpoint.size != row.size or checkpoint.root != row.root:
            raise Bad(None, f"stored checkpoint #{row.seq}: its columns disagree with its signed note")
        _check_against(ledger, checkpoint, roots, f"stored checkpoint #{row.seq}")
    return len(stored), stored[-1].note if stored else None


def _check_against(ledger: _Ledger, checkpoint: Checkpoint, roots: dict[int, bytes], name: str) -> None:
    if checkpoint.origin != ledger.origin:
        raise Bad(None, f"{name} is for origin {checkpoint.origin!r}, not {ledger.origin!r}")
    if checkpoint.size > ledger.size:
        raise Bad(
            ledger.size,
            f"truncated: {name} covers {checkpoint.size} entries but entry {ledger.size} and after are gone",
        )
    if roots[checkpoint.size] != checkpoint.root:
        at = checkpoint.size - 1 if checkpoint.size else None
        raise Bad(
            at,
            f"history rewritten: the entries up to size {checkpoint.size} do not have"
            f" the root signed in {name}",
        )


def _read_note(ledger: _Ledger, note: str, what: str) -> Checkpoint:
    try:
        return open_checkpoint(note, ledger.verifier)
    except CheckpointError as exc:
        raise Bad(None, f"{what}: {exc}") from exc


def _stored_sizes(ledger: _Ledger) -> set[int]:
    return ledger.reader.checkpoint_sizes()


def verify_ledger(
    path: Path | str,
    *,
    checkpoint: str | None = None,
    vkey: str | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    check_events: bool = False,
) -> Report:
    """Full verification; `checkpoint` is a signed note the auditor kept, `vkey` the key they trust.

    `check_events` also checks every event against the ledger's vocabulary: that is
    about form, not integrity (whoever holds a valid key can sign well-formed lies),
    so it is optional and costs about a sixth more.
    """
    path = Path(path)
    size = 0
    opened: list[_Ledger] = []
    try:
        ledger = _open(path, vkey)
        opened.append(ledger)
        size = ledger.size
        kept = _read_note(ledger, checkpoint, "the given checkpoint") if checkpoint else None
        sizes = {s for s in _stored_sizes(ledger) if s <= ledger.size} | {ledger.size}
        if kept is not None and kept.size <= ledger.size:
            sizes.add(kept.size)
        keys = _key_timeline(ledger, ledger.size)
        roots = _scan(ledger, 0, merkle.CompactRange(), keys, sizes, workers, progress, check_events)
        if kept is not None:
            _check_against(ledger, kept, roots, "the given checkpoint")
        count, latest = _check_stored_checkpoints(ledger, roots)
        _check_node_count(ledger)
    except Bad as bad:
        return Report(False, size, bad_index=bad.index, reason=bad.reason)
    except (Unchecked, sqlite3.Error, OSError) as exc:
        return _unchecked(path, size, exc)
    finally:
        for each in opened:
            each.reader.close()
    return Report(
        True, ledger.size, roots[ledger.size], count + (kept is not None), ledger.size, latest_note=latest
    )


def _unchecked(path: Path, size: int, exc: Exception) -> Report:
    reason = str(exc) if isinstance(exc, Unchecked) else f"{path} could not be read: {exc}"
    return Report(False, size, reason=reason, checked=False)


def verify_since(
    path: Path | str,
    trusted: str,
    *,
    checkpoint: str | None = None,
    vkey: str | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    check_events: bool = False,
) -> Report:
    """Incremental verification from a checkpoint note the caller already trusts."""
    path = Path(path)
    size = 0
    opened: list[_Ledger] = []
    try:
        ledger = _open(path, vkey)
        opened.append(ledger)
        size = ledger.size
        base = _read_note(ledger, trusted, "the trusted checkpoint")
        if base.origin != ledger.origin:
            raise Bad(None, f"the trusted checkpoint is for origin {base.origin!r}")
        if base.size > ledger.size:
            raise Bad(ledger.size, f"truncated: the trusted checkpoint covers {base.size} entries")
        read = _reader(ledger.reader)
        edge = _trusted_edge(ledger, base, read)
        keys = _trusted_keys(ledger, base, read)
        kept = _read_note(ledger, checkpoint, "the given checkpoint") if checkpoint else None
        later = {s for s in _stored_sizes(ledger) if base.size <= s <= ledger.size} | {ledger.size}
        if kept is not None and base.size <= kept.size <= ledger.size:
            later.add(kept.size)
        roots = _scan(ledger, base.size, edge, keys, later, workers, progress, check_events)
        # Sizes before the trusted one are checked with consistency proofs to it.
        for s in _stored_sizes(ledger) | ({kept.size} if kept else set()):
            if 0 < s < base.size:
                roots[s] = merkle.root_hash(read, s)
                try:
                    merkle.verify_consistency(
                        s, base.size, roots[s], base.root, merkle.consistency_proof(read, s, base.size)
                    )
                except merkle.ProofError as exc:
                    raise Bad(s - 1, f"stored tree at size {s} is not consistent: {exc}") from exc
            elif s == 0:
                roots[0] = merkle.EMPTY_ROOT
        if base.size > 0 and ledger.size > base.size:
            proof = merkle.consistency_proof(read, base.size, ledger.size)
            try:
                merkle.verify_consistency(base.size, ledger.size, base.root, roots[ledger.size], proof)
            except merkle.ProofError as exc:
                raise Bad(ledger.size - 1, f"consistency proof from the trusted checkpoint: {exc}") from exc
        if kept is not None:
            _check_against(ledger, kept, roots, "the given checkpoint")
        count, latest = _check_stored_checkpoints(ledger, roots)
        _check_node_count(ledger, since=base.size)
    except Bad as bad:
        return Report(False, size, bad_index=bad.index, reason=bad.reason)
    except merkle.ProofError as exc:
        return Report(False, size, reason=f"stored tree: {exc}")
    except (Unchecked, sqlite3.Error, OSError) as exc:
        return _unchecked(path, size, exc)
    finally:
        for each in opened:
            each.reader.close()
    return Report(
        True,
        ledger.size,
        roots[ledger.size],
        count + (kept is not None),
        ledger.size - base.size,
        trusted=base,
        latest_note=latest,
    )


def _reader(reader: LedgerReader) -> merkle.NodeReader:
    def read(level: int, index: int) -> bytes:
        found = reader.find_node(level, index)
        if found is None:
            raise Bad(index << level, f"tree node ({level}, {index}) is missing")
        return found

    return read


def _trusted_edge(ledger: _Ledger, base: Checkpoint, read: merkle.NodeReader) -> merkle.CompactRange:
    hashes = [read(level, i) for level, i in merkle.perfect_subtrees(base.size)]
    edge = merkle.CompactRange(base.size, hashes)
    if edge.root() != base.root:
        raise Bad(
            base.size - 1 if base.size else None,
            "the stored tree does not reproduce the trusted checkpoint's root",
        )
    return edge


def _trusted_keys(ledger: _Ledger, base: Checkpoint, read: merkle.NodeReader) -> tuple[KeyRecord, ...]:
    """Key events before the checkpoint, each proved to be in the trusted tree."""
    for idx, leaf in ledger.reader.key_events(stop=base.size):
        try:
            merkle.verify_inclusion(
                idx,
                base.size,
                merkle.leaf_hash(leaf),
                merkle.inclusion_proof(read, idx, base.size),
                base.root,
            )
        except merkle.ProofError as exc:
            raise Bad(idx, f"key event is not in the trusted tree: {exc}") from exc
    if base.size:
        try:
            last = ledger.reader.leaf(base.size - 1)
        except IndexError as exc:
            raise Bad(base.size - 1, f"entry {base.size - 1} is missing") from exc
        try:
            merkle.verify_inclusion(
                base.size - 1,
                base.size,
                merkle.leaf_hash(last),
                merkle.inclusion_proof(read, base.size - 1, base.size),
                base.root,
            )
        except merkle.ProofError as exc:
            raise Bad(base.size - 1, f"the last trusted entry is not in the trusted tree: {exc}") from exc
    return _key_timeline(ledger, ledger.size)
