"""dialer_core.dialer: the product's loop (plan -> guard -> dial -> record -> hand over), and the
demo driving it with the ledger service's real answers on simulated time."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import NOW

from contract.calendar import TOKYO
from contract.profile import load_profile
from dialer_core.adapters import DialResult
from dialer_core.campaign import plan_days
from dialer_core.datastore import DataStore
from dialer_core.dialer import Dialer, Dialled
from dialer_core.scheduler import CaseProgress, NumberProgress, Scheduler
from kansa.demo.world import World
from ledger.commands import init_ledger

NHI = load_profile("nagaoka-nhi-2026")


@dataclass
class Phone:
    """A telephony adapter that answers nobody and remembers what it was asked to dial."""

    dialled: list[tuple[str, datetime, str | None]] = field(default_factory=list)

    def dial(self, phone: str, at: datetime, *, weekday: bool = True, caller_id: str | None = None,
             progress: Any = None) -> DialResult:  # fmt: skip
        self.dialled.append((phone, at, caller_id))
        return DialResult("no_answer", 40, at + timedelta(seconds=42))

    def talk(self, case: str, number: str, at: datetime) -> Any:
        raise AssertionError("nobody answered")


def make_dialer(
    phone: Phone, written: list[tuple[str, datetime, dict[str, Any]]], handed: list[Dialled]
) -> Dialer:
    campaign = plan_days(NHI, "2026-09")
    scheduler = Scheduler(NHI, campaign, rng=random.Random(3))
    cases = {ref: CaseProgress(ref, {"1": NumberProgress("1", "mobile")}) for ref in ("Ca", "Cb", "Cc")}
    ids = iter(range(1000))
    return Dialer(
        scheduler,
        cases,
        phone,
        phone_of=lambda case, number: f"090-0000-{case}",
        record=lambda kind, at, data: written.append((kind, at, data)),
        hand_over=lambda dialled: handed.append(dialled) or [],
        caller_id=lambda: "0258-39-1000",
        call_id=lambda at: f"K{next(ids)}",
    )


def test_the_loop_dials_what_the_guard_allows_records_and_hands_over() -> None:
    phone, written, handed = Phone(), [], []
    dialer = make_dialer(phone, written, handed)
    days = dialer.scheduler.days
    first_day = min(s.at.date() for s in dialer.queue)
    dialer.cases["Cb"].stopped_at = datetime.combine(
        first_day, datetime.min.time(), TOKYO
    )  # the city stopped it
    calls = sum(dialer.run_day(day) for day in days)
    assert calls == dialer.calls > 0
    dialled_cases = {data["case"] for kind, _, data in written}
    assert dialled_cases == {"Ca", "Cc"}  # Cb was never dialled: the guard refused it
    assert {slot.case for slot, _ in dialer.refused} == {"Cb"}
    assert all(kind == "call.dialed" for kind, _, _ in written)
    first = written[0][2]
    assert first["result"] == "no_answer" and first["ring_s"] == 40 and first["caller_id"] == "0258-39-1000"
    assert [(d.call, d.slot.case) for d in handed] == [(data["call"], data["case"]) for _, _, data in written]
    assert [p for p, _, _ in phone.dialled] == [f"090-0000-{data['case']}" for _, _, data in written]
    # Each number was dialled again on later days, in another band: the scheduler planned it.
    attempts = dialer.cases["Ca"].numbers["1"].attempts
    assert len(attempts) >= 2 and len({a.at.date() for a in attempts}) == len(attempts)


def test_the_demo_delivers_through_the_service_on_simulated_time(tmp_path: Path) -> None:
    ledger, key = init_ledger(tmp_path / "ledger.db", origin="t.example/demo", contract="nagaoka-nhi-2026",
                              key_path=None, now=NOW)  # fmt: skip
    store = DataStore(tmp_path / "targets.db")
    world = World(ledger, store, NHI, tmp_path)
    try:
        world.set_up(datetime(2026, 9, 1).date(), tmp_path)
        op = world.operators["op01"]
        # The service's clock-skew check runs against the simulated clock, not the wall clock.
        ahead = world.clock + timedelta(minutes=6)
        op.record("access.logout", {"person": "op01", "terminal": "t-op01"}, at=ahead)
        report = op.deliver(deadline=None)
        assert report.rejected == 1
        ((_, error),) = op.rejected()
        assert error.startswith("422 ") and '"event.at"' in error
        op.record("access.logout", {"person": "op01", "terminal": "t-op01"}, at=world.clock)
        assert op.deliver(deadline=None).delivered == 1
    finally:
        world.close()
        store.close()
    assert world.service is None
