"""The ledger's story, derived once and shared by every rule.

Counts are never stored anywhere: attempts, completion and exhaustion are
recomputed from the entries each time (design decision 4).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from .model import Entry

# Dispositions that end a whole case (§10(4)/§8(4) ア, イ, ウ, エ, ケ/ク).
CASE_ENDING = frozenset({"completed", "refused", "absent_long", "stopped"})
NON_CONTACT = frozenset({"no_answer", "busy", "voicemail", "unavailable"})


@dataclass
class Call:
    dialed: Entry
    outcome: Entry | None = None
    # Plain attributes, not properties: rules read them hundreds of thousands of times.
    case: str = field(init=False)
    number: str = field(init=False)
    at: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.case = str(self.dialed.data["case"])
        self.number = str(self.dialed.data["number"])
        self.at = self.dialed.at


@dataclass
class Case:
    ref: str
    opened: Entry | None = None
    calls: list[Call] = field(default_factory=list)
    outcomes: list[Entry] = field(default_factory=list)
    stop: Entry | None = None
    unsuitable: Entry | None = None
    escalations: list[Entry] = field(default_factory=list)
    sms_sent: list[Entry] = field(default_factory=list)
    sms_lookups: list[Entry] = field(default_factory=list)
    sms_blocked: list[Entry] = field(default_factory=list)
    _by_number: dict[str, list[Call]] | None = field(default=None, repr=False)

    @property
    def month(self) -> str | None:
        return str(self.opened.data["month"]) if self.opened else None

    @property
    def batch(self) -> str | None:
        return str(self.opened.data["batch"]) if self.opened else None

    @property
    def numbers(self) -> list[dict[str, str]]:
        return list(self.opened.data.get("numbers", [])) if self.opened else []

    def calls_to(self, number: str, month: str | None = None) -> list[Call]:
        """Calls to a number in the order they were made (entries may arrive late: not ledger order)."""
        if self._by_number is None:
            by_number: dict[str, list[Call]] = {}
            for call in sorted(self.calls, key=lambda c: (c.at, c.dialed.index)):
                by_number.setdefault(call.number, []).append(call)
            self._by_number = by_number
        found = self._by_number.get(number, [])
        if month is None:
            return found
        ym = (int(month[:4]), int(month[5:7]))
        return [c for c in found if (c.at.year, c.at.month) == ym]

    def ending(self) -> Entry | None:
        """The first outcome whose disposition ends the case, if any."""
        for outcome in self.outcomes:
            if outcome.data["disposition"] in CASE_ENDING:
                return outcome
        return None

    def number_ended(self, number: str) -> Entry | None:
        """The outcome that ended this number as unusable (オ), if any."""
        for call in self.calls:
            if (
                call.number == number
                and call.outcome
                and call.outcome.data["disposition"] == "number_unusable"
            ):
                return call.outcome
        return None


@dataclass
class LedgerState:
    entries: list[Entry]
    cases: dict[str, Case]
    calls: list[Call]
    calls_by_id: dict[str, Call]
    by_type: dict[str, list[Entry]]
    campaigns: dict[str, Entry]  # month -> the latest campaign.scheduled

    def of(self, kind: str) -> list[Entry]:
        return self.by_type.get(kind, [])

    def campaign_days(self, month: str) -> tuple[set[date], set[date]]:
        """(scheduled days, excluded days) of a month's latest campaign.scheduled."""
        entry = self.campaigns.get(month)
        if entry is None:
            return set(), set()
        days = {date.fromisoformat(d) for d in entry.data["days"]}
        excluded = {date.fromisoformat(d) for d in entry.data["excluded"]}
        return days, excluded


def derive(entries: list[Entry]) -> LedgerState:
    cases: dict[str, Case] = {}
    by_type: dict[str, list[Entry]] = defaultdict(list)
    calls: list[Call] = []
    calls_by_id: dict[str, Call] = {}
    orphans: list[Entry] = []
    campaigns: dict[str, Entry] = {}

    def case(ref: str) -> Case:
        found = cases.get(ref)
        if found is None:
            found = cases[ref] = Case(ref)
        return found

    for entry in entries:
        by_type[entry.type].append(entry)
        kind, data = entry.type, entry.data
        if kind == "case.opened":
            case(data["case"]).opened = case(data["case"]).opened or entry
        elif kind == "call.dialed":
            call = Call(entry)
            calls.append(call)
            calls_by_id.setdefault(str(data["call"]), call)
            case(data["case"]).calls.append(call)
        elif kind == "call.outcome":
            found = calls_by_id.get(str(data["call"]))
            if found is not None and found.outcome is None:
                found.outcome = entry
            elif found is None:
                orphans.append(entry)
            case(data["case"]).outcomes.append(entry)
        elif kind == "case.stop":
            target = case(data["case"])
            target.stop = target.stop or entry
        elif kind == "case.unsuitable":
            target = case(data["case"])
            target.unsuitable = target.unsuitable or entry
        elif kind == "escalation.raised":
            case(data["case"]).escalations.append(entry)
        elif kind == "sms.sent":
            case(data["case"]).sms_sent.append(entry)
        elif kind == "sms.lookup":
            case(data["case"]).sms_lookups.append(entry)
        elif kind == "sms.blocked":
            case(data["case"]).sms_blocked.append(entry)
        elif kind == "campaign.scheduled":
            campaigns[str(data["month"])] = entry
    # An outcome written before its call.dialed (clients deliver late) still belongs to it.
    for outcome in list(orphans):
        found = calls_by_id.get(str(outcome.data["call"]))
        if found is not None and found.outcome is None:
            found.outcome = outcome
            orphans.remove(outcome)
    return LedgerState(entries, cases, calls, calls_by_id, dict(by_type), campaigns)
