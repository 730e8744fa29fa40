"""Past one ledger: many ledgers behind one server, and the tiles of a large one (docs/scale.md).

    .venv/bin/python benchmarks/scale_bench.py [--ledgers 100] [--seconds 10] [--clients 32]
                                               [--entries 1000000] [--dir benchmarks/out]

Prints:
- `kansa ledger serve DIR` with --ledgers ledgers (one per contract, routed by origin):
  resident memory with one ledger and with all of them, so memory per open ledger;
  appends/s across them from --clients concurrent clients posting single signed events
  to random ledgers over loopback HTTP for --seconds (each 201 is durable: fsync'd),
  beside the same clients posting into one ledger (group commit batches them);
- a ledger of --entries entries: seconds to write all its C2SP tiles from scratch
  (`kansa ledger tiles`), to add the tiles of 1,000 more entries (incremental), and to
  verify the whole tile set independently of the ledger (re-hash every entry of every
  bundle, compare with the level-0 tiles, rebuild every upper tile, and reach the
  checkpoint's root).
The large ledger is kept in --dir for reruns.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from ledger import Ledger, Signer, Submission, canonicalize
from ledger.commands import default_key_path
from ledger.keyfile import write_key
from ledger.merkle import leaf_hash, root_of
from ledger.note import b64encode
from ledger.tiles import TILE_HEIGHT, TILE_WIDTH, Tile, parse_entry_bundle, tiles_of, write_ledger_tiles

EXE = str(Path(sys.executable).parent / "kansa")
NOW = datetime(2026, 9, 24, tzinfo=UTC)


def event(at: str = "2026-09-24T09:00:00+09:00") -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "type": "access.login",
        "at": at,
        "actor": "op07",
        "data": {"person": "op07", "terminal": "t1", "success": True},
    }


def registration(op: Signer) -> Submission:
    v = op.verifier
    data = {"key": v.key_ref, "public_key": b64encode(v.public_key), "holder": v.name}
    return Submission({**event(), "type": "key.registered", "actor": "mgr01", "data": data})


def make_ledgers(directory: Path, count: int, op: Signer) -> list[str]:
    origins = []
    for n in range(count):
        origin = f"contractor.example/kansa/contract-{n:03d}"
        signer = Signer.generate(origin)
        db = directory / f"contract-{n:03d}.db"
        write_key(default_key_path(db), signer)
        with Ledger.create(db, origin=origin, signer=signer, now=NOW) as led:
            led.append([registration(op)], now=NOW)
        origins.append(origin)
    return origins


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Server:
    def __init__(self, directory: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [EXE, "ledger", "serve", str(directory), "--port", str(port), "--checkpoint-seconds", "5"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def signed_bodies(op: Signer, count: int) -> list[dict[str, object]]:
    bodies = []
    for _ in range(count):
        ev = event()
        sig = b64encode(op.sign(canonicalize(ev)))
        bodies.append({"event": ev, "sig": {"key": op.verifier.key_ref, "ed25519": sig}})
    return bodies


def warm(server: Server, origins: list[str], op: Signer) -> None:
    with httpx.Client() as client:
        for origin, body in zip(origins, signed_bodies(op, len(origins)), strict=True):
            assert client.post(f"{server.url}/{origin}/v1/events", json=body).status_code == 201


def many_ledgers(args: argparse.Namespace, port: int) -> None:
    op = Signer.generate("op07")
    with tempfile.TemporaryDirectory() as tmp:
        one, many = Path(tmp) / "one", Path(tmp) / "many"
        one.mkdir()
        many.mkdir()
        origins_one = make_ledgers(one, 1, op)
        origins = make_ledgers(many, args.ledgers, op)
        server = Server(one, port)
        warm(server, origins_one, op)
        base = rss_kib(server.proc.pid)
        server.stop()
        server = Server(many, port)
        warm(server, origins, op)
        full = rss_kib(server.proc.pid)
        per = (full - base) / max(1, args.ledgers - 1)
        print(f"memory: 1 ledger {base / 1024:.1f} MiB, {args.ledgers} ledgers {full / 1024:.1f} MiB"
              f" -> {per / 1024:.2f} MiB per open ledger")  # fmt: skip
        many_rate = appends(args, server, origins, op)
        server.stop()
        server = Server(one, port)
        one_rate = appends(args, server, origins_one, op)
        server.stop()
        print(f"appends: {many_rate:.0f}/s across {args.ledgers} ledgers, {one_rate:.0f}/s into one ledger"
              f" ({args.clients} clients, {args.seconds:.0f} s each, every 201 fsync'd)")  # fmt: skip


def appends(args: argparse.Namespace, server: Server, origins: list[str], op: Signer) -> float:
    """Acknowledged appends/s: --clients threads posting single signed events to random ledgers."""
    bodies = signed_bodies(op, args.clients * 2000)
    done = [0] * args.clients
    stop_at = time.monotonic() + args.seconds

    def client(k: int) -> None:
        rng = random.Random(k)
        with httpx.Client(timeout=30) as http:
            for body in bodies[k :: args.clients]:
                if time.monotonic() >= stop_at:
                    return
                origin = origins[rng.randrange(len(origins))]
                if http.post(f"{server.url}/{origin}/v1/events", json=body).status_code == 201:
                    done[k] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - started)


def build_large(path: Path, entries: int) -> None:
    if path.exists():
        with Ledger.open(path) as led:
            if led.size >= entries:
                return
        path.unlink()
        default_key_path(path).unlink()
    signer = Signer.generate("contractor.example/kansa/large")
    write_key(default_key_path(path), signer)
    started = time.monotonic()
    with Ledger.create(path, origin=signer.name, signer=signer, now=NOW) as led:
        for start in range(0, entries, 10_000):
            led.append([Submission(event()) for _ in range(min(10_000, entries - start))], now=NOW)
        led.sign_checkpoint(now=NOW)
    print(f"built a ledger of {entries:,} entries in {time.monotonic() - started:.0f} s")


def verify_tiles(directory: Path) -> tuple[int, bytes]:
    """From the files alone: entries -> level-0 tiles -> upper tiles -> the checkpoint's root."""
    note = (directory / "checkpoint").read_text()
    origin, size_text, root_text = note.split("\n")[:3]
    size = int(size_text)
    tiles = list(tiles_of(size))
    level_hashes: list[bytes] = []
    for tile in (t for t in tiles if t.level is None):
        entries = parse_entry_bundle((directory / tile.path).read_bytes())
        hashes = b"".join(leaf_hash(e) for e in entries)
        if (
            len(entries) != tile.width
            or hashes != (directory / Tile(0, tile.index, tile.width).path).read_bytes()
        ):
            raise SystemExit(f"{tile.path} does not match its level-0 tile")
        level_hashes += [hashes[i : i + 32] for i in range(0, len(hashes), 32)]
    leaves = level_hashes
    level = 1
    while size >> (TILE_HEIGHT * level):
        full = len(level_hashes) // TILE_WIDTH
        parents = [root_of(level_hashes[i * TILE_WIDTH : (i + 1) * TILE_WIDTH]) for i in range(full)]
        for tile in (t for t in tiles if t.level == level):
            data = (directory / tile.path).read_bytes()
            if data != b"".join(parents[tile.index * TILE_WIDTH : tile.index * TILE_WIDTH + tile.width]):
                raise SystemExit(f"{tile.path} is not the roots of the tiles below")
        level_hashes = parents
        level += 1
    root = root_of(leaves)
    if b64encode(root) != root_text:
        raise SystemExit("the tiles do not reach the checkpoint's root")
    return size, root


