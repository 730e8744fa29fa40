"""Ledger service throughput and latency against baselines, all measured in one run.

    .venv/bin/python benchmarks/service_bench.py [--events 4000] [--clients 1,10,50] [--batch 100]

Prints, for each number of concurrent clients:

- single events (`POST /v1/events`, one signed event a request): acknowledged
  durable appends/s and p50/p99 latency over real HTTP on loopback, against
  one fsync'd SQLite transaction per event on the same disk. Target (issue 11):
  at 50 clients >= 1x that baseline, with p99 < 50 ms.
- batched delivery (`POST /v1/events:batch`, `--batch` signed events a
  request, as an operator's client delivering its outbox): events/s against
  the in-process batched append of the same ledger code (`Ledger.append` of
  the same batches, signatures checked, no HTTP) measured beside it. Target:
  >= 0.7x; the rest is JSON parsing and HTTP.

A bare batched SQLite insert is printed too: the ceiling of the disk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from ledger import Ledger, Signer, Submission, canonicalize
from ledger.note import b64encode
from ledger.store import Signature

EXE = str(Path(sys.executable).parent / "kansa")
ROW = "x" * 700  # about the size of a leaf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _baseline_db(path: Path) -> sqlite3.Connection:
    """The same durability as the ledger's file: WAL, fsync at every commit."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, leaf TEXT, h BLOB)")
    return conn


def one_fsync_per_event(path: Path, n: int) -> float:
    conn = _baseline_db(path)
    start = time.perf_counter()
    for _ in range(n):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t (leaf, h) VALUES (?, ?)", (ROW, os.urandom(32)))
        conn.execute("COMMIT")
    return n / (time.perf_counter() - start)


def batched(path: Path, n: int) -> float:
    conn = _baseline_db(path)
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t (leaf, h) VALUES (?, ?)", ((ROW, os.urandom(32)) for _ in range(n)))
    conn.execute("COMMIT")
    return n / (time.perf_counter() - start)


def signed_bodies(op: Signer, n: int) -> list[bytes]:
    now = datetime.now(UTC).isoformat()
    bodies = []
    for i in range(n):
        event = {
            "id": str(uuid.uuid4()),
            "type": "access.login",
            "at": now,
            "actor": op.name,
            "data": {"person": op.name, "terminal": f"t{i}", "success": True},
        }
        sig = {"key": op.verifier.key_ref, "ed25519": b64encode(op.sign(canonicalize(event)))}
        bodies.append(json.dumps({"event": event, "sig": sig}).encode())
    return bodies


def batch_bodies(op: Signer, n: int, batch: int) -> list[bytes]:
    """`n` signed events as `{"events": [...]}` bodies of `batch` each (an outbox delivered in batches)."""
    items = [json.loads(b) for b in signed_bodies(op, n)]
    return [json.dumps({"events": items[i : i + batch]}).encode() for i in range(0, n, batch)]


