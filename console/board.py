"""What the desks know: the ledger's events (read from a read-only copy on this host) and the
events this console has recorded but not yet delivered, merged by id.

Everything shown on the desks is derived here from events, never stored beside them
(design decision 4): escalations to raise, callbacks due, staff, documents, figures.
"""

from __future__ import annotations

import threading
import time as _time
from bisect import bisect_left, insort
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from compliance.rules.attempts import ESCALATING_REQUESTS
from contract.calendar import TOKYO, add_business_days, end_of_day, is_weekday
from contract.profile import Profile
from dialer_core.client import pending_events
from ledger import LedgerReader, parse_leaf

from .outcome import REQUESTS

# Every request an operator can pass on goes to the manager's desk; those ESCALATION-REQUIRED
# names (compliance's ESCALATING_REQUESTS) must reach the city. escalation.raised has a reason
# for each request but stop_contact, which it raises as `other`.
REQUEST_REASONS = tuple(r for r in REQUESTS if r != "stop_contact")


def escalation_reason(request: str) -> str:
    """A resident's request as the `reason` of its escalation.raised (stop_contact is `other`)."""
    return request if request in REQUEST_REASONS else "other"


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    at: datetime  # in Asia/Tokyo
    actor: str
    data: dict[str, Any]
    index: int | None  # None while it waits in an outbox

    @classmethod
    def of(cls, envelope: dict[str, Any], index: int | None) -> Event:
        at = datetime.fromisoformat(envelope["at"]).astimezone(TOKYO)
        return cls(envelope["id"], envelope["type"], at, envelope["actor"], envelope["data"], index)


@dataclass(frozen=True)
class Escalation:
    case: str
    reason: str
    outcome: Event
    deadline: datetime
    required: bool  # ESCALATION-REQUIRED (or CALLBACK-APPOINTMENT) asks for it
    raised: Event | None


def _sort_key(event: Event) -> tuple[datetime, int]:
    """The board's order: by time, then the ledger's index (an event still in an outbox last)."""
    return event.at, event.index if event.index is not None else 1 << 62


def _remove(ordered: list[Event], event: Event) -> None:
    """Takes `event` out of a list kept in `_sort_key` order."""
    at = bisect_left(ordered, _sort_key(event), key=_sort_key)
    for i in range(at, len(ordered)):
        if ordered[i] is event:
            del ordered[i]
            return


