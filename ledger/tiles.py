"""The ledger as C2SP tlog-tiles: `checkpoint`, `tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`.

A tile at level L holds up to 256 hashes; hash i of tile N is the root of the
perfect subtree of 256**L leaves starting at leaf (N * 256 + i) * 256**L,
which is exactly the tree node (8 * L, N * 256 + i) the store keeps (level 0:
the leaf hashes). An entry bundle holds the leaves themselves, each prefixed
by its length as a big-endian uint16, so an entry is at most 65,535 bytes.

The same bytes are served by `kansa ledger serve` and written as static files
by `write_tiles` for any web server or object store: full tiles never change,
so the writer only adds the tiles completed since it last ran, the partial
tiles of the new size, and then (last) the checkpoint.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import CheckpointError, parse_body, parse_decimal
from .cosignature import split_note
from .leaf import MAX_LEAF_BYTES
from .merkle import NodeReader
from .note import NoteError
from .policy import Policy
from .reader import LedgerReader, StoredCheckpoint

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT

LeafReader = Callable[[int, int], Iterable[tuple[int, bytes]]]  # (start, stop) -> (index, leaf)


class TileError(ValueError):
    """A tile that cannot exist, or an entry that cannot be put in a bundle."""


@dataclass(frozen=True)
class Tile:
    """Tile `index` of `level` (None for an entry bundle), `width` hashes or entries wide."""

    level: int | None
    index: int
    width: int

    @property
    def path(self) -> str:
        where = "entries" if self.level is None else str(self.level)
        partial = "" if self.width == TILE_WIDTH else f".p/{self.width}"
        return f"tile/{where}/{encode_index(self.index)}{partial}"

    @property
    def start(self) -> int:
        """The first leaf (level 0 / entries) or node of level 8 * L the tile holds."""
        return self.index * TILE_WIDTH


def encode_index(index: int) -> str:
    """1234067 -> x001/x234/067: 3-digit path elements, all but the last prefixed with x."""
    if index < 0:
        raise TileError("a tile index is not negative")
    parts = []
    while True:
        parts.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    parts.reverse()
    return "/".join([*(f"x{p}" for p in parts[:-1]), parts[-1]])


def parse_tile_path(path: str) -> Tile:
    """`tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]` (without a leading slash)."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise TileError(f"not a tile path: {path!r}")
    where, rest = parts[1], parts[2:]
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        width_text = rest[-1]
        rest = [*rest[:-2], rest[-2][:-2]]
        width = _decimal(width_text, f"bad partial width in {path!r}")
        if not 1 <= width < TILE_WIDTH:
            raise TileError(f"bad partial width in {path!r}")
    digits = []
    for i, part in enumerate(rest):
        last = i == len(rest) - 1
        body = part if last else part.removeprefix("x")
        malformed = (not last and not part.startswith("x")) or len(body) != 3
        if malformed or not (body.isascii() and body.isdigit()):
            raise TileError(f"bad tile index in {path!r}")
        digits.append(body)
    index = int("".join(digits))
    if encode_index(index) != "/".join(rest):
        raise TileError(f"non-canonical tile index in {path!r}")
    if where == "entries":
        return Tile(None, index, width)
    level = _decimal(where, f"bad tile level in {path!r}")
    if level > 63:
        raise TileError(f"bad tile level in {path!r}")
    return Tile(level, index, width)


def _decimal(text: str, problem: str) -> int:
    try:
        return parse_decimal(text)
    except ValueError:
        raise TileError(problem) from None


def tiles_of(size: int, *, since: int = 0) -> Iterator[Tile]:
    """Every tile (hash tiles, then entry bundles) of a tree of `size` that one of `since` lacks.

    With since = 0 that is all of them: the full tiles and, per level, the partial
    one of width floor(size / 256**L) mod 256 when that is not zero.
    """
    hash_tiles = list(_hash_tiles(size, since))
    yield from hash_tiles
    yield from (Tile(None, t.index, t.width) for t in hash_tiles if t.level == 0)


