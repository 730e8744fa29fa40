"""Telephony and SMS as interfaces, and a seeded simulator behind both.

A real deployment plugs a PBX / predictive dialer and an SMS aggregator in
behind the same two protocols. The simulator makes months that look like the
contract's world: answer rates by time band and day type, voicemail, busy,
invalid numbers and fax, household members, promises, callback requests,
refusals and escalation requests; carriers and reassigned numbers for SMS.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol


@dataclass(frozen=True)
class DialResult:
    result: str  # answered, no_answer, busy, voicemail, unavailable, invalid
    ring_s: int
    ended_at: datetime
    message_left: bool | None = None
    answered_at: datetime | None = None  # when the network answered (real telephony)
    sip_status: int | None = None  # the final SIP status of an unanswered call, if any
    lost: bool = False  # the seat's phone went away during the call


@dataclass(frozen=True)
class Conversation:
    """What the operator learnt on an answered call (the simulated resident's side)."""

    party: str  # self, household, other
    proxy_consent: bool
    script: str
    disposition: str
    promise_days: int | None
    promise_amount: int | None
    wants_callback: bool
    requests: tuple[str, ...]


class Telephony(Protocol):
    """Dials a real phone number (decrypted from the data store just before; never logged).

    `dial` places one call and returns when it has ended (docs/dialer.md, "Writing
    a telephony adapter"). `weekday` is for simulators; `caller_id` is the
    registered number the call shows; `progress(state, info)`, when given, is
    told `ringing`, `connected` and `ended` as they happen.
    """

    def dial(
        self,
        phone: str,
        at: datetime,
        *,
        weekday: bool = True,
        caller_id: str | None = None,
        progress: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> DialResult: ...

    def talk(self, case: str, number: str, at: datetime) -> Conversation: ...


class SmsGateway(Protocol):
    def lookup(self, case: str, number: str) -> tuple[str, str]: ...  # carrier, reassigned

    def send(self, case: str, number: str, at: datetime) -> tuple[str, str]: ...  # message id, status


@dataclass
class Simulator:
    """Both adapters, from one seeded random source: the same seed gives the same months."""

    seed: int = 1
    answer_rate: float | None = None  # a rehearsal's share of answered calls, machines included (1.0: all)
    rng: random.Random = field(init=False)
    _invalid: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _answer_rate(self, at: datetime, weekday: bool) -> float:
        if self.answer_rate is not None:
            return self.answer_rate
        if not weekday:
            return 0.45
        return {9: 0.30, 10: 0.30, 11: 0.30}.get(at.hour, 0.50 if at.hour >= 17 else 0.28)

    def dial(
        self,
        phone: str,
        at: datetime,
        *,
        weekday: bool = True,
        caller_id: str | None = None,
        progress: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> DialResult:
        rng = self.rng
        invalid = self.answer_rate != 1.0 and self._invalid.setdefault(phone, rng.random() < 0.03)
        if invalid:
            return DialResult("invalid", 0, at + timedelta(seconds=5))
        if rng.random() < self._answer_rate(at, weekday):
            return DialResult(
                "answered", rng.randrange(5, 25), at + timedelta(seconds=rng.randrange(60, 400))
            )
        roll = rng.random()
        if roll < 0.60 or (0.70 <= roll < 0.95 and self.answer_rate is not None):
            # (with a fixed answer_rate an answering machine counts as answered: the rest ring out)
            ring = rng.randrange(35, 46)
            return DialResult("no_answer", ring, at + timedelta(seconds=ring + 2))
        if roll < 0.70:
            return DialResult("busy", 0, at + timedelta(seconds=3))
        if roll < 0.95:
            return DialResult(
                "voicemail", rng.randrange(10, 30), at + timedelta(seconds=60), message_left=True
            )
        return DialResult("unavailable", 0, at + timedelta(seconds=8))

    def talk(self, case: str, number: str, at: datetime) -> Conversation:
        rng = self.rng
        roll = rng.random()
        requests: tuple[str, ...] = ()
        if roll < 0.60:  # the person themselves
            if rng.random() < 0.08:
                return Conversation(
                    "self",
                    False,
                    "incomplete",
                    "refused",
                    None,
                    None,
                    False,
                    ("refusal",) if rng.random() < 0.5 else (),
                )
            if rng.random() < 0.07:
                requests = (rng.choice(["installment", "tax_dispute", "complaint"]),)
            promise = rng.random() < 0.4
            return Conversation(
                "self",
                False,
                "completed",
                "completed",
                14 if promise else None,
                rng.randrange(3, 60) * 1000 if promise else None,
                False,
                requests,
            )
        if roll < 0.90:  # someone of the household
            if rng.random() < 0.6:
                return Conversation("household", True, "completed", "completed", None, None, False, ())
            return Conversation(
                "household", False, "not_started", "absent_now", None, None, rng.random() < 0.5, ()
            )
        return Conversation("other", False, "not_started", "number_unusable", None, None, False, ())

    def lookup(self, case: str, number: str) -> tuple[str, str]:
        carrier = self.rng.choices(["docomo", "au", "softbank", "rakuten", "other"], [40, 28, 25, 5, 2])[0]
        return carrier, "possibly" if self.rng.random() < 0.03 else "no"

    def send(self, case: str, number: str, at: datetime) -> tuple[str, str]:
        status = "delivered" if self.rng.random() < 0.95 else "failed"
        return f"M{self.rng.getrandbits(40):010x}", status


class SimulatedPhone:
    """One seat's phone for a rehearsal on the wall clock (`[telephony] kind = "simulator"`):
    the `Simulator` decides each call's result; the call then takes real time. An answered call
    rings `ring_s` seconds, is connected, and stays so until the operator hangs up (the console
    does when the outcome is recorded) or `max_call_s`; an unanswered one rings for the seconds
    the simulator drew (at least `no_answer_s`, the profile's ring time) and ends. The seats'
    phones share one Simulator (and `lock`)."""

    def __init__(
        self,
        simulator: Simulator,
        clock: Callable[[], datetime],
        *,
        ring_s: float = 3.0,
        no_answer_s: int = 35,
        max_call_s: float = 1800.0,
        lock: threading.Lock | None = None,
        pace: float = 1.0,
    ) -> None:
        self.simulator, self.clock = simulator, clock
        self.ring_s, self.no_answer_s, self.max_call_s = ring_s, no_answer_s, max_call_s
        self.pace = pace  # wall seconds per simulated second of an unanswered call's ringing (tests)
        self._lock = lock or threading.Lock()
        self._hung = threading.Event()

    def dial(
        self,
        phone: str,
        at: datetime,
        *,
        weekday: bool = True,
        caller_id: str | None = None,
        progress: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> DialResult:
        self._hung.clear()
        with self._lock:
            drawn = self.simulator.dial(phone, at, weekday=weekday, caller_id=caller_id)
        tell = progress or (lambda state, info: None)
        if drawn.result in ("invalid", "busy", "unavailable"):
            return DialResult(drawn.result, 0, self.clock())
        tell("ringing", {})
        rang = time.monotonic()
        # A voicemail box answers like a person: the operator hears it and says which it was.
        answers = drawn.result in ("answered", "voicemail")
        ring_for = self.ring_s if answers else max(drawn.ring_s, self.no_answer_s)
        if self._hung.wait(ring_for if answers else ring_for * self.pace) or not answers:
            # the operator gave up, or nobody answers: ringing as long as it lasted
            ring = (time.monotonic() - rang) / (1.0 if answers else self.pace)
            ring = ring_for if not answers and not self._hung.is_set() else ring
            result = "no_answer" if ring >= self.no_answer_s else "unavailable"
            return DialResult(result, round(ring), self.clock())
        answered = self.clock()
        tell("connected", {})
        self._hung.wait(self.max_call_s)
        return DialResult("answered", round(self.ring_s), self.clock(), answered_at=answered)

    def hangup(self) -> None:
        self._hung.set()