@dataclass
class Board:
    ledger_path: Path
    profile: Profile
    refresh_seconds: float = 0.5
    _events: dict[str, Event] = field(default_factory=dict)
    _order: list[str] = field(default_factory=list)
    _size: int = 0
    _checked: float = 0.0
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _refreshing: threading.Lock = field(default_factory=threading.Lock)
    _ledger: LedgerReader | None = None  # the one read side; used by one refresher at a time
    _sorted: list[Event] | None = None
    _by_type: dict[str, list[Event]] = field(default_factory=dict)
    _numbers: dict[str, tuple[tuple[datetime, int], list[dict[str, str]]]] = field(default_factory=dict)

    # -- reading ----------------------------------------------------------------------

    def refresh(self, *, force: bool = False) -> None:
        """Reads the ledger entries appended since the last look (at most every refresh_seconds).

        The reading happens outside the board's lock, so pages never wait behind it."""
        with self._refreshing:
            now = _time.monotonic()
            if not force and now - self._checked < self.refresh_seconds:
                return
            self._checked = now
            if self._ledger is None:
                if not self.ledger_path.exists():
                    return
                self._ledger = LedgerReader.open(self.ledger_path)
            size = self._ledger.size
            if size <= self._size:
                return
            new = [
                Event.of(parse_leaf(leaf)["event"], index)
                for index, leaf, _ in self._ledger.leaves(self._size, size)
            ]
            with self._lock:
                for event in new:
                    self._add(event)
                self._size = size

    def close(self) -> None:
        with self._refreshing:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None

    def note(self, envelope: dict[str, Any]) -> None:
        """An event this console just recorded (signed and in an outbox)."""
        with self._lock:
            self._add(Event.of(envelope, None))

    def load_outboxes(self, outboxes: Iterable[Path]) -> None:
        """At start: what earlier runs recorded and did not deliver yet."""
        for path in outboxes:
            for envelope in pending_events(path):
                self.note(envelope)

    def _add(self, event: Event) -> None:
        known = self._events.get(event.id)
        if known is None:
            self._order.append(event.id)
        if known is None or event.index is not None:
            self._events[event.id] = event
            if self._sorted is not None:
                # kept in order as events come (a new one, or an outbox's event now in the
                # ledger): sorting every event again at the next page was the console's largest
                # cost under 200 operators (benchmarks/console_bench.py)
                same_type = self._by_type.setdefault(event.type, [])
                if known is not None:
                    _remove(self._sorted, known)
                    _remove(self._by_type.setdefault(known.type, []), known)
                insort(self._sorted, event, key=_sort_key)
                insort(same_type, event, key=_sort_key)
            if event.type == "case.opened":
                case, key = event.data["case"], _sort_key(event)
                if case not in self._numbers or self._numbers[case][0] <= key:
                    self._numbers[case] = (key, list(event.data["numbers"]))

    def events(self, *types: str) -> list[Event]:
        """In memory: `refresh` (the console's courier thread) brings the ledger's new entries."""
        with self._lock:
            if self._sorted is None:
                self._sorted = sorted(self._events.values(), key=_sort_key)
                by_type: dict[str, list[Event]] = defaultdict(list)
                for e in self._sorted:
                    by_type[e.type].append(e)
                self._by_type = dict(by_type)
            if not types:
                return list(self._sorted)
            if len(types) == 1:
                return list(self._by_type.get(types[0], ()))
            return [e for e in self._sorted if e.type in types]

    @property
    def size(self) -> int:
        return self._size

    # -- staff ------------------------------------------------------------------------

    def roles(self, person: str, *, in_ledger: bool = False) -> set[str]:
        """The roles `person` holds; with `in_ledger`, by the ledger's entries only (not what
        still waits in an outbox)."""
        held: set[str] = set()
        for e in self.events("staff.designated", "staff.revoked"):
            if e.data.get("person") != person or (in_ledger and e.index is None):
                continue
            if e.type == "staff.designated":
                held.add(e.data["role"])
            else:
                held.discard(e.data["role"])
        return held

    def staff(self) -> list[dict[str, Any]]:
        people: dict[str, dict[str, Any]] = {}

        def person(name: str) -> dict[str, Any]:
            return people.setdefault(
                name,
                {
                    "person": name,
                    "roles": set(),
                    "trained": [],
                    "pledged": None,
                    "keys": [],
                    "designated": False,
                },
            )

        for e in self.events(
            "staff.designated",
            "staff.revoked",
            "staff.trained",
            "staff.pledged",
            "key.registered",
            "key.revoked",
        ):
            d = e.data
            if e.type == "staff.designated":
                person(d["person"])["roles"].add(d["role"])
                person(d["person"])["designated"] = True
            elif e.type == "staff.revoked":
                person(d["person"])["roles"].discard(d["role"])
            elif e.type == "staff.trained":
                person(d["person"])["trained"].append(d["course"])
            elif e.type == "staff.pledged":
                person(d["person"])["pledged"] = e.at
            elif e.type == "key.registered":
                person(d["holder"])["keys"].append(d["key"])
            elif e.type == "key.revoked":
                for p in people.values():
                    if d["key"] in p["keys"]:
                        p["keys"].remove(d["key"])
        return sorted(people.values(), key=lambda p: p["person"])

    def not_ready(self, person: str) -> list[str]:
        """What STAFF-READY still asks of `person` before their first call: `trained` (a
        staff.trained) and `pledged` (a staff.pledged). One type at a time: each is a short list
        (a page asks on every 受付開始)."""
        return [
            what
            for what, kind in (("trained", "staff.trained"), ("pledged", "staff.pledged"))
            if not any(e.data.get("person") == person for e in self.events(kind))
        ]

    def registered_keys(self) -> dict[str, str]:
        """key id -> holder, for keys registered and not revoked."""
        keys: dict[str, str] = {}
        for e in self.events("key.registered", "key.revoked"):
            if e.type == "key.registered":
                keys[e.data["key"]] = e.data["holder"]
            else:
                keys.pop(e.data["key"], None)
        return keys

    # -- documents ----------------------------------------------------------------------

    def approvals(self) -> list[Event]:
        return self.events("document.approved")

    # -- the calendar of the month --------------------------------------------------------

    def calling_days(self, month: str) -> list[date]:
        days: list[date] = []
        for e in self.events("campaign.scheduled"):
            if e.data["month"] == month:
                excluded = set(e.data.get("excluded") or [])
                days = [date.fromisoformat(d) for d in e.data["days"] if d not in excluded]
        return days

    def hours(self, day: date) -> tuple[time, time]:
        return self.profile.weekday_hours if is_weekday(day) else self.profile.weekend_hours

    def in_period(self, moment: datetime) -> bool:
        """A calling day of the month's schedule, inside that day's hours (CALLBACK-APPOINTMENT)."""
        moment = moment.astimezone(TOKYO)
        day = moment.date()
        start, end = self.hours(day)
        return day in self.calling_days(f"{day:%Y-%m}") and start <= moment.time() < end

    def case_numbers(self, case: str) -> list[dict[str, str]]:
        """The numbers of the case's latest `case.opened` (kept as events come, not searched)."""
        with self._lock:
            known = self._numbers.get(case)
        return list(known[1]) if known else []

    def landline_only(self, case: str) -> bool:
        numbers = self.case_numbers(case)
        return bool(numbers) and all(n["kind"] == "landline" for n in numbers)

    # -- the manager's desk ----------------------------------------------------------------

    def escalations(self) -> list[Escalation]:
        """Every matter an outcome (of a call, or of a resident's callback) passed to the manager,
        with its deadline and whether it was raised. A callback's are raised by the operator with
        the outcome; one the console could not write (stopped in between) waits here."""
        raised: dict[tuple[str, str], list[Event]] = defaultdict(list)
        for e in self.events("escalation.raised"):
            raised[(e.data["case"], e.data["reason"])].append(e)
        found: list[Escalation] = []
        for outcome in self.events("call.outcome", "callback.outcome"):
            d = outcome.data
            reasons = [r for r in d.get("requests", []) if r in REQUESTS]
            callback = d.get("callback_at")
            if callback and not self.in_period(datetime.fromisoformat(callback)):
                reasons.append("callback_outside_period")
            for request in reasons:
                reason = request if request == "callback_outside_period" else escalation_reason(request)
                done = next((r for r in raised[(d["case"], reason)] if r.at >= outcome.at), None)
                deadline = end_of_day(
                    add_business_days(outcome.at.date(), self.profile.escalation_business_days)
                )
                required = request in ESCALATING_REQUESTS or request == "callback_outside_period"
                found.append(Escalation(d["case"], reason, outcome, deadline, required, done))
        return found

    def callback_escalations(self, day: date) -> list[Event]:
        """Requests residents made when they called us, raised by the operator at once with the
        callback's outcome (`via: callback`)."""
        return [
            e
            for e in self.events("escalation.raised")
            if e.data.get("via") == "callback" and e.at.date() == day
        ]

    def callbacks_on(self, day: date) -> list[dict[str, Any]]:
        """Callbacks residents asked for, due on `day` inside the period, and whether they were made."""
        due = []
        window = timedelta(minutes=self.profile.callback_window_minutes)
        dialed = self.events("call.dialed")
        for outcome in self.events("call.outcome"):
            callback = outcome.data.get("callback_at")
            if not callback:
                continue
            moment = datetime.fromisoformat(callback).astimezone(TOKYO)
            if moment.date() != day or not self.in_period(moment):
                continue
            made = any(
                c.data["case"] == outcome.data["case"] and abs(c.at - moment) <= window and c.at >= outcome.at
                for c in dialed
            )
            due.append({"case": outcome.data["case"], "at": moment, "seat": outcome.actor, "made": made})
        return sorted(due, key=lambda c: c["at"])

    def inbound_callbacks(self, day: date) -> list[Event]:
        return [e for e in self.events("callback.received") if e.at.date() == day]

    def callback_results(self) -> dict[str, Event]:
        """Each resident's callback's outcome (callback.outcome) by the inbound call's id."""
        return {str(e.data["call"]): e for e in self.events("callback.outcome")}

    def figures(self, day: date, *, actor: str | None = None) -> dict[str, Any]:
        """Calls, contacts and promises of a day and of its month (an operator's own with `actor`)."""
        month = f"{day:%Y-%m}"

        def mine(e: Event) -> bool:
            return actor is None or e.actor == actor

        outcomes = [e for e in self.events("call.outcome") if mine(e)]
        # Residents' callbacks reach cases and take promises too (compliance's KPIs count them).
        callbacks = [e for e in self.events("callback.outcome") if mine(e)]
        dialed = self.events("call.dialed")

        def period(events: list[Event], today: bool) -> Iterator[Event]:
            for e in events:
                if (e.at.date() == day) if today else (f"{e.at:%Y-%m}" == month and e.at.date() <= day):
                    yield e

        result: dict[str, Any] = {}
        for name, today in (("today", True), ("month", False)):
            outs = list(period(outcomes, today))
            talks = outs + list(period(callbacks, today))
            reached = {
                e.data["case"]
                for e in talks
                if e.data["party"] == "self" or (e.data["party"] == "household" and e.data["proxy_consent"])
            }
            if actor is None:
                called = {e.data["case"] for e in period(dialed, today)}
                calls = sum(1 for _ in period(dialed, today))
                reached &= called  # as compliance's KPI-CONTACT: a callback counts for a called case
            else:
                called = {e.data["case"] for e in talks}
                calls = len(outs)
            result[name] = {
                "calls": calls,
                "cases": len(called),
                "contacts": len(reached),
                "promises": len({e.data["case"] for e in talks if e.data.get("promise")}),
                "contact_rate": (len(reached) / len(called)) if called else None,
            }
        result["contact_target"] = self.profile.contact_target
        return result

    def reports_due(self, today: date) -> list[dict[str, Any]]:
        """Reports not yet submitted and their deadlines: the daily report of each day with calls
        (REPORT-DAILY: 12:00 the next day, or the next business day by the profile) and the
        monthly report of each month with calls (REPORT-MONTHLY: by the end of the profile's
        business days after the month's last calling day, the later of its last scheduled day
        and its last call), soonest first."""
        submitted = {(e.data["kind"], e.data["covers"]) for e in self.events("report.submitted")}
        days = sorted({e.at.date() for e in self.events("call.dialed") if e.at.date() <= today})
        due = []
        for day in days:
            if ("daily", day.isoformat()) in submitted:
                continue
            if self.profile.daily_counts == "business_days":
                next_day = add_business_days(day, 1)
            else:
                next_day = day + timedelta(days=1)
            deadline = datetime.combine(next_day, self.profile.daily_deadline, TOKYO)
            due.append({"kind": "daily", "covers": day, "deadline": deadline})
        for month in sorted({f"{d:%Y-%m}" for d in days}):
            if ("monthly", month) in submitted:
                continue
            scheduled = [d for d in self.calling_days(month) if f"{d:%Y-%m}" == month]
            last = max([*scheduled, *(d for d in days if f"{d:%Y-%m}" == month)])
            deadline = end_of_day(add_business_days(last, self.profile.monthly_business_days))
            due.append({"kind": "monthly", "covers": month, "deadline": deadline, "last_day": last})
        return sorted(due, key=lambda r: r["deadline"])
