"""The dialling core's speed: seats on simulated time, the guard, a demo month, SMPP.

    .venv/bin/python benchmarks/dialer_bench.py [--seats 10,100,500] [--calls-per-seat 40] [--sms 500]

- seats: N `SeatRunner`s (the product's per-seat progressive dialling) with the
  seeded simulator as telephony, each on its own simulated clock, served round
  robin; every call goes through the scheduler's guard (`Scheduler.refuse`)
  just before dialling, and `call.dialed` is recorded; answered calls are
  classified and their outcome recorded through the `SeatBoard`, as a console
  would. Prints calls/s and the guard's p50/p99 decision time.
- a demo month: `kansa demo --months 2026-09` end to end (wall time).
- SMPP: messages/s to the loopback SMSC (tests/smsc.py: smpp34's server) with
  a receipt for each, unthrottled (rate 0) and waiting for every receipt.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contract.calendar import TOKYO  # noqa: E402
from contract.profile import load_profile  # noqa: E402
from dialer_core.adapters import Simulator  # noqa: E402
from dialer_core.campaign import plan_days  # noqa: E402
from dialer_core.scheduler import Attempt, CaseProgress, NumberProgress, Scheduler  # noqa: E402
from dialer_core.seats import Planned, SeatBoard, SeatRunner  # noqa: E402


def seats_bench(n_seats: int, calls_per_seat: int) -> dict[str, float]:
    profile = load_profile("nagaoka-nhi-2026")
    campaign = plan_days(profile, "2026-09")
    scheduler = Scheduler(profile, campaign, rng=random.Random(1))
    day = scheduler.days[0]
    start, _ = scheduler.hours(day)
    n_cases = n_seats * calls_per_seat * 2
    cases = {
        f"C{i:06d}": CaseProgress(f"C{i:06d}", {"1": NumberProgress("1", "mobile")}) for i in range(n_cases)
    }
    queue = list(cases)
    names = [f"s{i:03d}" for i in range(n_seats)]
    board = SeatBoard(names)
    sim = Simulator(seed=3)
    clocks = {name: datetime.combine(day, start, TOKYO) + timedelta(minutes=1) for name in names}
    guard_ns: list[int] = []
    recorded: list[tuple[str, dict, datetime]] = []

    def make_runner(name: str) -> SeatRunner:
        def plan(seat: str, at: datetime) -> Planned | None:
            while queue:
                case = queue.pop()
                t0 = time.perf_counter_ns()
                refused = scheduler.refuse(cases[case], "1", at)
                guard_ns.append(time.perf_counter_ns() - t0)
                if refused is None:
                    return Planned(case, "1", "090-0000-0000", "0258-12-3456")
            return None

        def done(planned: Planned, result) -> None:  # type: ignore[no-untyped-def]
            cases[planned.case].numbers["1"].attempts.append(Attempt(result.ended_at, None, result.result))
            clocks[name] = result.ended_at + timedelta(seconds=5)

        return SeatRunner(
            name,
            sim,
            board,
            plan,
            lambda kind, data, at: recorded.append((kind, data, at)),
            lambda: clocks[name],
            done=done,
            classify_timeout_s=0,
        )

    runners = {name: make_runner(name) for name in names}
    for name in names:
        board.ready(name, f"op{name}")
    t0 = time.perf_counter()
    for _ in range(calls_per_seat):
        for name in names:
            planned = runners[name].plan(name, clocks[name])
            if planned is None:
                break
            runners[name].one(planned)
            seat = board.get(name)
            if seat["call"] is not None:  # answered: the console records its outcome
                board.outcome(seat["call"]["call"], None)
    wall = time.perf_counter() - t0
    calls = len(recorded)
    guard = sorted(guard_ns)
    return {
        "seats": n_seats,
        "calls": calls,
        "wall_s": wall,
        "calls_per_s": calls / wall,
        "guard_p50_ms": guard[len(guard) // 2] / 1e6,
        "guard_p99_ms": guard[int(len(guard) * 0.99)] / 1e6,
    }


def demo_month() -> float:
    exe = str(Path(sys.executable).parent / "kansa")
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([exe, "demo", "--out", out, "--months", "2026-09"], check=True, capture_output=True)
        return time.perf_counter() - t0


def smpp_bench(n: int) -> dict[str, float]:
    from dialer_core.smpp import Journal, SmppConfig, SmppGateway, Sms
    from tests.smsc import LoopbackSmsc

    smsc = LoopbackSmsc(receipt_delay_s=0.0).start()
    results: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "journal.db", b"k" * 32)
        gw = SmppGateway(
            SmppConfig(port=smsc.port, password="secret", rate=0),
            journal,
            lambda kind, data, at: results.append(kind),
            lambda: datetime.now(TOKYO),
        )
        t0 = time.perf_counter()
        for i in range(n):
            gw.send(Sms(f"C{i}", "1", f"090{i:08d}", "長岡市からのお知らせです。", "0258-39-2000"), "docomo")
        sent = time.perf_counter() - t0
        while results.count("sms.result") < n and time.perf_counter() - t0 < 120:
            gw.pump(0.2)
        total = time.perf_counter() - t0
        gw.close()
        journal.close()
    smsc.stop()
    return {
        "messages": n,
        "submit_per_s": n / sent,
        "with_receipts_per_s": results.count("sms.result") / total,
        "receipts": results.count("sms.result"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seats", default="10,100,500")
    parser.add_argument("--calls-per-seat", type=int, default=40)
    parser.add_argument("--sms", type=int, default=500)
    parser.add_argument("--no-demo", action="store_true")
    args = parser.parse_args()
    for n in (int(x) for x in args.seats.split(",")):
        r = seats_bench(n, args.calls_per_seat)
        print(
            f"seats {n:4d}: {r['calls']:6d} calls in {r['wall_s']:.2f} s = {r['calls_per_s']:8.0f} calls/s; "
            f"guard p50 {r['guard_p50_ms']:.4f} ms, p99 {r['guard_p99_ms']:.4f} ms (target < 5 ms)"
        )
    if not args.no_demo:
        print(f"demo month (kansa demo --months 2026-09): {demo_month():.1f} s")
    s = smpp_bench(args.sms)
    print(
        f"SMPP: {s['messages']} messages, submit_sm {s['submit_per_s']:.0f}/s, "
        f"with every receipt back {s['with_receipts_per_s']:.0f}/s ({s['receipts']} receipts)"
    )


if __name__ == "__main__":
    main()
