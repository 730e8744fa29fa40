"""The loop in real time: the plan and guard served to ready seats (SeatPlan), with the ledger's
knowledge applied before each choice and the caller ids rotated."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from contract.profile import load_profile
from dialer_core.adapters import DialResult
from dialer_core.campaign import plan_days
from dialer_core.follow import Knowledge
from dialer_core.realtime import CallerIds, SeatPlan
from dialer_core.scheduler import CaseProgress, NumberProgress, Scheduler


def plan(n: int = 4) -> SeatPlan:
    profile = load_profile("nagaoka-nhi-2026")
    scheduler = Scheduler(profile, plan_days(profile, "2026-09"), rng=random.Random(2))
    cases = {f"C{i}": CaseProgress(f"C{i}", {"1": NumberProgress("1", "mobile")}) for i in range(n)}
    ids = CallerIds(minimum=2)
    for number in ("0258-11-1111", "0258-22-2222", "090-0000-0000"):
        kind = "mobile" if number.startswith("090") else "landline"
        ids.apply({"type": "callerid.registered", "data": {"number": number, "kind": kind}})
    return SeatPlan(scheduler, cases, lambda case, number: f"phone-of-{case}", caller_ids=ids)


def test_due_slots_guarded_at_dial_time_with_rotating_caller_ids() -> None:
    p = plan()
    first = min(s.at for s in p.queue)
    assert p("s01", first - timedelta(minutes=1)) is None  # nothing due yet
    now = max(s.at for s in p.queue if s.at.date() == first.date()) + timedelta(minutes=1)
    taken = [p("s01", now) for _ in range(3)]
    shown = [t.caller_id for t in taken if t is not None]
    assert shown[:2] == ["0258-11-1111", "0258-22-2222"]  # registered landlines in turn, never the mobile
    assert all(t is None or t.phone == f"phone-of-{t.case}" for t in taken)


def test_a_stop_from_the_ledger_is_refused_at_dial_time_and_callbacks_come_first() -> None:
    p = plan(2)
    slots = sorted(p.queue)
    late = slots[-1].at + timedelta(minutes=1)
    knowledge = p.knowledge
    knowledge.apply(
        {
            "type": "case.stop",
            "at": (late - timedelta(minutes=5)).isoformat(),
            "data": {"case": slots[0].case},
        }
    )
    got = p("s01", late)
    assert got is not None and got.case == slots[1].case
    assert [(s.case, "停止" in r or "stop" in r) for s, r in p.refused] == [(slots[0].case, True)]
    # the resident of the other case asks to be called back; the callback comes before anything else
    p.done(got, DialResult("answered", 3, late + timedelta(minutes=2)), late)
    callback_at = datetime.combine(p.scheduler.days[-1], late.timetz().replace(hour=18, minute=0))
    knowledge.apply(
        {
            "type": "call.outcome",
            "at": late.isoformat(),
            "data": {
                "case": slots[1].case,
                "call": "K1",
                "disposition": "absent_now",
                "callback_at": callback_at.isoformat(),
            },
        }
    )
    again = p("s01", callback_at + timedelta(minutes=1))
    assert again is not None and again.callback and again.case == slots[1].case


def test_no_dialling_without_the_minimum_of_registered_lines() -> None:
    p = plan()
    p.caller_ids.apply({"type": "callerid.retired", "data": {"number": "0258-22-2222"}})
    now = max(s.at for s in p.queue) + timedelta(minutes=1)
    assert p("s01", now) is None and p.waiting is not None and "caller id" in p.waiting
    assert not p.refused  # nothing was dropped: the slot waits for lines


def test_knowledge_from_a_completion_ends_the_case() -> None:
    k = Knowledge()
    k.apply(
        {
            "type": "call.outcome",
            "at": "2026-09-20T10:00:00+09:00",
            "data": {"case": "C1", "call": "K", "disposition": "completed", "callback_at": None},
        }
    )
    p = plan(2)
    p.knowledge = k
    p.learn()
    assert p.cases["C1"].completed


def test_knowledge_from_a_callback_that_completed_the_case_ends_it() -> None:
    """T §10(4)キ / N §8(4)キ: a resident's callback that completed the case; one where the
    person was out leaves the case to be called."""
    k = Knowledge()
    for case, disposition in (("C1", "completed"), ("C2", "absent_now")):
        k.apply(
            {
                "type": "callback.outcome",
                "at": "2026-09-20T15:00:00+09:00",
                "data": {"case": case, "call": f"B-{case}", "disposition": disposition},
            }
        )
    p = plan(3)
    p.knowledge = k
    p.learn()
    assert p.cases["C1"].completed and not p.cases["C2"].completed