def _hash_tiles(size: int, since: int) -> Iterator[Tile]:
    level = 0
    while size >> (TILE_HEIGHT * level):
        count = size >> (TILE_HEIGHT * level)  # hashes at this tile level
        old = since >> (TILE_HEIGHT * level)
        for index in range(old // TILE_WIDTH, count // TILE_WIDTH):
            yield Tile(level, index, TILE_WIDTH)
        if count % TILE_WIDTH and count != old:
            yield Tile(level, count // TILE_WIDTH, count % TILE_WIDTH)
        level += 1


def tile_bytes(tile: Tile, read: NodeReader, leaves: LeafReader, size: int) -> bytes:
    """The tile's content in a tree of `size` entries; TileError if the tree does not have it."""
    if tile.level is None:
        if (tile.start + tile.width) > size:
            raise TileError(f"{tile.path} is beyond the tree's {size} entries")
        return entry_bundle(leaves(tile.start, tile.start + tile.width))
    if (tile.start + tile.width) << (TILE_HEIGHT * tile.level) > size:
        raise TileError(f"{tile.path} is beyond the tree's {size} entries")
    level = TILE_HEIGHT * tile.level
    return b"".join(read(level, tile.start + i) for i in range(tile.width))


def entry_bundle(leaves: Iterable[tuple[int, bytes]]) -> bytes:
    out = bytearray()
    for index, leaf in leaves:
        if len(leaf) > MAX_LEAF_BYTES:
            raise TileError(
                f"entry {index} is {len(leaf):,} bytes: a tile entry holds at most {MAX_LEAF_BYTES:,}"
                " (it was written before the ledger limited leaf sizes)"
            )
        out += struct.pack(">H", len(leaf)) + leaf
    return bytes(out)


def parse_entry_bundle(data: bytes) -> list[bytes]:
    entries, offset = [], 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise TileError("truncated entry bundle")
        (length,) = struct.unpack(">H", data[offset : offset + 2])
        if offset + 2 + length > len(data):
            raise TileError("truncated entry bundle")
        entries.append(data[offset + 2 : offset + 2 + length])
        offset += 2 + length
    return entries


@dataclass(frozen=True)
class Written:
    size: int
    previous: int
    files: int


def _published_size(directory: Path) -> int:
    try:
        text, _ = split_note((directory / "checkpoint").read_text(encoding="utf-8"))
        return parse_body(text).size
    except FileNotFoundError:
        return 0
    except (NoteError, CheckpointError, UnicodeDecodeError) as exc:
        raise TileError(f"{directory / 'checkpoint'} is not a checkpoint: {exc}") from exc


def _write(path: Path, data: bytes, *, durable: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def write_tiles(directory: Path | str, note: str, read: NodeReader, leaves: LeafReader) -> Written:
    """Writes the tiles of the tree the checkpoint `note` covers, then the checkpoint itself.

    Tiles already published for the size in DIR/checkpoint are not rewritten; a
    checkpoint smaller than the published one is refused (the log would shrink).
    """
    directory = Path(directory)
    try:
        text, _ = split_note(note)
        size = parse_body(text).size
    except (NoteError, CheckpointError) as exc:
        raise TileError(f"not a checkpoint: {exc}") from exc
    previous = _published_size(directory)
    if size < previous:
        raise TileError(f"{directory} already publishes size {previous}; refusing to go back to {size}")
    files = 0
    for tile in tiles_of(size, since=previous):
        _write(directory / tile.path, tile_bytes(tile, read, leaves, size), durable=False)
        files += 1
    # One sync for all the tiles (an fsync per file cost 5 ms each), then the checkpoint:
    # a reader never sees a checkpoint whose tiles could be lost in a crash.
    os.sync()
    _write(directory / "checkpoint", note.encode("utf-8"), durable=True)
    return Written(size, previous, files + 1)


def ledger_readers(ledger: LedgerReader) -> tuple[NodeReader, LeafReader]:
    """Readers over a ledger; leaf hashes are read a tile at a time (one query, not 256)."""
    cached: dict[int, bytes] = {}

    def read(level: int, index: int) -> bytes:
        if level != 0:
            return ledger.node(level, index)
        if index not in cached:
            cached.clear()
            start = index - index % TILE_WIDTH
            cached.update((i, digest) for i, _, digest in ledger.leaves(start, start + TILE_WIDTH))
        if index not in cached:
            return ledger.node(0, index)  # raises: no such entry
        return cached[index]

    def leaves(start: int, stop: int) -> Iterator[tuple[int, bytes]]:
        return ((index, leaf) for index, leaf, _ in ledger.leaves(start, stop))

    return read, leaves


def published_checkpoint(ledger: LedgerReader, policy: Policy | None) -> StoredCheckpoint | None:
    """The latest checkpoint (newest row of the largest size); with a policy, the latest that is
    *published*: whose newest row carries the policy's quorum of cosignatures."""
    if policy is None:
        return ledger.latest_checkpoint()
    # Newest first, stopping at the first that meets the quorum: GET /checkpoint asks this on
    # every request, and checking the signatures of every stored row cost 0.6 s at 3,000 rows.
    newest_first = sorted(ledger.checkpoints(), key=lambda row: (row.size, row.seq), reverse=True)
    return next((row for row in newest_first if _meets(policy, row.note)), None)


def write_ledger_tiles(
    ledger: LedgerReader, directory: Path | str, *, policy: Policy | None = None
) -> Written:
    """`kansa ledger tiles`: the ledger's tiles up to its published checkpoint (with its cosignatures)."""
    latest = published_checkpoint(ledger, policy)
    if latest is None:
        wanted = "with the policy's quorum of cosignatures " if policy is not None else ""
        raise TileError(f"the ledger has no checkpoint {wanted}yet (kansa ledger checkpoint)")
    read, leaves = ledger_readers(ledger)
    return write_tiles(directory, latest.note, read, leaves)


def _meets(policy: Policy, note: str) -> bool:
    try:
        return policy.check(note).met
    except (NoteError, CheckpointError):
        return False