def large_tiles(args: argparse.Namespace) -> None:
    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / f"scale-{args.entries}.db"
    build_large(path, args.entries)
    out = args.dir / f"scale-{args.entries}-tiles"
    shutil.rmtree(out, ignore_errors=True)
    with Ledger.open(path) as led:
        started = time.monotonic()
        written = write_ledger_tiles(led, out)
        elapsed = time.monotonic() - started
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"tiles: {written.files:,} files, {total / 2**20:.0f} MiB for {written.size:,} entries"
          f" written in {elapsed:.1f} s ({written.size / elapsed:,.0f} entries/s)")  # fmt: skip
    started = time.monotonic()
    size, _ = verify_tiles(out)
    elapsed = time.monotonic() - started
    print(f"tiles verified from the files alone in {elapsed:.1f} s ({size / elapsed:,.0f} entries/s)")
    with Ledger.open(path, key_path=default_key_path(path)) as led:
        led.append([Submission(event()) for _ in range(1000)], now=NOW)
        led.sign_checkpoint(now=NOW)
        started = time.monotonic()
        more = write_ledger_tiles(led, out)
        print(f"incremental: {more.files} files for 1,000 more entries in {time.monotonic() - started:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ledgers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--dir", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--skip-ledgers", action="store_true")
    parser.add_argument("--skip-tiles", action="store_true")
    args = parser.parse_args()
    if not args.skip_ledgers:
        many_ledgers(args, args.port)
    if not args.skip_tiles:
        large_tiles(args)


if __name__ == "__main__":
    main()
