"""C2SP tlog-tiles: Tessera's golden log byte for byte, the spec's tile counts, the ledger's tiles."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from conftest import NOW, VECTORS, event
from processes import EXE

from ledger import CompactRange, Ledger, Submission, leaf_hash
from ledger.merkle import root_of
from ledger.tiles import (
    Tile,
    TileError,
    encode_index,
    parse_entry_bundle,
    parse_tile_path,
    tile_bytes,
    tiles_of,
    write_tiles,
)

TESSERA = VECTORS / "tessera-log"
# transparency-dev/tessera testdata/build_log.sh: the golden log's entries, in order.
WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eit", "nain", "ten", "ileven", "twelf")
ENTRIES = [e.encode() for e in (*WORDS, "threeten", "fourten", "fivten")]


class MemoryTree:
    """Node and leaf readers over leaves held in memory (what a ledger's store provides)."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves
        self.nodes: dict[tuple[int, int], bytes] = {}
        edge = CompactRange()
        for i, leaf in enumerate(leaves):
            self.nodes[(0, i)] = leaf_hash(leaf)
            for level, index, digest in edge.append(leaf_hash(leaf)):
                self.nodes[(level, index)] = digest

    def read(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]

    def read_leaves(self, start: int, stop: int) -> list[tuple[int, bytes]]:
        return [(i, self.leaves[i]) for i in range(start, stop)]


def test_index_paths_as_the_spec_writes_them() -> None:
    assert encode_index(1234067) == "x001/x234/067"
    assert encode_index(0) == "000" and encode_index(1000) == "x001/000"
    assert Tile(0, 1234067, 256).path == "tile/0/x001/x234/067"
    assert Tile(None, 3, 17).path == "tile/entries/003.p/17"
    for tile in (Tile(2, 1234067, 256), Tile(None, 0, 1), Tile(63, 5, 255)):
        assert parse_tile_path(tile.path) == tile
    bad_paths = ["tile/0/1", "tile/0/x1/000", "tile/0/000.p/256", "tile/0/000.p/0", "tile/64/000"]
    for bad in (*bad_paths, "tile/00/000", "tile/0/001/002", "tile/0/x000/001"):
        with pytest.raises(TileError):
            parse_tile_path(bad)
    # digits str.isdigit() takes but int() refuses (the service answered 500 for them)
    for bad in ("tile/²/000", "tile/0/000.p/²", "tile/0/x²²²/000", "tile/entries/²²²"):
        with pytest.raises(TileError):
            parse_tile_path(bad)


def test_the_spec_example_tree_of_70000() -> None:
    tiles = list(tiles_of(70_000))
    level0 = [t for t in tiles if t.level == 0]
    assert len([t for t in level0 if t.width == 256]) == 273 and level0[-1] == Tile(0, 273, 112)
    assert [t for t in tiles if t.level == 1] == [Tile(1, 0, 256), Tile(1, 1, 17)]
    assert [t for t in tiles if t.level == 2] == [Tile(2, 0, 1)]
    assert [t for t in tiles if t.level is None] == [Tile(None, t.index, t.width) for t in level0]
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile of width 1"
    assert [t for t in tiles_of(256) if t.level is not None] == [Tile(0, 0, 256), Tile(1, 0, 1)]
    # Incremental: from 65,536 to 70,000 only what changed.
    assert Tile(1, 0, 256) not in list(tiles_of(70_000, since=65_536))
    assert Tile(1, 1, 17) in list(tiles_of(70_000, since=65_536))


def test_tessera_golden_log_tiles_byte_for_byte() -> None:
    tree = MemoryTree(ENTRIES)
    for size in range(1, 16):
        level0 = tile_bytes(Tile(0, 0, size), tree.read, tree.read_leaves, size)
        assert level0 == (TESSERA / f"tile/0/000.p/{size}").read_bytes()
        bundle = tile_bytes(Tile(None, 0, size), tree.read, tree.read_leaves, size)
        assert bundle == (TESSERA / f"tile/entries/000.p/{size}").read_bytes()
        assert parse_entry_bundle(bundle) == ENTRIES[:size]


def test_static_writer_reproduces_tessera_and_grows_incrementally(tmp_path: Path) -> None:
    tree = MemoryTree(ENTRIES)
    for size in (3, 15):
        note = (TESSERA / f"checkpoint.{size}").read_text()
        written = write_tiles(tmp_path, note, tree.read, tree.read_leaves)
        assert written.size == size
        for name in ("0", "entries"):
            assert (tmp_path / f"tile/{name}/000.p/{size}").read_bytes() == (
                TESSERA / f"tile/{name}/000.p/{size}"
            ).read_bytes()
    assert (tmp_path / "checkpoint").read_text() == (TESSERA / "checkpoint").read_text()
    with pytest.raises(TileError, match="refusing to go back"):
        write_tiles(tmp_path, (TESSERA / "checkpoint.3").read_text(), tree.read, tree.read_leaves)


def test_upper_level_tiles_hold_the_roots_of_full_tiles_below() -> None:
    leaves = [hashlib.sha256(str(i).encode()).digest() for i in range(70_000)]
    tree = MemoryTree(leaves)
    level1 = tile_bytes(Tile(1, 1, 17), tree.read, tree.read_leaves, 70_000)
    for i in range(17):
        below = tile_bytes(Tile(0, 256 + i, 256), tree.read, tree.read_leaves, 70_000)
        assert level1[32 * i : 32 * i + 32] == root_of([below[j : j + 32] for j in range(0, 8192, 32)])
    level2 = tile_bytes(Tile(2, 0, 1), tree.read, tree.read_leaves, 70_000)
    assert level2 == root_of([leaf_hash(leaf) for leaf in leaves[:65_536]])
    with pytest.raises(TileError, match="beyond"):
        tile_bytes(Tile(1, 1, 18), tree.read, tree.read_leaves, 70_000)


def test_kansa_ledger_tiles_writes_the_ledger_and_refuses_a_huge_leaf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "ledger.db"
    subprocess.run([EXE, "ledger", "init", str(db), "--origin", "t.example/l", "--contract", "x"], check=True)
    with Ledger.open(db, key_path=f"{db}.key") as led:
        led.append([Submission(event()) for _ in range(300)], now=NOW)
        led.sign_checkpoint(now=NOW)
        leaves = [leaf for _, leaf, _ in led.leaves()]
    out = tmp_path / "tiles"
    done = subprocess.run([EXE, "ledger", "tiles", str(db), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (out / "checkpoint").read_text().split("\n")[1] == "300"
    bundle = (out / "tile/entries/000").read_bytes() + (out / "tile/entries/001.p/44").read_bytes()
    assert parse_entry_bundle(bundle) == leaves  # exactly the bytes each leaf hash covers
    assert (out / "tile/1/000.p/1").read_bytes() == root_of([leaf_hash(leaf) for leaf in leaves[:256]])
    again = subprocess.run([EXE, "ledger", "tiles", str(db), str(out)], capture_output=True, text=True)
    assert again.returncode == 0 and "0 new tile(s)" in again.stdout

    # A leaf over 65,535 bytes, written before the ledger limited leaf sizes: refused, naming its index.
    import ledger.store

    monkeypatch.setattr(ledger.store, "MAX_LEAF_BYTES", 1 << 30)  # as the store was before the limit
    with Ledger.open(db, key_path=f"{db}.key") as led:
        led.append([Submission(event(person="x" * 70_000))], now=NOW)
        led.sign_checkpoint(now=NOW)
    huge = subprocess.run([EXE, "ledger", "tiles", str(db), str(out)], capture_output=True, text=True)
    assert huge.returncode == 1 and "entry 300 is 70," in huge.stderr and "Traceback" not in huge.stderr


def test_with_a_policy_only_a_checkpoint_with_the_quorum_is_published(tmp_path: Path) -> None:
    from ledger.witness import Witness

    db = tmp_path / "ledger.db"
    subprocess.run([EXE, "ledger", "init", str(db), "--origin", "t.example/p", "--contract", "x"], check=True)
    with Ledger.open(db, key_path=f"{db}.key") as led, Witness.init(tmp_path / "w", "w.example/1") as witness:
        witness.add_log(led.origin, led.verifier.vkey, now=NOW)
        led.append([Submission(event()) for _ in range(10)], now=NOW)
        note = led.sign_checkpoint(now=NOW).note
        led.add_cosigned_checkpoint(
            note + witness.add_checkpoint(f"old 0\n\n{note}".encode(), now=NOW).body, now=NOW
        )
        led.append([Submission(event()) for _ in range(5)], now=NOW)
        led.sign_checkpoint(now=NOW)  # 15 entries, not cosigned: waiting
        (tmp_path / "policy").write_text(f"log {led.verifier.vkey}\nwitness w {witness.vkey}\nquorum w\n")
    out = tmp_path / "tiles"
    done = subprocess.run(
        [EXE, "ledger", "tiles", str(db), str(out), "--policy", str(tmp_path / "policy")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (out / "checkpoint").read_text().split("\n")[1] == "10" and (out / "tile/0/000.p/10").exists()
    subprocess.run([EXE, "ledger", "tiles", str(db), str(out)], check=True, capture_output=True)
    assert (out / "checkpoint").read_text().split("\n")[1] == "15"
