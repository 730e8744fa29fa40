"""`kansa check` on generated months: seconds and events/s, and how the time grows.

    .venv/bin/python benchmarks/check_bench.py [--sizes 10000,100000,400000] [--dir benchmarks/out]

Each size is one NHI month (2026-09) of cases with two numbers, three calls a
number with their outcomes (naming the approved talk script), callbacks, SMS
with lookups, and daily reports, by trained and pledged staff, appended to a
real ledger and checkpointed (kept in --dir for reruns: delete them when the
generator changes).
Target: a 400k-event month in under 10 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from compliance import check_ledger
from ledger import Ledger, Signer, Submission

TOKYO = ZoneInfo("Asia/Tokyo")
DAYS = ["2026-09-22", "2026-09-24", "2026-09-25", "2026-09-26", "2026-09-28", "2026-09-29", "2026-09-30"]
WEEKENDS = ["2026-09-22", "2026-09-26"]  # a citizens' holiday and a Saturday
WEEKDAYS = [d for d in DAYS if d not in WEEKENDS]


def month_events(target: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    events: list[dict] = []
    n = 0

    def add(kind: str, at: datetime, actor: str, /, **data: object) -> None:
        nonlocal n
        n += 1
        events.append({"id": f"e{n}", "type": kind, "at": at.isoformat(), "actor": actor, "data": data})

    start = datetime(2026, 9, 1, 8, tzinfo=TOKYO)
    for person, role in (
        ("city01", "city"),
        ("mgr01", "manager"),
        ("op07", "operator"),
        ("cus01", "custodian"),
    ):
        add("staff.designated", start, "system", person=person, role=role, by="city01")
    for person in ("mgr01", "op07"):  # trained and pledged before their first work (STAFF-READY)
        ready = start - timedelta(hours=1)
        add("staff.trained", ready, "system", person=person, course="laws_manual", by="mgr01")
        add("staff.pledged", ready, "system", person=person, sha256="c" * 64, to="city01")
    for kind in ("manual", "faq", "talk_script"):  # approved by the city (SCRIPT-APPROVED)
        add("document.approved", start, "city01", kind=kind, version="1", sha256="b" * 64, by="city01")
    for day in [*DAYS, "2026-09-01", "2026-09-23", "2026-09-27", "2026-10-01"]:
        for person in ("mgr01", "op07", "cus01"):
            add(
                "access.login",
                datetime.fromisoformat(day).replace(hour=8, tzinfo=TOKYO),
                person,
                person=person,
                terminal="t1",
                success=True,
            )
    for number in ("0258-00-0001", "0258-00-0002"):
        add("callerid.registered", start, "mgr01", number=number, kind="landline")
    add("campaign.scheduled", start, "mgr01", month="2026-09", days=DAYS, excluded=[])
    add(
        "custody.received",
        start,
        "cus01",
        batch="B1",
        media="USB-1",
        sha256="a" * 64,
        records=1,
        encrypted=True,
        transport="hand_delivery",
        **{"from": "city01"},
    )
    add("custody.imported", start + timedelta(hours=1), "cus01", batch="B1", records=1, sha256="a" * 64)
    cases = max(1, (target - len(events)) // 13)
    designated = [f"C{i:06d}" for i in range(0, cases, 4)]
    # An entry holds at most 65,535 bytes (C2SP tlog-tiles): a big month's list is given in parts,
    # as several designations of the same send time.
    for part in range(0, len(designated), 2_000):
        add(
            "sms.designated",
            start,
            "city01",
            batch="B1",
            cases=designated[part : part + 2_000],
            send_at=datetime(2026, 9, 25, 10, tzinfo=TOKYO).isoformat(),
            sender_id="0258-99-0000",
        )
    call = 0
    for i in range(cases):
        ref = f"C{i:06d}"
        add(
            "case.opened",
            start + timedelta(hours=2),
            "system",
            case=ref,
            batch="B1",
            month="2026-09",
            category="initial",
            numbers=[{"ref": "1", "kind": "mobile"}, {"ref": "2", "kind": "landline"}],
        )
        for number in ("1", "2"):
            # One attempt on a weekend/holiday (N §8(4)カ), each on its own day and time band.
            days = [rng.choice(WEEKENDS), *rng.sample(WEEKDAYS, 2)]
            for day, hour in zip(days, (10, 13, 18), strict=True):
                at = datetime.fromisoformat(day).replace(hour=hour, minute=rng.randrange(60), tzinfo=TOKYO)
                call += 1
                result = rng.choice(["answered", "no_answer", "busy", "voicemail"])
                add(
                    "call.dialed",
                    at,
                    "system",
                    case=ref,
                    number=number,
                    call=f"K{call}",
                    caller_id="0258-00-0001",
                    ended_at=(at + timedelta(minutes=2)).isoformat(),
                    ring_s=rng.randrange(35, 45),
                    result=result,
                    message_left=True,
                )
                reached = result == "answered" and rng.random() < 0.6
                add(
                    "call.outcome",
                    at + timedelta(minutes=2),
                    "op07",
                    case=ref,
                    call=f"K{call}",
                    party="self" if reached else "none",
                    proxy_consent=False,
                    script="incomplete",
                    disposition="no_contact",
                    promise=None,
                    callback_at=None,
                    mobile_asked=True,
                    requests=[],
                    script_version="1",
                )
        if i % 4 == 0:
            sent = datetime(2026, 9, 25, 10, 5, tzinfo=TOKYO)
            add(
                "sms.lookup",
                sent - timedelta(days=1),
                "system",
                case=ref,
                number="1",
                carrier="docomo",
                reassigned="no",
            )
            add(
                "sms.sent",
                sent,
                "system",
                case=ref,
                number="1",
                message=f"M{i}",
                sender_id="0258-99-0000",
                chars=60,
                segments=1,
                carrier="docomo",
            )
        if i % 50 == 0:
            add(
                "callback.received",
                datetime(2026, 9, 24, 21, tzinfo=TOKYO),
                "system",
                case=ref,
                queued_s=0,
                handled="voice_guide",
            )
    for day in DAYS:
        report_at = datetime.fromisoformat(day).replace(hour=9, tzinfo=TOKYO) + timedelta(days=1)
        add("report.submitted", report_at, "mgr01", kind="daily", covers=day, sha256="0" * 64, to="city01")
    add(
        "report.submitted",
        datetime(2026, 10, 1, 17, tzinfo=TOKYO),
        "mgr01",
        kind="monthly",
        covers="2026-09",
        sha256="0" * 64,
        to="city01",
    )
    add(
        "report.submitted",
        datetime(2026, 9, 28, 9, tzinfo=TOKYO),
        "mgr01",
        kind="sms",
        covers="2026-09-25",
        sha256="0" * 64,
        to="city01",
    )
    return events


def build(path: Path, target: int) -> None:
    signer = Signer.generate("bench.example/check")
    led = Ledger.create(
        path, origin=signer.name, signer=signer, contract="nagaoka-nhi-2026", now=datetime.now(UTC)
    )
    events = month_events(target)
    for i in range(0, len(events), 20_000):
        led.append([Submission(e) for e in events[i : i + 20_000]], now=datetime(2026, 11, 1, tzinfo=UTC))
    led.sign_checkpoint(now=datetime(2026, 11, 1, tzinfo=UTC))
    led.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,400000")
    parser.add_argument("--dir", type=Path, default=Path("benchmarks/out"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        db = args.dir / f"check-{size}.db"
        if not db.exists():
            t = time.perf_counter()
            build(db, size)
            print(f"built {db} in {time.perf_counter() - t:.0f} s")
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            result = check_ledger(db, "2026-09")
            times.append(time.perf_counter() - t)
        events = result.checkpoint.size
        best = min(times)
        violations = sum(f.severity == "violation" for f in result.findings)
        rows.append((events, best))
        print(
            f"{events:>9,} events  {best:6.2f} s (median {statistics.median(times):.2f})"
            f"  {events / best:>10,.0f} events/s  findings {len(result.findings)} ({violations} violations)"
        )
    for (n1, t1), (n2, t2) in zip(rows, rows[1:], strict=False):
        print(f"  x{n2 / n1:.0f} events -> x{t2 / t1:.1f} time")
    print("target: 400k events in < 10 s")


if __name__ == "__main__":
    main()
