"""Load times of the auditors' Datasette on a ledger of 1,000,000 entries.

    .venv/bin/python benchmarks/datasette_bench.py [--n 1000000] [--runs 20] [--dir benchmarks/out]

Builds (or reuses) one generated NHI month of N events (benchmarks/check_bench.py's
generator), checks it, adds an auditor, serves it with uvicorn on loopback as
`kansa serve` does, waits for the start-up verification, signs in over HTTP and
times each page: p50 and p95 of --runs loads (the first load of each page is a
warm-up and not counted). Target: p95 under 300 ms.
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).parent))
from check_bench import build  # noqa: E402

from compliance import check_ledger  # noqa: E402
from compliance.results import default_results_path, write_results  # noqa: E402
from datasette_plugins import make_datasette  # noqa: E402
from datasette_plugins.auditors import add_auditor, default_auditors_path  # noqa: E402
from datasette_plugins.site import site_of  # noqa: E402

PASSWORD = "benchmark password 1"


def pages(size: int, rng: random.Random) -> dict[str, list[str]]:
    entries = [rng.randrange(size) for _ in range(200)]
    return {
        "plugin: status": ["/-/kansa/status"],
        "plugin: status.json": ["/-/kansa/status.json"],
        "plugin: entry + proof (random)": [f"/-/kansa/entry/{i}" for i in entries],
        "plugin: entry.json (random)": [f"/-/kansa/entry/{i}.json" for i in entries],
        "plugin: findings": ["/-/kansa/findings?month=2026-09"],
        "plugin: kpis": ["/-/kansa/kpis"],
        "plugin: month, clause by clause": ["/-/kansa/month/2026-09"],
        "plugin: attempts per number": ["/-/kansa/attempts?month=2026-09"],
        "plugin: custody per batch": ["/-/kansa/custody"],
        "home": ["/"],
        "database: ledger": ["/ledger"],
        "table: entries (first page)": ["/ledger/entries"],
        "table: entries, type=call.dialed": ["/ledger/entries?type=call.dialed"],
        "table: entries, case_ref=…": [
            f"/ledger/entries?case_ref=C{rng.randrange(70000):06d}" for _ in range(50)
        ],
        "table: entries, later page (_next)": [f"/ledger/entries?_next={i}" for i in entries],
        "row: entries/N (random)": [f"/ledger/entries/{i}" for i in entries],
        "table: entries.json (first page)": ["/ledger/entries.json"],
        "table: entries.csv (first page)": ["/ledger/entries.csv"],
        "table: checkpoints": ["/ledger/checkpoints"],
        "table: compliance findings": ["/compliance/findings"],
        "table: compliance kpis": ["/compliance/kpis"],
        "query: custody_timeline": ["/ledger/custody_timeline?batch=B1"],
        "query: calls_outside_hours": ["/compliance/calls_outside_hours"],
        "query: late_reports": ["/compliance/late_reports"],
        "table: access entries": ["/access/entries"],
    }


def heavy_queries() -> dict[str, str]:
    """Whole-ledger scans: timed once each, reported apart (they are not page views)."""
    return {
        "query: numbers_under_three_attempts": "/ledger/numbers_under_three_attempts",
        "query: sms_possibly_reassigned": "/ledger/sms_possibly_reassigned",
        "query: sms_without_lookup": "/ledger/sms_without_lookup",
        "query: calls_by_hour": "/ledger/calls_by_hour",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=Path("benchmarks/out"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    db = args.dir / f"datasette-{args.n}.db"
    if not db.exists():
        t = time.perf_counter()
        build(db, args.n)
        print(f"built {db} in {time.perf_counter() - t:.0f} s")
    if not default_results_path(db).exists():
        t = time.perf_counter()
        write_results(default_results_path(db), check_ledger(db, "2026-09"))
        print(f"checked 2026-09 in {time.perf_counter() - t:.1f} s")
    add_auditor(default_auditors_path(db), "bench", PASSWORD)

    t = time.perf_counter()
    datasette = make_datasette(db)
    site = site_of(datasette)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(datasette.app(), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    while site.watch.state.full.report is None:  # the start's full verification, in the background
        time.sleep(0.2)
    report = site.watch.state.full.report
    took = time.perf_counter() - t
    print(f"start-up full verification of {report.size:,} entries: {took:.1f} s, ok={report.ok}")

    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=60) as client:
        r = client.post("/-/login", data={"username": "bench", "password": PASSWORD})
        assert r.status_code == 302, r.text
        client.cookies.set("ds_actor", r.cookies["ds_actor"])
        rng = random.Random(1)
        print(f"\n{'page':42} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  status")
        worst = 0.0
        for name, urls in pages(report.size, rng).items():
            client.get(urls[0])  # warm-up
            times = []
            statuses = set()
            for i in range(args.runs):
                url = urls[i % len(urls)]
                t0 = time.perf_counter()
                resp = client.get(url)
                times.append((time.perf_counter() - t0) * 1000)
                statuses.add(resp.status_code)
            p50 = statistics.median(times)
            p95 = statistics.quantiles(times, n=20)[18] if len(times) >= 20 else max(times)
            worst = max(worst, p95)
            print(f"{name:42} {p50:8.1f} {p95:8.1f} {max(times):8.1f}  {sorted(statuses)}")
        print(f"\nworst p95 of the pages: {worst:.1f} ms (target < 300 ms; ratio {worst / 300:.2f})")
        print("\nwhole-ledger stored queries (one run each, not page views):")
        for name, url in heavy_queries().items():
            t0 = time.perf_counter()
            resp = client.get(url)
            print(f"{name:42} {(time.perf_counter() - t0) * 1000:8.0f} ms  status {resp.status_code}")
    server.should_exit = True
    site.log.close()


if __name__ == "__main__":
    main()
