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
    """A resident, for the whole contract. Listed again in a later month (events.md "Cases"),
    it has one case.opened per month of listing: a listing runs from its case.opened to the
    next one, and stops, unsuitability and endings belong to the listing they fall in."""

    ref: str
    opened: Entry | None = None  # the first listing
    openings: list[Entry] = field(default_factory=list)  # every listing, in ledger order
    calls: list[Call] = field(default_factory=list)
    outcomes: list[Entry] = field(default_factory=list)  # call.outcome and callback.outcome, in ledger order
    stops: list[Entry] = field(default_factory=list)
    unsuitables: list[Entry] = field(default_factory=list)
    escalations: list[Entry] = field(default_factory=list)
    sms_sent: list[Entry] = field(default_factory=list)
    sms_lookups: list[Entry] = field(default_factory=list)
    sms_blocked: list[Entry] = field(default_factory=list)
    _by_number: dict[str, list[Call]] | None = field(default=None, repr=False)
    _by_number_month: dict[tuple[str, str], list[Call]] = field(default_factory=dict, repr=False)

    @property
    def month(self) -> str | None:
        """The first month the case was listed in."""
        return str(self.opened.data["month"]) if self.opened else None

    @property
    def batch(self) -> str | None:
        return str(self.opened.data["batch"]) if self.opened else None

    @property
    def months(self) -> list[str]:
        return sorted({str(o.data["month"]) for o in self.openings})

    @property
    def stop(self) -> Entry | None:
        return self.stops[0] if self.stops else None

    @property
    def unsuitable(self) -> Entry | None:
        return self.unsuitables[0] if self.unsuitables else None

    def listing(self, month: str) -> Entry | None:
        """The case.opened that lists the case in `month` (the first, if the city sent two)."""
        if len(self.openings) == 1:  # most cases: one listing, no search
            only = self.openings[0]
            return only if only.data["month"] == month else None
        return next((o for o in self.openings if o.data["month"] == month), None)

    @property
    def numbers(self) -> list[dict[str, str]]:
        return list(self.opened.data.get("numbers", [])) if self.opened else []

    def numbers_in(self, month: str) -> list[dict[str, str]]:
        opening = self.listing(month)
        return list(opening.data.get("numbers", [])) if opening else []

    def relisted_between(self, earlier: datetime, later: datetime) -> bool:
        """Whether a case.opened lists the case again after `earlier`, by `later`: what
        happened before it (a stop, an ending) belongs to the earlier listing."""
        return any(earlier < o.at <= later for o in self.openings)

    def in_listing(self, entry: Entry, month: str) -> bool:
        """Whether `entry` belongs to the listing of `month`: after the month's case.opened
        (or any time, with no later listing), and before the next case.opened."""
        opening = self.listing(month)
        if opening is None:
            return True
        if entry.at < opening.at and any(o.at < opening.at for o in self.openings):
            return False  # before this listing, and an earlier listing holds it
        later = [o.at for o in self.openings if o.at > opening.at]
        return entry.at < min(later) if later else True

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
        key = (number, month)
        monthly = self._by_number_month.get(key)
        if monthly is None:  # several rules ask for the same number and month
            ym = (int(month[:4]), int(month[5:7]))
            monthly = self._by_number_month[key] = [c for c in found if (c.at.year, c.at.month) == ym]
        return monthly

    def ending(self, month: str | None = None) -> Entry | None:
        """The first outcome whose disposition ends the case (in `month`, if given), if any."""
        for outcome in self.outcomes:
            if outcome.data["disposition"] in CASE_ENDING and (month is None or _in(outcome.at, month)):
                return outcome
        return None

    def ended_before(self, moment: datetime) -> bool:
        """Whether an ending outcome at or before `moment` still holds then (no re-listing since)."""
        return any(
            o.data["disposition"] in CASE_ENDING
            and o.at <= moment
            and not self.relisted_between(o.at, moment)
            for o in self.outcomes
        )

    def number_ended_before(self, number: str, moment: datetime) -> bool:
        """Whether the number was ended as unusable at or before `moment`, in the listing then."""
        return any(
            call.number == number
            and call.outcome is not None
            and call.outcome.data["disposition"] == "number_unusable"
            and call.outcome.at <= moment
            and not self.relisted_between(call.outcome.at, moment)
            for call in self.calls
        )

    def stopped_before(self, moment: datetime) -> Entry | None:
        """The city's stop order in force at `moment`: made by then, and not lifted by a re-listing."""
        return next(
            (s for s in self.stops if s.at <= moment and not self.relisted_between(s.at, moment)), None
        )

    def stopped_in(self, month: str) -> Entry | None:
        """A stop order of the month's listing (it ends that listing's work, §10(4)ケ / §8(4)ク)."""
        if not self.stops:
            return None
        return next((s for s in self.stops if self.in_listing(s, month) and _on_or_before(s.at, month)), None)

    def unsuitable_in(self, month: str) -> Entry | None:
        if not self.unsuitables:
            return None
        return next((u for u in self.unsuitables if self.in_listing(u, month)), None)

    def number_ended(self, number: str, month: str | None = None) -> Entry | None:
        """The outcome that ended this number as unusable (オ) (in `month`, if given), if any."""
        for call in self.calls:
            if (
                call.number == number
                and call.outcome
                and call.outcome.data["disposition"] == "number_unusable"
                and (month is None or _in(call.at, month))
            ):
                return call.outcome
        return None


def _in(moment: datetime, month: str) -> bool:
    return (moment.year, moment.month) == (int(month[:4]), int(month[5:7]))


def _on_or_before(moment: datetime, month: str) -> bool:
    return (moment.year, moment.month) <= (int(month[:4]), int(month[5:7]))


@dataclass
class LedgerState:
    entries: list[Entry]
    cases: dict[str, Case]
    calls: list[Call]
    calls_by_id: dict[str, Call]
    by_type: dict[str, list[Entry]]
    campaigns: dict[str, Entry]  # month -> the latest campaign.scheduled
    callbacks_by_call: dict[str, Entry] = field(default_factory=dict)  # callback.received by its `call`

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
    callbacks_by_call: dict[str, Entry] = {}

    def case(ref: str) -> Case:
        found = cases.get(ref)
        if found is None:
            found = cases[ref] = Case(ref)
        return found

    for entry in entries:
        by_type[entry.type].append(entry)
        kind, data = entry.type, entry.data
        if kind == "case.opened":
            target = case(data["case"])
            target.opened = target.opened or entry
            target.openings.append(entry)
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
        elif kind == "callback.outcome":
            # A resident's callback: it ends the case as a call's outcome does (T §10(4)キ, N §8(4)キ).
            case(data["case"]).outcomes.append(entry)
        elif kind == "callback.received":
            if data.get("call") is not None:
                callbacks_by_call.setdefault(str(data["call"]), entry)
        elif kind == "case.stop":
            case(data["case"]).stops.append(entry)
        elif kind == "case.unsuitable":
            case(data["case"]).unsuitables.append(entry)
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
    return LedgerState(entries, cases, calls, calls_by_id, dict(by_type), campaigns, callbacks_by_call)
