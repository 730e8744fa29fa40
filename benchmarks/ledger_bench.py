"""Ledger speed, as ratios measured in one run (these machines are noisy).

    .venv/bin/python benchmarks/ledger_bench.py [--n 1000000] [--batch 10000]

Prints:
- bulk append: events/s, and the ratio to a bare SQLite insert of the same rows
  (same table and indexes) with SHA-256 in one transaction; target >= 0.3;
- full verify: seconds, and the ratio to the floor (one Ed25519 verification x
  entries / cores); target <= 1.5;
- incremental verify of 1,000 new entries after a checkpoint at n: target < 1 s;
- inclusion and consistency proofs at n: target < 10 ms each.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import nacl.signing

from ledger import Ledger, Signer, Submission, verify_ledger, verify_since
from ledger.schema import SCHEMA
from ledger.store import _statements

NOW = datetime(2026, 9, 24, tzinfo=UTC)


def events(n: int, seed: int = 1) -> Iterator[dict]:
    rng = random.Random(seed)
    results = ["answered", "no_answer", "busy", "voicemail"]
    for i in range(n):
        hour = rng.randrange(9, 20)
        yield {
            "id": str(uuid.UUID(int=rng.getrandbits(128))),
            "type": "call.dialed",
            "at": f"2026-09-{21 + i % 9:02d}T{hour:02d}:{rng.randrange(60):02d}:00+09:00",
            "actor": "system",
            "data": {
                "case": f"C{rng.randrange(1_000_000):07d}",
                "number": str(rng.randrange(1, 3)),
                "call": f"K{i:08d}",
                "caller_id": "0258-00-0001",
                "ended_at": f"2026-09-{21 + i % 9:02d}T{hour:02d}:59:00+09:00",
                "ring_s": rng.randrange(5, 40),
                "result": rng.choice(results),
            },
        }


def timed(fn, *args, **kw):
    start = time.perf_counter()
    value = fn(*args, **kw)
    return value, time.perf_counter() - start


def bulk_append(path: Path, n: int, batch: int, profile: bool) -> tuple[float, Ledger]:
    signer = Signer.generate("bench.example/ledger")
    ledger = Ledger.create(path, origin=signer.name, signer=signer, now=NOW)
    source = events(n)
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    done = 0
    while done < n:
        chunk = [Submission(next(source)) for _ in range(min(batch, n - done))]
        if profiler:
            profiler.enable()
        ledger.append(chunk, now=NOW)
        if profiler:
            profiler.disable()
        done += len(chunk)
        if done % (batch * 20) == 0:
            print(f"  appended {done:,}", file=sys.stderr)
    elapsed = time.perf_counter() - start
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    return elapsed, ledger


def bare_insert(source: Path, target: Path) -> float:
    """The same rows, re-hashed with SHA-256, into the same table in one transaction."""
    rows = (
        sqlite3.connect(source)
        .execute("SELECT idx, id, type, at, actor, case_ref, received, key, leaf FROM entries ORDER BY idx")
        .fetchall()
    )
    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    for statement in _statements(SCHEMA):
        conn.execute(statement)
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO entries (idx, id, type, at, actor, case_ref, received, key, leaf, leaf_hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ((*r, hashlib.sha256(b"\x00" + r[8].encode()).digest()) for r in rows),
    )
    conn.execute("COMMIT")
    return time.perf_counter() - start


def ed25519_verify_seconds(samples: int = 20_000) -> float:
    key = nacl.signing.SigningKey.generate()
    message = b'{"actor":"system","at":"2026-09-24T09:00:00+09:00","data":{},"id":"x","type":"t"}' * 3
    sig = key.sign(message).signature
    verify = key.verify_key.verify
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(samples // 5):
            verify(message, sig)
        runs.append((time.perf_counter() - start) / (samples // 5))
    return statistics.median(runs)


def _verify_many(n: int) -> float:
    key = nacl.signing.SigningKey.generate()
    message = b"x" * 300
    sig = key.sign(message).signature
    verify = key.verify_key.verify
    start = time.perf_counter()
    for _ in range(n):
        verify(message, sig)
    return time.perf_counter() - start


def ed25519_parallel_seconds(cores: int, per_core: int = 20_000) -> float:
    """Seconds per verification when every core verifies at once: what two cores really give here."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(cores) as pool:
        start = time.perf_counter()
        list(pool.map(_verify_many, [per_core] * cores))
        return (time.perf_counter() - start) / (per_core * cores)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--new", type=int, default=1_000)
    parser.add_argument("--profile", action="store_true", help="profile the append path")
    parser.add_argument("--dir", type=Path, default=None, help="where to build (default: a temp dir)")
    parser.add_argument(
        "--reuse", action="store_true", help="verify an existing bench.db in --dir (no append)"
    )
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="kansa-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "bench.db"
    cores = os.cpu_count() or 1
    if args.reuse:
        led = None
        args.n = Ledger.open(db).size
        print(f"verifying the existing {db} ({args.n:,} entries), {cores} cores")
    else:
        for p in work.glob("bench*.db*"):
            p.unlink()
        print(f"n = {args.n:,} events, batches of {args.batch:,}, {cores} cores, in {work}")
        append_s, led = bulk_append(db, args.n, args.batch, args.profile)
        bare_s = bare_insert(db, work / "bench-bare.db")
        print(f"bulk append      {append_s:8.2f} s  {args.n / append_s:10,.0f} events/s")
        print(
            f"bare insert      {bare_s:8.2f} s  {args.n / bare_s:10,.0f} rows/s (same rows, SHA-256, one txn)"
        )
        print(f"  ratio append/bare = {bare_s / append_s:.3f}   (target >= 0.3)")

    one = ed25519_verify_seconds()
    floor = one * args.n / cores
    report, verify_s = timed(verify_ledger, db)
    assert report.ok, report.summary()
    print(f"full verify      {verify_s:8.2f} s  ({args.n / verify_s:,.0f} entries/s)")
    print(f"  floor = {one * 1e6:.1f} us/verification x {args.n:,} / {cores} cores = {floor:.2f} s")
    print(f"  ratio verify/floor = {verify_s / floor:.2f}   (target <= 1.5)")
    parallel = ed25519_parallel_seconds(cores) * args.n
    print(
        f"  measured floor: {cores} processes verifying at once take {parallel:.2f} s for {args.n:,}"
        f" -> ratio {verify_s / parallel:.2f}"
    )
    if led is None:
        return

    trusted = led.sign_checkpoint(now=NOW).note
    led.append([Submission(e) for e in events(args.new, seed=2)], now=NOW)
    report, since_s = timed(verify_since, db, trusted)
    assert report.ok, report.summary()
    print(
        f"incremental      {since_s:8.3f} s  for {args.new:,} new entries after a checkpoint at {args.n:,}"
        "   (target < 1 s)"
    )

    size = led.size
    rng = random.Random(3)
    incl, cons = [], []
    for _ in range(200):
        i = rng.randrange(size)
        _, t = timed(led.inclusion_proof, i, size)
        incl.append(t)
        old = rng.randrange(1, size)
        _, t = timed(led.consistency_proof, old, size)
        cons.append(t)
    print(
        f"inclusion proof  p50 {statistics.median(incl) * 1e3:.2f} ms  max {max(incl) * 1e3:.2f} ms"
        "   (target < 10 ms)"
    )
    print(
        f"consistency      p50 {statistics.median(cons) * 1e3:.2f} ms  max {max(cons) * 1e3:.2f} ms"
        "   (target < 10 ms)"
    )


if __name__ == "__main__":
    main()
