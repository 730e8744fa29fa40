"""Real SIP on loopback: a seat's baresip dials residents that are baresip instances too.

Each resident is scripted through its own ctrl_tcp: answer after a few
seconds, reject as busy (486), never answer, or not exist (404). The seat's
`SipTelephony` must record what they did: the result from the signalling and
the ring time measured from the 180 Ringing.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contract.calendar import TOKYO
from dialer_core.sip import (
    Baresip,
    SipConfig,
    SipError,
    SipTelephony,
    baresip_available,
    result_of,
    sip_status,
)

pytestmark = pytest.mark.skipif(not baresip_available(), reason="baresip-core is not installed")

AT = datetime(2026, 9, 20, 10, 0, tzinfo=TOKYO)
RESULTS: dict[str, Any] = {}  # what each resident did -> what was recorded; written to a ledger at the end


class Resident:
    """A resident's phone: a baresip whose incoming calls are handled by a script."""

    def __init__(
        self,
        home: Path,
        number: str,
        *,
        answer_after: float | None,
        reject_after: float | None,
        talk_s: float = 2.0,
    ) -> None:
        self.phone = Baresip(home, {number: "manual"}).start()
        self.number = number
        self.answer_after = answer_after
        self.reject_after = reject_after
        self.talk_s = talk_s
        self.seen: list[str] = []
        self.callers: list[str] = []  # who called: the From of each incoming call
        # What the resident's own signalling measured, to compare the seat's figures with:
        # each call's ringing (incoming -> its accept, reject or the caller's CANCEL) and talk.
        self.rings: list[float] = []
        self.talks: list[float] = []
        self._incoming_at: float | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(SipError):  # the test stopped the phone while the script waited
            self._script()

    def _wait(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise SipError("the test stopped the resident's phone")

    def _rang(self) -> None:
        if self._incoming_at is not None:
            self.rings.append(time.monotonic() - self._incoming_at)
            self._incoming_at = None

    def _script(self) -> None:
        ctrl = self.phone.ctrl
        assert ctrl is not None
        established_at = 0.0
        while True:
            event = ctrl.events.get()
            if event is None:
                return
            kind = str(event.get("type"))
            self.seen.append(kind)
            if kind == "CALL_INCOMING":
                self._incoming_at = time.monotonic()
                self.callers.append(str(event.get("peeruri")))
                if self.answer_after is not None:
                    self._wait(self.answer_after)
                    self._rang()  # measured when it sends the answer (the seat may end first)
                    ctrl.command("accept")
                elif self.reject_after is not None:
                    self._wait(self.reject_after)
                    self._rang()
                    ctrl.command("hangup")  # an unanswered incoming call is rejected: 486
            elif kind == "CALL_ESTABLISHED":
                established_at = time.monotonic()
                self._wait(self.talk_s)
                self.talks.append(time.monotonic() - established_at)
                ctrl.command("hangup")
            elif kind == "CALL_CLOSED":
                self._rang()  # the caller gave up while it rang

    def stop(self) -> None:
        self._stopping.set()
        self.phone.stop()
        self._thread.join(15)  # the script ends with its phone: nothing of it outlives the test
        assert not self._thread.is_alive(), "the resident's script did not end with its phone"


class Stamps:
    """A seat phone's `progress`: the states it reported, and when (monotonic) each first came."""

    def __init__(self) -> None:
        self.states: list[str] = []
        self.at: dict[str, float] = {}

    def __call__(self, state: str, info: Any = None) -> None:
        self.at.setdefault(state, time.monotonic())
        self.states.append(state)

    def ringing_s(self) -> float:
        """From the first 18x to the answer, or to the end of an unanswered call."""
        end = self.at["connected"] if "connected" in self.at else self.at["ended"]
        return end - self.at["ringing"]


def assert_ring(recorded: int, seat: Stamps, resident_rang: float, at_least: float) -> None:
    """`ring_s` is the seat's measured ringing rounded to whole seconds (docs/dialer.md), and that
    ringing is what the resident's phone did: it rang at least as long as its script said (plus
    at most a second of signalling delay between the two ends on a loaded machine)."""
    assert abs(recorded - seat.ringing_s()) <= 0.5 + 0.05, (recorded, seat.at)
    assert resident_rang >= at_least and abs(recorded - resident_rang) < 1.5, (recorded, resident_rang)


def in_thread(target: Any) -> tuple[threading.Thread, list[BaseException]]:
    """Runs `target` in a thread whose exception the test asserts on (never an unhandled one)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


@pytest.fixture(scope="module")
def seat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Baresip]:
    phone = Baresip(tmp_path_factory.mktemp("seat01"), {"seat01": "manual"}).start()
    yield phone
    phone.stop()


def dial(
    seat: Baresip, resident_uri: str, *, ring_timeout_s: int = 35, no_signal_s: int = 15
) -> tuple[Any, Stamps]:
    assert seat.ctrl is not None
    states = Stamps()
    phone = SipTelephony(
        seat.ctrl,
        SipConfig(uri_template=resident_uri, ring_timeout_s=ring_timeout_s, no_signal_s=no_signal_s),
    )
    result = phone.dial("090-1111-2222", AT, caller_id="0258-12-3456", progress=states)
    return result, states


def test_answered_after_three_seconds(seat: Baresip, tmp_path: Path) -> None:
    resident = Resident(tmp_path / "r", "09011112222", answer_after=3, reject_after=None, talk_s=2)
    try:
        result, states = dial(seat, f"sip:{{phone}}@127.0.0.1:{resident.phone.sip_port}")
    finally:
        resident.stop()
    assert result.result == "answered"
    [rang] = resident.rings  # 180 Ringing -> 200 OK: the resident waited 3 s (more under load)
    assert_ring(result.ring_s, states, rang, at_least=3)
    assert result.answered_at is not None
    [talked] = resident.talks  # the resident hung up after 2 s
    assert talked >= 2 and abs((result.ended_at - result.answered_at).total_seconds() - talked) < 1
    assert states.states == ["ringing", "connected", "ended"]
    assert "CALL_ESTABLISHED" in resident.seen
    RESULTS["answered_after_3s"] = result


def test_busy_486(seat: Baresip, tmp_path: Path) -> None:
    resident = Resident(tmp_path / "r", "09011112222", answer_after=None, reject_after=1)
    try:
        result, states = dial(seat, f"sip:{{phone}}@127.0.0.1:{resident.phone.sip_port}")
    finally:
        resident.stop()
    assert (result.result, result.sip_status) == ("busy", 486)
    [rang] = resident.rings  # rejected after 1 s
    assert_ring(result.ring_s, states, rang, at_least=1)
    assert states.states == ["ringing", "ended"]
    RESULTS["busy_486"] = result


def test_not_existing_number_404_is_invalid(seat: Baresip, tmp_path: Path) -> None:
    resident = Resident(tmp_path / "r", "09011112222", answer_after=1, reject_after=None)
    try:  # the resident's phone exists, the number dialled does not
        result, states = dial(seat, f"sip:0000{{phone}}@127.0.0.1:{resident.phone.sip_port}")
    finally:
        resident.stop()
    assert (result.result, result.sip_status, result.ring_s) == ("invalid", 404, 0)
    assert states.states == ["ended"]
    assert "CALL_INCOMING" not in resident.seen
    RESULTS["not_existing_404"] = result


def test_never_answered_rings_the_full_35_seconds(seat: Baresip, tmp_path: Path) -> None:
    resident = Resident(tmp_path / "r", "09011112222", answer_after=None, reject_after=None)
    started = time.monotonic()
    try:
        result, states = dial(
            seat, f"sip:{{phone}}@127.0.0.1:{resident.phone.sip_port}", ring_timeout_s=35
        )
        deadline = time.monotonic() + 5  # our CANCEL reaches the resident's phone: it stops ringing
        while "CALL_CLOSED" not in resident.seen and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        resident.stop()
    assert result.result == "no_answer"
    assert result.ring_s >= 35  # never less than the profile's ring time
    [rang] = resident.rings  # ... and it did ring that long at the resident's phone
    assert_ring(result.ring_s, states, rang, at_least=35 - 0.5)
    assert time.monotonic() - started >= 35
    assert "CALL_CLOSED" in resident.seen
    RESULTS["never_answered"] = result


def test_nothing_answers_at_all_is_unavailable(seat: Baresip) -> None:
    result, _ = dial(seat, "sip:{phone}@127.0.0.1:9", no_signal_s=3)  # nothing listens on port 9
    assert result.result == "unavailable"
    assert result.ring_s == 0
    RESULTS["unreachable"] = result


def test_the_seat_phone_going_away_mid_call_still_gives_a_result(tmp_path: Path) -> None:
    resident = Resident(tmp_path / "r", "09011112222", answer_after=1, reject_after=None, talk_s=30)
    phone = Baresip(tmp_path / "seat", {"seat02": "manual"}).start()
    assert phone.ctrl is not None
    out: queue.Queue[Any] = queue.Queue()
    telephony = SipTelephony(
        phone.ctrl, SipConfig(uri_template=f"sip:{{phone}}@127.0.0.1:{resident.phone.sip_port}")
    )

    stamps = Stamps()

    def on(state: str, _: dict[str, Any]) -> None:
        stamps(state)
        if state == "connected":
            assert phone.process is not None
            phone.process.kill()  # the softphone crashes mid-call

    thread, errors = in_thread(lambda: out.put(telephony.dial("09011112222", AT, progress=on)))
    try:
        thread.join(20)
        assert errors == [] and not thread.is_alive()
        result = out.get_nowait()
    finally:
        phone.stop()
        resident.stop()
    assert (result.result, result.lost) == ("answered", True)
    [rang] = resident.rings  # answered after 1 s
    assert_ring(result.ring_s, stamps, rang, at_least=1)


def test_status_mapping() -> None:
    assert sip_status("486 Busy Here") == 486
    assert sip_status("Connection reset by user") is None
    assert result_of(404, rang_s=0, gave_up=False, ring_seconds=35) == "invalid"
    assert result_of(603, rang_s=2, gave_up=False, ring_seconds=35) == "busy"
    assert result_of(480, rang_s=0, gave_up=False, ring_seconds=35) == "unavailable"
    assert result_of(None, rang_s=35, gave_up=True, ring_seconds=35) == "no_answer"
    assert result_of(None, rang_s=0, gave_up=True, ring_seconds=35) == "unavailable"
    with pytest.raises(ValueError):
        SipConfig(ring_timeout_s=30)


def test_the_calls_in_a_ledger_pass_kansa_check(tmp_path: Path) -> None:
    """The recorded calls, with their operators' outcomes, in a real ledger: `kansa check` finds
    nothing against them (ring time, voicemail, every call recorded, registered caller ids)."""
    import json
    import subprocess
    import sys
    import uuid

    from ledger import Ledger, Submission

    if len(RESULTS) < 5:
        pytest.skip("runs after the resident tests of this module")
    exe = str(Path(sys.executable).parent / "kansa")
    db = tmp_path / "ledger.db"
    subprocess.run(
        [exe, "ledger", "init", str(db), "--origin", "t.example/sip", "--contract", "nagaoka-nhi-2026"],
        check=True,
        capture_output=True,
    )

    def ev(type_: str, at: datetime, actor: str, **data: Any) -> Submission:
        return Submission(
            {"id": str(uuid.uuid4()), "type": type_, "at": at.isoformat(), "actor": actor, "data": data}
        )

    setup = AT - timedelta(days=1)
    events = [
        ev("callerid.registered", setup, "mgr01", number="0258-12-3456", kind="landline"),
        ev("callerid.registered", setup, "mgr01", number="0258-12-3457", kind="landline"),
    ]
    for i, (_scenario, result) in enumerate(sorted(RESULTS.items())):
        case, call, at = f"C{i:04d}", f"K{i:04d}", AT + timedelta(minutes=10 * i)
        events.append(
            ev(
                "case.opened",
                setup,
                "system",
                case=case,
                batch="B1",
                month="2026-09",
                category="other",
                numbers=[{"ref": "1", "kind": "mobile"}],
            )
        )
        ended = at + (result.ended_at - AT)
        events.append(
            ev(
                "call.dialed",
                at,
                "system",
                case=case,
                number="1",
                call=call,
                caller_id="0258-12-3456",
                ended_at=ended.isoformat(),
                ring_s=result.ring_s,
                result=result.result,
            )
        )
        answered = result.result == "answered"
        events.append(
            ev(
                "call.outcome",
                ended + timedelta(seconds=30),
                "op07",
                case=case,
                call=call,
                party="self" if answered else "none",
                proxy_consent=False,
                script="completed" if answered else "not_started",
                disposition="completed"
                if answered
                else "number_unusable"
                if result.result == "invalid"
                else "no_contact",
                promise=None,
                callback_at=None,
                mobile_asked=False,
                requests=[],
            )
        )
    with Ledger.open(db, key_path=f"{db}.key") as led:
        led.append(events, now=AT + timedelta(hours=2))
        led.sign_checkpoint(now=AT + timedelta(hours=2))
    run = subprocess.run(
        [exe, "check", str(db), "--month", "2026-09", "--format", "json"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    findings = json.loads(run.stdout)["findings"]
    about_calls = {
        "RING-35",
        "VOICEMAIL-MESSAGE",
        "RECORD-EVERY-CALL",
        "CALLERID-LINES",
        "HOURS",
        "CALLING-DAYS",
    }
    assert [f for f in findings if f["rule"] in about_calls] == []
    assert findings  # the check did run: a month of five single calls misses e.g. its attempts
    assert {r.result for r in RESULTS.values()} == {"answered", "busy", "invalid", "no_answer", "unavailable"}


def test_each_call_shows_the_registered_line_it_was_given(tmp_path: Path) -> None:
    lines = {"0258123456": "manual", "0258123457": "manual"}
    phone = Baresip(tmp_path / "seat", {"s03": "manual", **lines}).start()
    resident = Resident(tmp_path / "r", "09011112222", answer_after=None, reject_after=0.2)
    assert phone.ctrl is not None
    aor = f"sip:{{caller_id}}@127.0.0.1:{phone.sip_port}"
    telephony = SipTelephony(
        phone.ctrl,
        SipConfig(uri_template=f"sip:{{phone}}@127.0.0.1:{resident.phone.sip_port}", caller_id_aor=aor),
    )
    try:
        for line in ("0258-12-3456", "0258-12-3457", "0258-12-3456"):
            assert telephony.dial("09011112222", AT, caller_id=line).result == "busy"
        with pytest.raises(SipError):  # a line the seat has no account for is never shown
            telephony.dial("09011112222", AT, caller_id="0258-99-9999")
    finally:
        resident.stop()
        phone.stop()
    users = [uri.split(":")[1].split("@")[0] for uri in resident.callers]
    assert users == ["0258123456", "0258123457", "0258123456"]
