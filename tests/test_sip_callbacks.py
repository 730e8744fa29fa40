"""Inbound callbacks over real SIP: a resident's baresip calls the center's line.

In hours the line answers with the recorded message, queues the caller until a
seat is ready, and transfers (REFER) the caller to the seat, which answers at
once; outside hours the caller hears the voice guide. Each is one
callback.received, the caller named through the data store's keyed-hash index.
"""

from __future__ import annotations

import math
import struct
import threading
import time
import wave
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from contract.calendar import TOKYO
from dialer_core.callbacks import CallbackLine, caller_number
from dialer_core.datastore import DataStore, Resident
from dialer_core.seats import SeatBoard
from dialer_core.sip import Baresip, baresip_available

pytestmark = pytest.mark.skipif(not baresip_available(), reason="baresip-core is not installed")


def tone(path: Path, seconds: float, hz: int) -> Path:
    """A 48 kHz stereo WAV (what the instances' aufile source expects)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(48000)
        frames = b"".join(
            struct.pack("<hh", v, v)
            for v in (int(8000 * math.sin(2 * math.pi * hz * i / 48000)) for i in range(int(48000 * seconds)))
        )
        out.writeframes(frames)
    return path


class Rig:
    def __init__(self, tmp: Path, in_hours: bool) -> None:
        self.store = DataStore(tmp / "store.db")
        _, placed = self.store.add_batch(
            "B1", "2026-09", [Resident("", "202609-00001", "佐藤 花子", ("09011112222",), "その他", 1000, {})]
        )
        self.case = placed[0].case_ref
        self.seat = Baresip(tmp / "s01", {"s01": "manual", "s01-cb": "auto"}).start()
        self.line = Baresip(tmp / "line1", {"center": "manual"}).start()
        self.board = SeatBoard(["s01"])
        self.events: list[tuple[str, dict[str, Any]]] = []
        assert self.line.ctrl is not None
        self.callback = CallbackLine(
            self.line.ctrl,
            self.board,
            seat_uri=lambda seat: self.seat.uri(f"{seat}-cb"),
            in_hours=lambda at: in_hours,
            identify=lambda number: found[0] if (found := self.store.caller(number)) else None,
            record=lambda kind, data, at: self.events.append((kind, data)),
            clock=lambda: datetime.now(TOKYO),
            message_wav=tone(tmp / "message.wav", 5, 440),
            guide_wav=tone(tmp / "guide.wav", 5, 660),
            guide_s=2,
        )
        self.thread = threading.Thread(target=self.callback.run, daemon=True)
        self.thread.start()

    def caller(self, tmp: Path, number: str) -> Baresip:
        return Baresip(tmp / f"caller-{number}", {number: "manual"}).start()

    def close(self) -> None:
        self.callback.stop()
        self.thread.join(5)
        for phone in (self.seat, self.line):
            phone.stop()
        self.store.close()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


def events_of(ctrl: Any, seconds: float) -> list[dict[str, Any]]:
    seen = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            event = ctrl.events.get(timeout=0.1)
        except Exception:
            continue
        if event is None:
            break
        seen.append(event)
    return seen


@pytest.fixture
def in_hours(tmp: Path) -> Iterator[Rig]:
    rig = Rig(tmp, in_hours=True)
    yield rig
    rig.close()


@pytest.fixture
def after_hours(tmp: Path) -> Iterator[Rig]:
    rig = Rig(tmp, in_hours=False)
    yield rig
    rig.close()


def test_in_hours_queued_then_connected_to_the_first_ready_seat(in_hours: Rig, tmp: Path) -> None:
    rig = in_hours
    caller = rig.caller(tmp, "09011112222")
    try:
        assert caller.ctrl is not None
        caller.ctrl.command("dial", rig.line.uri("center"))
        first = events_of(caller.ctrl, 3)  # answered with the message, queued: no seat is ready
        assert any(e.get("type") == "CALL_ESTABLISHED" for e in first)
        assert rig.events == []
        # listed as waiting for the manager's desk: the case, since when, never the number
        [waiting] = rig.board.waiting()
        assert waiting["case"] == rig.case and set(waiting) == {"case", "since", "line"}
        assert "09011112222" not in str(waiting)
        rig.board.ready("s01", "op07")
        later = events_of(caller.ctrl, 4)
        established = [e for e in later if e.get("type") == "CALL_ESTABLISHED"]
        assert established and "s01-cb" in established[-1]["peeruri"]  # the caller is with the seat
        assert rig.board.waiting() == []  # put through: no longer waiting
    finally:
        caller.stop()
    [(kind, data)] = rig.events
    assert kind == "callback.received"
    assert data["case"] == rig.case and data["handled"] == "operator"
    assert 2 <= data["queued_s"] <= 4  # answered at once, a seat ready about 3 s after the dial
    seat = rig.board.get("s01")
    assert seat["call"]["direction"] == "inbound" and seat["call"]["case"] == rig.case
    # The seats API's id of the inbound call: the operator's callback.outcome names it.
    assert data["call"] == seat["call"]["call"]


def test_outside_hours_the_voice_guide(after_hours: Rig, tmp: Path) -> None:
    rig = after_hours
    caller = rig.caller(tmp, "0258991234")  # not a number of any case
    try:
        assert caller.ctrl is not None
        caller.ctrl.command("dial", rig.line.uri("center"))
        seen = [e.get("type") for e in events_of(caller.ctrl, 4)]
        assert "CALL_ESTABLISHED" in seen and "CALL_CLOSED" in seen  # heard the guide, then the line hung up
    finally:
        caller.stop()
    assert rig.events == [("callback.received", {"case": None, "queued_s": 0, "handled": "voice_guide"})]


def test_caller_hanging_up_while_queued_is_dropped(in_hours: Rig, tmp: Path) -> None:
    rig = in_hours
    caller = rig.caller(tmp, "09011112222")
    try:
        assert caller.ctrl is not None
        caller.ctrl.command("dial", rig.line.uri("center"))
        events_of(caller.ctrl, 2)
        assert [w["case"] for w in rig.board.waiting()] == [rig.case]
        caller.ctrl.command("hangup")
        time.sleep(1)
    finally:
        caller.stop()
    assert rig.board.waiting() == []  # hung up: no longer waiting
    [(_, data)] = rig.events
    assert (data["case"], data["handled"]) == (rig.case, "dropped")


def test_caller_number_and_the_index() -> None:
    assert caller_number("sip:09011112222@127.0.0.1:5060;transport=udp") == "09011112222"
