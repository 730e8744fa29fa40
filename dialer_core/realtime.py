"""The loop in real time: the Dialer's plan and guard served to the seats as they become ready.

`kansa demo` runs `Dialer.run_day` on simulated time. A real run has seats
that become ready whenever their operators are done: `SeatPlan` gives each
ready seat the next call — callbacks due first, then the schedule's slots
whose time has come — each passed by the guard at the moment of dialling
(`Scheduler.refuse` with the clock's now, not the planned time), with the
next registered caller id (rotated over the center's registered landlines;
no dialling without the profile's minimum of lines). What the ledger says
(stops, completions, callback requests, lines) is applied before each
choice. `done` records the attempt and plans the number's next one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .adapters import DialResult
from .follow import Knowledge
from .scheduler import Attempt, CaseProgress, Scheduler, Slot
from .seats import Planned


@dataclass
class CallerIds:
    """The center's registered outgoing lines (callerid.registered / retired), used in turn."""

    minimum: int = 1
    lines: list[str] = field(default_factory=list)
    _next: int = 0

    def apply(self, event: dict[str, Any]) -> None:
        kind, data = event.get("type"), event.get("data") or {}
        if (
            kind == "callerid.registered"
            and data.get("kind") == "landline"
            and data["number"] not in self.lines
        ):
            self.lines.append(data["number"])
        elif kind == "callerid.retired" and data.get("number") in self.lines:
            self.lines.remove(data["number"])

    def take(self) -> str | None:
        if len(self.lines) < self.minimum:
            return None
        line = self.lines[self._next % len(self.lines)]
        self._next += 1
        return line


@dataclass
class SeatPlan:
    scheduler: Scheduler
    cases: dict[str, CaseProgress]
    phone_of: Callable[[str, str], str]
    knowledge: Knowledge = field(default_factory=Knowledge)
    caller_ids: CallerIds = field(default_factory=CallerIds)
    queue: list[Slot] = field(default_factory=list)
    refused: list[tuple[Slot, str]] = field(default_factory=list)
    waiting: str | None = None  # why nothing is dialled now, when that is not just "nothing due"
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _taken: dict[tuple[str, str], Slot] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.queue:
            for i, progress in enumerate(self.cases.values()):
                for number in progress.numbers:
                    slot = self.scheduler.first_slot(progress, number, i + int(number))
                    if slot is not None:
                        self.queue.append(slot)

    def learn(self) -> None:
        """Applies what the ledger said: stops, completions, ended numbers, requested callbacks."""
        k = self.knowledge
        for case, at in k.stopped.items():
            if case in self.cases and self.cases[case].stopped_at is None:
                self.cases[case].stopped_at = at
        for case in k.completed:
            if case in self.cases:
                self.cases[case].completed = True
        for case, number in k.ended_numbers:
            if case in self.cases and number in self.cases[case].numbers:
                self.cases[case].numbers[number].ended = True
        for case, at in list(k.callbacks.items()):
            progress = self.cases.get(case)
            if progress is not None and self.scheduler.in_period(at):
                number = next(iter(progress.numbers))
                self.queue.append(Slot(at, case, number, callback=True))
            k.callbacks.pop(case)

    def __call__(self, seat: str, now: datetime) -> Planned | None:
        with self._lock:
            self.learn()
            due = sorted((s for s in self.queue if s.at <= now), key=lambda s: (not s.callback, s.at))
            for slot in due:
                if (slot.case, slot.number) in self._taken:
                    continue  # being dialled on another seat
                self.queue.remove(slot)
                progress = self.cases[slot.case]
                reason = self.scheduler.refuse(progress, slot.number, now, callback=slot.callback)
                if reason is not None:
                    self.refused.append((slot, reason))
                    retry = None if slot.callback else self.scheduler.next_slot(progress, slot.number)
                    if retry is not None:
                        self.queue.append(retry)
                    continue
                caller_id = self.caller_ids.take()
                if caller_id is None:
                    self.queue.append(slot)
                    self.waiting = "登録された発信番号が足りない / not enough registered caller ids"
                    return None
                self.waiting = None
                self._taken[(slot.case, slot.number)] = slot
                return Planned(
                    slot.case, slot.number, self.phone_of(slot.case, slot.number), caller_id, slot.callback
                )
            return None

    def done(self, planned: Planned, result: DialResult, at: datetime) -> None:
        with self._lock:
            slot = self._taken.pop((planned.case, planned.number))
            progress = self.cases[planned.case]
            number = progress.numbers[planned.number]
            number.attempts.append(Attempt(at, self.scheduler.band_of(at), result.result, slot.callback))
            if result.result == "invalid":
                number.ended = True
            follow = self.scheduler.next_slot(progress, planned.number)
            if follow is not None:
                self.queue.append(follow)

    def give_back(self, planned: Planned) -> None:
        with self._lock:
            slot = self._taken.pop((planned.case, planned.number), None)
            if slot is not None:
                self.queue.append(slot)
