"""A seat end to end over real SIP and the real seats API: the console signs in, the loop
dials a baresip resident from the seat's baresip, the console sees the call ring and
connect, classifies it, records the outcome, and the seat is ready again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from contract.calendar import TOKYO
from dialer_core.seats import Planned, SeatBoard, SeatRunner, SeatsApi
from dialer_core.sip import Baresip, SipConfig, SipTelephony, baresip_available
from tests.test_sip import Resident, Stamps, assert_ring, in_thread

pytestmark = pytest.mark.skipif(not baresip_available(), reason="baresip-core is not installed")
TOKEN = "console-token"
SEAT_PHONE: list[StampedPhone] = []  # the phone of the call run_one placed last


def now() -> datetime:
    return datetime.now(TOKYO)


class Console:
    """What the operators' console does, over HTTP."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.post(path, json=body or {})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_state(self, seat: str, states: set[str], seconds: float = 60) -> dict[str, Any]:
        snapshot = self.http.get(f"/v1/seats/{seat}").json()
        deadline = datetime.now().timestamp() + seconds
        while snapshot["state"] not in states:
            assert datetime.now().timestamp() < deadline, snapshot
            snapshot = self.http.get(f"/v1/seats/{seat}", params={"wait": snapshot["version"]}).json()
        return dict(snapshot)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Baresip, SeatBoard, Console, list[tuple[str, dict[str, Any]]]]]:
    phone = Baresip(tmp_path / "s01", {"s01": "manual"}).start()
    board = SeatBoard(["s01"])
    events: list[tuple[str, dict[str, Any]]] = []
    with SeatsApi(board, TOKEN) as api:
        console = Console(api.url)
        yield phone, board, console, events
        console.http.close()
    phone.stop()


class StampedPhone(SipTelephony):
    """The seat's SipTelephony, noting when it reported each state (the seat's own signalling)."""

    stamps: Stamps

    def dial(self, phone: str, at: datetime, *, progress: Any = None, **kw: Any) -> Any:
        self.stamps = Stamps()

        def both(state: str, info: dict[str, Any]) -> None:
            self.stamps(state)
            if progress is not None:
                progress(state, info)

        return super().dial(phone, at, progress=both, **kw)


def run_one(
    phone: Baresip, board: SeatBoard, events: list[Any], uri: str, **kw: Any
) -> tuple[threading.Thread, list[BaseException]]:
    assert phone.ctrl is not None
    telephony = StampedPhone(phone.ctrl, SipConfig(uri_template=uri))
    SEAT_PHONE[:] = [telephony]
    queue = [Planned("C0001", "1", "090-1111-2222", "0258-12-3456")]

    def plan(seat: str, at: datetime) -> Planned | None:
        return queue.pop() if queue else None

    runner = SeatRunner(
        "s01", telephony, board, plan, lambda kind, data, at: events.append((kind, data)), now, **kw
    )

    def one() -> None:
        assert board.wait_ready("s01", 10)
        planned = plan("s01", now())
        assert planned is not None
        runner.one(planned)

    return in_thread(one)


def joined(thread: threading.Thread, errors: list[BaseException]) -> None:
    """The seat's call ended in its thread, without an exception."""
    thread.join(20)
    assert not thread.is_alive() and errors == []


def test_answered_call_classified_as_voicemail_through_the_api(rig: Any, tmp_path: Path) -> None:
    phone, board, console, events = rig
    resident = Resident(tmp_path / "r", "09011112222", answer_after=2, reject_after=None, talk_s=2)
    try:
        assert console.http.get("/v1/seats/s01", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert console.post("/v1/seats/s01/ready", {"operator": "op07"})["state"] == "ready"
        thread, errors = run_one(phone, board, events, f"sip:{{phone}}@127.0.0.1:{resident.phone.sip_port}")
        ringing = console.wait_state("s01", {"ringing"})
        assert ringing["call"]["case"] == "C0001" and ringing["call"]["direction"] == "outbound"
        connected = console.wait_state("s01", {"connected"})
        call = connected["call"]["call"]
        early = console.http.post(f"/v1/calls/{call}/outcome", json={"event": None})
        assert early.status_code == 409  # not ended, not classified
        console.post(f"/v1/calls/{call}/classification", {"kind": "voicemail", "message_left": True})
        wrap = console.wait_state("s01", {"wrap_up"})  # the resident hung up after 2 s
        assert wrap["call"]["recorded"] is True
        after = console.post(f"/v1/calls/{call}/outcome", {"event": None})
        assert after["state"] == "ready" and after["call"] is None
        joined(thread, errors)
    finally:
        resident.stop()
    [(kind, data)] = events
    assert kind == "call.dialed"
    assert (data["result"], data["message_left"]) == ("voicemail", True)
    [rang] = resident.rings  # answered after 2 s
    assert_ring(data["ring_s"], SEAT_PHONE[0].stamps, rang, at_least=2)
    assert data["call"] == call and data["caller_id"] == "0258-12-3456"


def test_busy_is_recorded_and_waits_for_its_outcome(rig: Any, tmp_path: Path) -> None:
    phone, board, console, events = rig
    resident = Resident(tmp_path / "r", "09011112222", answer_after=None, reject_after=1)
    try:
        console.post("/v1/seats/s01/ready", {"operator": "op07"})
        thread, errors = run_one(phone, board, events, f"sip:{{phone}}@127.0.0.1:{resident.phone.sip_port}")
        joined(thread, errors)
    finally:
        resident.stop()
    assert [(k, d["result"]) for k, d in events] == [("call.dialed", "busy")]
    [rang] = resident.rings  # rejected after 1 s
    assert_ring(events[0][1]["ring_s"], SEAT_PHONE[0].stamps, rang, at_least=1)
    seat = console.http.get("/v1/seats/s01").json()
    assert seat["state"] == "wrap_up" and seat["call"]["result"] == "busy"  # the console records no_contact
    assert console.post(f"/v1/calls/{seat['call']['call']}/outcome", {"event": "e-1"})["state"] == "ready"


def test_seat_lost_mid_call_still_records(rig: Any, tmp_path: Path) -> None:
    phone, board, console, events = rig
    resident = Resident(tmp_path / "r", "09011112222", answer_after=1, reject_after=None, talk_s=30)
    try:
        console.post("/v1/seats/s01/ready", {"operator": "op07"})
        thread, errors = run_one(phone, board, events, f"sip:{{phone}}@127.0.0.1:{resident.phone.sip_port}")
        console.wait_state("s01", {"connected"})
        assert phone.process is not None
        phone.process.kill()  # the operator's softphone crashes
        joined(thread, errors)
    finally:
        resident.stop()
    [(_, data)] = events
    assert (data["result"], data["classified"]) == ("answered", False)
    [rang] = resident.rings  # answered after 1 s
    assert_ring(data["ring_s"], SEAT_PHONE[0].stamps, rang, at_least=1)
    assert console.http.get("/v1/seats/s01").json()["state"] == "offline"
