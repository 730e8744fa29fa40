"""The one read side of a ledger file: every SELECT against its tables is here.

`LedgerReader` reads metadata, leaves by range, tree nodes, stored
checkpoints (the latest without loading the others) and the key timeline.
It trusts nothing it reads about *content*: the writer (`store.Ledger`,
a reader that also appends) relies on its own invariants, and the verifier
(`verify.py`) uses these reads to re-derive and check everything. Nothing
outside `ledger/` needs SQL against `meta`, `entries`, `tree_nodes` or
`checkpoints`.

Hashes of the tree (roots, leaf hashes, proof hashes) are bytes here; every
page and output shows them in base64, as checkpoints do (docs/verification.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Self

from . import merkle
from .keys import KEY_EVENT_TYPES, KeyRecord, replay
from .leaf import event_bytes
from .note import NoteError, Verifier
from .schema import FORMAT

ENTRY_COLUMNS = ("id", "type", "at", "actor", "case_ref", "received", "key")
_KEY_TYPES = tuple(sorted(KEY_EVENT_TYPES))


class LedgerError(Exception):
    """A ledger that cannot be opened or created as asked."""


class ReadError(Exception):
    """What was read does not hold together (a missing entry, leaves that miss the root)."""


@dataclass(frozen=True)
class StoredCheckpoint:
    seq: int
    size: int
    root: bytes
    note: str
    signed_at: str


def connect(path: Path | str, *, readonly: bool = False) -> sqlite3.Connection:
    # A Ledger is used by one thread at a time, but not always the one that opened it
    # (the service's writer thread), hence check_same_thread=False.
    if readonly:
        conn = sqlite3.connect(
            f"file:{Path(path)}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class LedgerReader:
    """Reads one ledger file. Opening checks nothing; `check_format` and the metadata
    properties raise LedgerError when the file is not a Kansa ledger."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(cls, path: Path | str) -> LedgerReader:
        """A read-only reader of the ledger at `path`; its format is checked."""
        path = Path(path)
        if not path.exists():
            raise LedgerError(f"no ledger at {path}")
        reader = cls(path, connect(path, readonly=True))
        try:
            reader.check_format()
        except BaseException:
            reader.close()
            raise
        return reader

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- metadata ----------------------------------------------------------------

    @cached_property
    def meta(self) -> dict[str, str]:
        """The `meta` table as it is (origin, contract, vkey, vocabulary, format, created)."""
        try:
            return {str(k): str(v) for k, v in self._conn.execute("SELECT key, value FROM meta")}
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path} is not a ledger: {exc}") from exc

    def check_format(self) -> None:
        if self.meta.get("format") != FORMAT:
            raise LedgerError(f"{self.path} is not a Kansa ledger ({FORMAT})")

    @cached_property
    def origin(self) -> str:
        return self._meta_value("origin")

    @cached_property
    def contract(self) -> str:
        return self.meta.get("contract", "")

    @cached_property
    def vocabulary_name(self) -> str:
        return self._meta_value("vocabulary")

    @cached_property
    def verifier(self) -> Verifier:
        """The ledger's own key as stored (a verifier should compare it with the one it trusts)."""
        try:
            return Verifier.parse(self._meta_value("vkey"))
        except NoteError as exc:
            raise LedgerError(f"{self.path}: bad verifier key: {exc}") from exc

    @property
    def key_ref(self) -> str:
        """How events signed by the ledger's own key name it."""
        return self.verifier.key_ref

    def _meta_value(self, name: str) -> str:
        value = self.meta.get(name)
        if value is None:
            raise LedgerError(f"{self.path}: meta has no {name}")
        return value

    # -- entries -----------------------------------------------------------------

    @property
    def size(self) -> int:
        """One past the highest index (a gap below it is the verifier's to find)."""
        row = self._conn.execute("SELECT max(idx) FROM entries").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def leaf(self, index: int) -> bytes:
        row = self._conn.execute("SELECT leaf FROM entries WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise IndexError(f"no entry {index}")
        return str(row[0]).encode("utf-8")

    def leaves(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, bytes, bytes]]:
        """(index, leaf bytes, stored leaf hash) in index order."""
        stop = self.size if stop is None else stop
        cursor = self._conn.execute(
            "SELECT idx, CAST(leaf AS BLOB), leaf_hash FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, stop),
        )
        for idx, leaf, digest in cursor:
            yield idx, bytes(leaf), bytes(digest)

    def rows(self, start: int, stop: int) -> Iterator[tuple[object, ...]]:
        """Entries [start, stop) exactly as stored, for the verifier:
        (idx, *ENTRY_COLUMNS, leaf, leaf_hash), with no conversion of any value."""
        return iter(
            self._conn.execute(
                f"SELECT idx, {', '.join(ENTRY_COLUMNS)}, leaf, leaf_hash FROM entries"
                " WHERE idx >= ? AND idx < ? ORDER BY idx",
                (start, stop),
            )
        )

    def leaves_of_type(
        self,
        types: Iterable[str],
        *,
        start: int = 0,
        stop: int | None = None,
        at_from: str | None = None,
        newest_first: bool = False,
    ) -> Iterator[tuple[int, bytes]]:
        """(index, leaf bytes) of the entries whose type column is one of `types` (and whose `at`
        column is `at_from` or later, compared as text: give it in the writer's own format).

        The type and at columns are copies for browsing: a verifier checks them against the leaf.
        """
        wanted = sorted(set(types))
        where = f"type IN ({', '.join('?' * len(wanted))}) AND idx >= ?"
        params: list[object] = [*wanted, start]
        if stop is not None:
            where += " AND idx < ?"
            params.append(stop)
        if at_from is not None:
            where += " AND at >= ?"
            params.append(at_from)
        order = "DESC" if newest_first else ""
        cursor = self._conn.execute(
            f"SELECT idx, CAST(leaf AS BLOB) FROM entries WHERE {where} ORDER BY idx {order}", params
        )
        for idx, leaf in cursor:
            yield idx, bytes(leaf)

    def entry_by_id(self, event_id: str) -> tuple[int, bytes] | None:
        """(index, leaf hash) of the entry holding the event with this id, if any."""
        row = self._conn.execute("SELECT idx, leaf_hash FROM entries WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def events_by_id(self, ids: Iterable[object]) -> dict[str, tuple[int, bytes]]:
        """The entries holding any of these ids: id -> (index, the event's RFC 8785 bytes)."""
        wanted = [i for i in set(ids) if isinstance(i, str)]
        found: dict[str, tuple[int, bytes]] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            rows = self._conn.execute(
                f"SELECT id, idx, CAST(leaf AS BLOB) FROM entries WHERE id IN ({', '.join('?' * len(part))})",
                part,
            )
            for event_id, idx, leaf in rows:
                found[event_id] = (int(idx), event_bytes(bytes(leaf)))
        return found

    def checked_leaves(self, size: int, root: bytes) -> Iterator[tuple[int, bytes]]:
        """(index, leaf) of entries [0, size); after the last, raises ReadError unless they are
        all there and hash to `root` (a checkpoint's). Consume it to the end.

        This proves the leaves are the ones the checkpoint signed, without a full
        verification (signatures, columns and stored nodes are the verifier's).
        """
        hashes: list[bytes] = []
        rows = self._conn.execute(
            "SELECT idx, CAST(leaf AS BLOB) FROM entries WHERE idx < ? ORDER BY idx", (size,)
        )
        for idx, leaf in rows:
            if idx != len(hashes):
                raise ReadError(f"entry {len(hashes)} is missing")
            hashes.append(merkle.leaf_hash(leaf))
            yield idx, leaf
        if len(hashes) != size or merkle.root_of(hashes) != root:
            raise ReadError("the entries do not match the checkpoint's root")

    # -- the tree ----------------------------------------------------------------

    def find_node(self, level: int, index: int) -> bytes | None:
        """A stored node (level 0: a leaf hash), or None."""
        if level == 0:
            row = self._conn.execute("SELECT leaf_hash FROM entries WHERE idx = ?", (index,)).fetchone()
        else:
            row = self._conn.execute(
                "SELECT hash FROM tree_nodes WHERE level = ? AND idx = ?", (level, index)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def node(self, level: int, index: int) -> bytes:
        found = self.find_node(level, index)
        if found is None:
            raise merkle.ProofError(f"tree node ({level}, {index}) is missing")
        return found

    def nodes(self, level: int, first: int, stop: int) -> list[tuple[int, bytes]]:
        """Stored nodes of `level` (>= 1) with first <= index < stop, as (index, hash)."""
        rows = self._conn.execute(
            "SELECT idx, hash FROM tree_nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx",
            (level, first, stop),
        )
        return [(int(i), bytes(h)) for i, h in rows]

    def count_nodes(self, level: int, first: int) -> tuple[int, int | None]:
        """How many nodes `level` stores from index `first` on, and the highest index."""
        count, last = self._conn.execute(
            "SELECT count(*), max(idx) FROM tree_nodes WHERE level = ? AND idx >= ?", (level, first)
        ).fetchone()
        return int(count), None if last is None else int(last)

    def count_stray_nodes(self, top: int) -> int:
        """Nodes at impossible positions: level < 1 or > top, or a negative index."""
        stray = int(
            self._conn.execute(
                "SELECT count(*) FROM tree_nodes WHERE level < 1 OR level > ?", (top,)
            ).fetchone()[0]
        )
        # Negative indexes per level, by primary-key range: `OR idx < 0` above would scan the table.
        for level in range(1, top + 1):
            stray += int(
                self._conn.execute(
                    "SELECT count(*) FROM tree_nodes WHERE level = ? AND idx < 0", (level,)
                ).fetchone()[0]
            )
        return stray

    def node_reader(self) -> merkle.NodeReader:
        """`node`, remembering what it read (a proof reads some nodes more than once)."""
        cache: dict[tuple[int, int], bytes] = {}

        def read(level: int, index: int) -> bytes:
            if (level, index) not in cache:
                cache[(level, index)] = self.node(level, index)
            return cache[(level, index)]

        return read

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        self._check_size(size)
        return merkle.root_hash(self.node_reader(), size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        return merkle.inclusion_proof(self.node_reader(), index, size)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        self._check_size(new)
        return merkle.consistency_proof(self.node_reader(), old, new)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise merkle.ProofError(f"the ledger has {self.size} entries, not {size}")

    # -- checkpoints -------------------------------------------------------------

    _CHECKPOINT = "SELECT seq, size, root, note, signed_at FROM checkpoints"

    def checkpoints(self) -> list[StoredCheckpoint]:
        return [_stored(row) for row in self._conn.execute(f"{self._CHECKPOINT} ORDER BY seq")]

    def latest_checkpoint(self, *, max_size: int | None = None) -> StoredCheckpoint | None:
        """The largest checkpoint (of those covering at most `max_size` entries), in its newest row:
        witnesses' cosignatures come as later rows for the same size. One row is read."""
        if max_size is None:
            row = self._conn.execute(f"{self._CHECKPOINT} ORDER BY size DESC, seq DESC LIMIT 1").fetchone()
        else:
            row = self._conn.execute(
                f"{self._CHECKPOINT} WHERE size <= ? ORDER BY size DESC, seq DESC LIMIT 1", (max_size,)
            ).fetchone()
        return None if row is None else _stored(row)

    def checkpoint_of_note(self, note: str) -> StoredCheckpoint | None:
        row = self._conn.execute(f"{self._CHECKPOINT} WHERE note = ?", (note,)).fetchone()
        return None if row is None else _stored(row)

    def checkpoint_count(self) -> int:
        """Checkpoints signed, one per tree size: a witness's cosigned note is a later row of the
        same size, not another checkpoint."""
        return int(self._conn.execute("SELECT count(DISTINCT size) FROM checkpoints").fetchone()[0])

    def last_checkpoint_seq(self) -> int:
        """The newest checkpoint row's number (0 if none): it changes whenever a checkpoint or a
        witness's cosigned note is stored, so what is computed from the checkpoints can be kept
        until it does."""
        return int(self._conn.execute("SELECT coalesce(max(seq), 0) FROM checkpoints").fetchone()[0])

    def checkpoint_sizes(self) -> set[int]:
        return {int(row[0]) for row in self._conn.execute("SELECT size FROM checkpoints")}

    # -- keys --------------------------------------------------------------------

    def key_events(self, *, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
        return self.leaves_of_type(_KEY_TYPES, start=start, stop=stop)

    def key_timeline(
        self, *, stop: int | None = None, start: int = 0, keys: dict[str, KeyRecord] | None = None
    ) -> dict[str, KeyRecord]:
        """Writers' keys as of entry `stop` (default: all), replaying key events from `start` onto `keys`.

        Raises keys.KeyEventError at a key event that cannot be replayed.
        """
        return replay(self.key_events(start=start, stop=stop), {} if keys is None else keys)


def _stored(row: tuple[int, int, bytes, str, str]) -> StoredCheckpoint:
    seq, size, root, note, signed_at = row
    return StoredCheckpoint(int(seq), int(size), bytes(root), str(note), str(signed_at))


__all__ = [
    "ENTRY_COLUMNS",
    "LedgerError",
    "LedgerReader",
    "ReadError",
    "StoredCheckpoint",
    "connect",
]
