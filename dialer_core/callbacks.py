"""Inbound callbacks to the center's numbers, over real SIP.

Each of the center's incoming lines is a baresip instance (one call per line:
the trunk hunts for a free one). In the calling hours a call is answered with
the recorded message (`audio_source aufile,MESSAGE.wav`) and waits, queued,
until a seat is ready; then it is transferred (SIP REFER) to that seat's
callback account, which answers at once, so the caller is with the operator.
Outside the hours the voice guide is played and the line hangs up. Each call
is one `callback.received` with `queued_s` and `handled` (`operator`,
`voice_guide`, or `dropped` when the caller hung up while queued), and, when
put through to a seat, `call`: the seats API's id of the inbound call, which
the operator's `callback.outcome` names. The caller
is named through the data store's keyed-hash index of numbers (`case`, or
null when unknown); no clear number is stored.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ledger.event import uuid7

from .seats import Call, SeatBoard
from .sip import CtrlTcp, SipError

Record = Callable[[str, dict[str, Any], datetime], None]


def caller_number(peeruri: str) -> str:
    """The user part of the caller's URI: sip:09011112222@host -> 09011112222."""
    user = peeruri.split(":", 1)[-1].split("@", 1)[0]
    return user.split(";", 1)[0]


@dataclass
class CallbackLine:
    """One incoming line of the center: answers, queues, transfers to a ready seat, or plays the guide."""

    ctrl: CtrlTcp
    board: SeatBoard
    seat_uri: Callable[[str], str]  # a seat's callback account (answermode=auto)
    in_hours: Callable[[datetime], bool]
    identify: Callable[[str], str | None]  # calling number -> case reference
    record: Record
    clock: Callable[[], datetime]
    message_wav: Path
    guide_wav: Path
    guide_s: float = 20.0  # how long the voice guide plays before the line hangs up
    max_queue_s: float = 1800.0
    name: str | None = None  # the line's name on the manager's desk ([[lines]] name)
    handled: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                event = self.ctrl.events.get(timeout=0.2)
            except queue.Empty:
                continue
            if event is None:
                return
            if event.get("type") == "CALL_INCOMING":
                try:
                    self.take(str(event.get("peeruri", "")))
                except SipError:  # the line's phone went away mid-call (or was closed): the line ends
                    return

    def _next_event(self, timeout: float) -> dict[str, Any] | None:
        try:
            event = self.ctrl.events.get(timeout=timeout)
        except queue.Empty:
            return {}
        return event

    def take(self, peeruri: str) -> dict[str, Any]:
        at = self.clock()
        case = self.identify(caller_number(peeruri))
        if not self.in_hours(at):
            self.ctrl.command("ausrc", f"aufile,{self.guide_wav}")
            self.ctrl.command("accept")
            end = time.monotonic() + self.guide_s
            while time.monotonic() < end:
                event = self._next_event(end - time.monotonic())
                if event is None or event.get("type") == "CALL_CLOSED":
                    break
            else:
                self._hangup()
            return self._record(at, case, 0, "voice_guide")
        self.ctrl.command("ausrc", f"aufile,{self.message_wav}")
        self.ctrl.command("accept")
        queued = time.monotonic()
        # the manager's desk lists the caller while they wait (GET /v1/callbacks/waiting)
        waiting = uuid7(self.clock())
        self.board.waiting_add(waiting, case, self.clock(), self.name)
        try:
            while time.monotonic() - queued < self.max_queue_s:
                call_id = uuid7(self.clock())
                seat = self.board.claim_ready(functools.partial(self._inbound, call_id, case, queued))
                if seat is not None:
                    queued_s = round(time.monotonic() - queued)
                    if self._transfer(seat):
                        return self._record(at, case, queued_s, "operator", seat=seat, call=call_id)
                    self.board.release_claim(seat)
                event = self._next_event(0.2)
                if event is None or event.get("type") == "CALL_CLOSED":
                    return self._record(at, case, round(time.monotonic() - queued), "dropped")
            self._hangup()
            return self._record(at, case, round(time.monotonic() - queued), "dropped")
        finally:  # put through, hung up, timed out, or the line's phone went away
            self.board.waiting_remove(waiting)

    def _inbound(self, call_id: str, case: str | None, queued: float, _seat: str) -> Call:
        """The seat's call for a caller put through to it (`queued`: time.monotonic() at answer)."""
        return Call(
            call=call_id,
            direction="inbound",
            case=case,
            number=None,
            caller_id=None,
            started=self.clock().isoformat(),
            state="connected",
            queued_s=round(time.monotonic() - queued),
        )

    def _transfer(self, seat: str) -> bool:
        """REFER the caller to the seat; True once the caller's leg to us has closed after it."""
        try:
            self.ctrl.command("transfer", self.seat_uri(seat))
        except SipError:
            return False
        end = time.monotonic() + 10
        while time.monotonic() < end:
            event = self._next_event(0.2)
            if event is None:
                return False
            kind = event.get("type")
            if kind == "CALL_TRANSFER_FAILED":
                return False
            if kind == "CALL_CLOSED":
                return True
        self._hangup()
        return True

    def _hangup(self) -> None:
        with contextlib.suppress(SipError):
            self.ctrl.command("hangup")

    def _record(
        self,
        at: datetime,
        case: str | None,
        queued_s: int,
        handled: str,
        *,
        call: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"case": case, "queued_s": queued_s, "handled": handled}
        if call is not None:  # put through to a seat: the seats API's id of the call, which the
            data["call"] = call  # operator's callback.outcome names (OUTCOME-HAS-CALL)
        self.record("callback.received", data, at)
        self.handled.append({**data, **extra})
        return data
