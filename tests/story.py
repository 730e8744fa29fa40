"""A small language for writing ledger histories in tests, as compliance entries (no ledger needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from compliance import Entry, evaluate, load_profile
from compliance.model import Finding
from contract.calendar import TOKYO

LEDGER_KEY = "test.example/ledger+00000000"


def t(text: str) -> datetime:
    """'2026-09-24 10:00' in Asia/Tokyo."""
    return datetime.fromisoformat(text).replace(tzinfo=TOKYO)


@dataclass
class Story:
    entries: list[Entry] = field(default_factory=list)
    calls: int = 0

    def add(
        self, kind: str, at: str | datetime, /, actor: str = "system", key: str = LEDGER_KEY, **data: Any
    ) -> Entry:
        moment = t(at) if isinstance(at, str) else at
        entry = Entry(len(self.entries), kind, moment, actor, data, moment.isoformat(), key)
        self.entries.append(entry)
        return entry

    # -- set-up that most stories share ---------------------------------------------

    def staff(self, person: str, role: str, at: str = "2026-09-01 08:00") -> Story:
        self.add("staff.designated", at, actor="system", person=person, role=role, by="city01")
        return self

    def team(self, at: str = "2026-09-01 08:00") -> Story:
        for person, role in (
            ("city01", "city"),
            ("mgr01", "manager"),
            ("op07", "operator"),
            ("cus01", "custodian"),
        ):
            self.staff(person, role, at)
        return self

    def ready(self, person: str, at: str = "2026-09-01 07:00", actor: str = "system") -> Story:
        """`person` trained and pledged (STAFF-READY): the bootstrap manager's by the system."""
        self.add("staff.trained", at, actor=actor, person=person, course="laws_manual", by="mgr01")
        self.add("staff.pledged", at, actor=actor, person=person, sha256="c" * 64, to="city01")
        return self

    def lines(self, *numbers: str, at: str = "2026-09-01 08:00") -> Story:
        for number in numbers or ("0258-00-0001", "0258-00-0002"):
            self.add("callerid.registered", at, actor="mgr01", number=number, kind="landline")
        return self

    def campaign(
        self,
        month: str,
        days: list[str],
        excluded: list[str] | None = None,
        at: str = "2026-09-01 08:00",
        **extra: Any,
    ) -> Story:
        self.add(
            "campaign.scheduled", at, actor="mgr01", month=month, days=days, excluded=excluded or [], **extra
        )
        return self

    def case(
        self,
        ref: str,
        numbers: list[tuple[str, str]] | None = None,
        month: str = "2026-09",
        batch: str = "B1",
        at: str = "2026-09-01 09:00",
    ) -> Story:
        nums = [{"ref": r, "kind": k} for r, k in (numbers or [("1", "mobile")])]
        self.add(
            "case.opened",
            at,
            actor="system",
            case=ref,
            batch=batch,
            month=month,
            category="initial",
            numbers=nums,
        )
        return self

    # -- calls -------------------------------------------------------------------------

    def dial(
        self,
        case: str,
        at: str,
        number: str = "1",
        result: str = "no_answer",
        ring_s: int = 35,
        caller_id: str = "0258-00-0001",
        outcome: bool = True,
        **extra: Any,
    ) -> str:
        self.calls += 1
        call = f"K{self.calls}"
        self.add(
            "call.dialed",
            at,
            actor="system",
            case=case,
            number=number,
            call=call,
            caller_id=caller_id,
            ended_at=t(at).isoformat(),
            ring_s=ring_s,
            result=result,
            **extra,
        )
        if outcome:
            disposition = "no_contact" if result != "answered" else "absent_now"
            self.outcome(case, call, at, disposition=disposition)
        return call

    def outcome(
        self,
        case: str,
        call: str,
        at: str,
        *,
        party: str = "none",
        consent: bool = False,
        script: str = "not_started",
        disposition: str = "no_contact",
        promise: dict | None = None,
        callback_at: str | None = None,
        mobile_asked: bool = False,
        requests: list[str] | None = None,
        actor: str = "op07",
        kind: str = "call.outcome",
        **extra: Any,
    ) -> Entry:
        if kind == "call.outcome":
            extra["callback_at"] = t(callback_at).isoformat() if callback_at else None
        return self.add(
            kind,
            at,
            actor=actor,
            case=case,
            call=call,
            party=party,
            proxy_consent=consent,
            script=script,
            disposition=disposition,
            promise=promise,
            mobile_asked=mobile_asked,
            requests=requests or [],
            **extra,
        )

    # -- residents' callbacks -----------------------------------------------------------

    def callback(self, case: str | None, at: str, handled: str = "operator", queued_s: int = 5) -> str:
        """A resident's call to the center (callback.received, by the dialing core), with its call id."""
        self.calls += 1
        call = f"B{self.calls}"
        self.add(
            "callback.received", at, actor="system", case=case, queued_s=queued_s, handled=handled, call=call
        )
        return call

    def callback_outcome(
        self,
        case: str,
        call: str,
        at: str,
        *,
        party: str = "self",
        script: str = "completed",
        disposition: str = "completed",
        **extra: Any,
    ) -> Entry:
        """The operator's record of a resident's callback: a call.outcome's fields but callback_at."""
        fields = {"party": party, "script": script, "disposition": disposition, **extra}
        return self.outcome(case, call, at, kind="callback.outcome", **fields)

    # -- judging -----------------------------------------------------------------------

    def check(
        self, month: str = "2026-09", profile: str = "nagaoka-nhi-2026", as_of: str = "2027-06-01 00:00"
    ) -> list[Finding]:
        findings, _ = evaluate(self.entries, load_profile(profile), month, t(as_of))
        return findings

    def kpis(
        self, month: str = "2026-09", profile: str = "nagaoka-nhi-2026", as_of: str = "2027-06-01 00:00"
    ) -> dict[str, Any]:
        return evaluate(self.entries, load_profile(profile), month, t(as_of))[1]

    def broken(self, rule: str, **kw: Any) -> list[Finding]:
        """The final (not pending) findings of one rule."""
        return [f for f in self.check(**kw) if f.rule == rule and not f.pending]