def in_process_batched(operators: list[Signer], n: int, batch: int, work_dir: Path) -> float:
    """The ledger code without HTTP: the same signed batches through `Ledger.append`."""
    db = work_dir / "in-process.db"
    subprocess.run(
        [EXE, "ledger", "init", str(db), "--origin", "bench.example/inproc", "--contract", "x"],
        check=True,
        capture_output=True,
    )
    batches = []
    for op in operators:
        for body in batch_bodies(op, n // len(operators), batch):
            batches.append(
                [
                    Submission(item["event"], Signature(item["sig"]["key"], item["sig"]["ed25519"]))
                    for item in json.loads(body)["events"]
                ]
            )
    with Ledger.open(db, key_path=f"{db}.key") as led:
        led.append(registrations(operators), now=datetime.now(UTC))
        start = time.perf_counter()
        for items in batches:
            led.append(items, now=datetime.now(UTC))
        elapsed = time.perf_counter() - start
    return sum(len(b) for b in batches) / elapsed


def registrations(operators: list[Signer]) -> list[Submission]:
    regs = []
    for op in operators:
        v = op.verifier
        regs.append(
            Submission(
                {
                    "id": str(uuid.uuid4()),
                    "type": "key.registered",
                    "at": datetime.now(UTC).isoformat(),
                    "actor": "mgr01",
                    "data": {"key": v.key_ref, "public_key": b64encode(v.public_key), "holder": v.name},
                }
            )
        )
    return regs


async def _post_loop(
    host: str, port: int, bodies: list[bytes], latencies: list[float], path: str = "/v1/events"
) -> None:
    """One client on one keep-alive connection: a minimal HTTP/1.1 POST loop.

    httpx's async client spends about 3 ms of CPU a request, which would make
    the load generator, not the server, the thing measured on two cores.
    """
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for body in bodies:
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            t = time.perf_counter()
            writer.write(head + body)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            answer = await reader.readexactly(length)
            latencies.append(time.perf_counter() - t)
            if b" 201 " not in status:
                raise RuntimeError(f"{status!r} {answer!r}")
    finally:
        writer.close()


async def load(url: str, work: list[list[bytes]], path: str = "/v1/events") -> tuple[float, list[float]]:
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(*(_post_loop(host, int(port), bodies, latencies, path) for bodies in work))
    return time.perf_counter() - start, latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=4000, help="events per run")
    parser.add_argument("--clients", default="1,10,50")
    parser.add_argument("--batch", type=int, default=100, help="events per batched request")
    args = parser.parse_args()
    work_dir = Path(tempfile.mkdtemp(prefix="kansa-svc-bench-"))
    counts = [int(c) for c in args.clients.split(",")]

    base_n = min(args.events, 2000)
    fsync_rate = one_fsync_per_event(work_dir / "fsync.db", base_n)
    batch_rate = batched(work_dir / "batch.db", args.events * 10)
    print(f"baseline: one fsync'd transaction per event  {fsync_rate:10,.0f} events/s")
    print(f"baseline: bare batched insert                {batch_rate:10,.0f} events/s")

    db = work_dir / "ledger.db"
    subprocess.run(
        [EXE, "ledger", "init", str(db), "--origin", "bench.example/svc", "--contract", "x"],
        check=True,
        capture_output=True,
    )
    operators = [Signer.generate(f"op{i:02d}") for i in range(max(counts))]
    with Ledger.open(db, key_path=f"{db}.key") as led:
        led.append(registrations(operators), now=datetime.now(UTC))
    port = free_port()
    server = subprocess.Popen(
        [EXE, "ledger", "serve", str(db), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        print(
            f"{'clients':>8} {'acked/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'x fsync baseline':>18}"
            f" {'events/commit':>14}"
        )
        for c in counts:
            per = args.events // c
            work = [signed_bodies(operators[i], per) for i in range(c)]
            commits_before = httpx.get(f"{url}/healthz").json()["commits"]
            elapsed, latencies = asyncio.run(load(url, work))
            commits = httpx.get(f"{url}/healthz").json()["commits"] - commits_before
            rate = per * c / elapsed
            q = statistics.quantiles(latencies, n=100)
            print(
                f"{c:>8} {rate:>10,.0f} {q[49] * 1e3:>8.1f} {q[98] * 1e3:>8.1f} {rate / fsync_rate:>18.2f}"
                f" {per * c / max(commits, 1):>14.1f}"
            )
        inproc = in_process_batched(operators[: max(counts)], args.events, args.batch, work_dir)
        print(f"in-process batched append (Ledger.append, {args.batch} a batch) {inproc:10,.0f} events/s")
        print(
            f"{'clients':>8} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'x in-process':>14}"
            f"  (batches of {args.batch})"
        )
        for c in counts:
            per = max(args.batch, args.events // c // args.batch * args.batch)
            work = [batch_bodies(operators[i], per, args.batch) for i in range(c)]
            elapsed, latencies = asyncio.run(load(url, work, "/v1/events:batch"))
            rate = per * c / elapsed
            q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0]] * 99
            print(f"{c:>8} {rate:>10,.0f} {q[49] * 1e3:>8.1f} {q[98] * 1e3:>8.1f} {rate / inproc:>14.2f}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)


if __name__ == "__main__":
    main()
