"""The dialling loop: plan → guard → dial → record `call.dialed` → hand the call to an operator.

`Dialer` owns one month of calls for a campaign. Each calling day it takes the
slots the scheduler planned for that day in time order (slots at the same
minute in the order of the city's file), asks the guard (`Scheduler.refuse`)
just before dialling, dials through a telephony adapter (docs/dialer.md,
"Writing a telephony adapter"), records `call.dialed` as the core (the
ledger's key), and hands the ended call to an operator, who records the
outcome with their own key and may ask for a callback slot. The scheduler then
plans the number's next attempt.

A refused slot is never dialled: the refusal and its reason are kept (the
demo's summary prints them); when the guard refused only for variation (a
callback took the band first), the number's next compliant slot is tried.

The loop knows nothing of how time passes or who the operators are: the
caller gives the telephony adapter, the operator hand-off and the writer.
`kansa demo` drives it in simulated time (kansa/demo/); a deployment drives
the same steps per seat in real time (dialer_core/seats.py's SeatRunner,
which shares `dialed_data`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from ledger.event import uuid7

from .adapters import DialResult, Telephony
from .campaign import IsWeekday, national_is_weekday
from .scheduler import Attempt, CaseProgress, NumberProgress, Scheduler, Slot

# Writes an event of the dialling core (type, when, data); the ledger's key signs it.
Record = Callable[[str, datetime, dict[str, Any]], None]


def dialed_data(case: str, number: str, call: str, caller_id: str, result: DialResult) -> dict[str, Any]:
    """The data of `call.dialed` (events.md) for a call that has ended with `result`."""
    data: dict[str, Any] = {
        "case": case,
        "number": number,
        "call": call,
        "caller_id": caller_id,
        "ended_at": result.ended_at.isoformat(),
        "ring_s": result.ring_s,
        "result": result.result,
    }
    if result.result == "voicemail":
        data["message_left"] = bool(result.message_left)
    return data


@dataclass(frozen=True)
class Dialled:
    """A call that has ended, as handed to the operator."""

    slot: Slot
    day: date
    at: datetime  # when it was really dialled (the clock of the call's events)
    call: str
    result: DialResult
    case: CaseProgress
    number: NumberProgress


# The operator's side of an ended call: records the outcome, returns the slots it makes due
# (a callback time the resident asked for, inside the calling period).
HandOver = Callable[[Dialled], list[Slot]]


@dataclass
class Dialer:
    """One campaign month of the loop. `cases` are in the order of the city's file."""

    scheduler: Scheduler
    cases: dict[str, CaseProgress]
    telephony: Telephony
    phone_of: Callable[[str, str], str]  # (case, number ref) -> the number to dial, from the data store
    record: Record
    hand_over: HandOver
    caller_id: Callable[[], str]  # the registered outgoing line this call shows
    call_id: Callable[[datetime], str] = uuid7  # the call's reference, a UUIDv7 of when it is dialled
    is_weekday: IsWeekday = national_is_weekday
    # When the core really dials a slot planned for `planned`: the identity for a correct clock;
    # the demo injects a clock running behind with it.
    actual_time: Callable[[datetime], datetime] = lambda planned: planned
    queue: list[Slot] = field(default_factory=list)
    refused: list[tuple[Slot, str]] = field(default_factory=list)
    calls: int = 0

    def __post_init__(self) -> None:
        # Slots at the same minute go in the order of the city's file: case refs are random by
        # design, and ordering by them would make the same seed draw differently on each run.
        self._place = {ref: i for i, ref in enumerate(self.cases)}
        for i, progress in enumerate(self.cases.values()):
            for number in progress.numbers:
                slot = self.scheduler.first_slot(progress, number, i + int(number))
                if slot is not None:
                    self.queue.append(slot)

    def _in_order(self, slot: Slot) -> tuple[datetime, int, str, bool]:
        return (slot.at, self._place[slot.case], slot.number, slot.callback)

    def run_day(self, day: date) -> int:
        """Works through the day's slots (and those the day's calls make due); returns the calls made."""
        scheduler = self.scheduler
        today = sorted((s for s in self.queue if s.at.date() == day), key=self._in_order)
        self.queue = [s for s in self.queue if s.at.date() != day]
        made = 0
        while today:
            slot = today.pop(0)
            progress = self.cases[slot.case]
            reason = scheduler.refuse(progress, slot.number, slot.at, callback=slot.callback)
            if reason is not None:
                self.refused.append((slot, reason))
                # Refused only for variation (a callback came first): try the next compliant slot.
                retry = None if slot.callback else scheduler.next_slot(progress, slot.number)
                if retry is not None and retry.at > slot.at:
                    (today if retry.at.date() == day else self.queue).append(retry)
                    today.sort(key=self._in_order)
                continue
            made += 1
            for new in self.dial(slot, day):
                (today if new.at.date() == day else self.queue).append(new)
            today.sort(key=self._in_order)
        self.calls += made
        return made

    def dial(self, slot: Slot, day: date) -> list[Slot]:
        """Dials one slot the guard allowed, records it, hands it over; returns the slots it makes due."""
        real = self.actual_time(slot.at)
        progress = self.cases[slot.case]
        # The core reads the number it dials from the encrypted store (a machine: no access.viewed);
        # it goes to the telephony adapter and nowhere else.
        phone = self.phone_of(slot.case, slot.number)
        call = self.call_id(real)
        caller_id = self.caller_id()
        result = self.telephony.dial(phone, real, weekday=self.is_weekday(day), caller_id=caller_id)
        self.record("call.dialed", real, dialed_data(slot.case, slot.number, call, caller_id, result))
        number = progress.numbers[slot.number]
        number.attempts.append(
            Attempt(slot.at, self.scheduler.band_of(slot.at), result.result, slot.callback)
        )
        new = self.hand_over(Dialled(slot, day, real, call, result, progress, number))
        # A requested time comes on top of the regular attempts (the contract's callback on the
        # third call is a fourth call): replacing them could leave no day for the third attempt.
        follow = self.scheduler.next_slot(progress, slot.number)
        if follow is not None:
            new.append(follow)
        return new


__all__ = ["Dialer", "Dialled", "HandOver", "Record", "dialed_data"]
