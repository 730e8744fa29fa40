"""`kansa dialer run` with real baresip seats: the loop dials a baresip resident who answers after
1 s, the console classifies it over the seats API, and the call reaches the ledger."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from test_dialer_run import TOKEN, config_text, console, ledger_events, prepared, start_run
from test_sip import Resident

from contract.calendar import TOKYO
from contract.profile import load_profile
from dialer_core.campaign import plan_days
from dialer_core.sip import Baresip, baresip_available, free_port

pytestmark = pytest.mark.skipif(not baresip_available(), reason="baresip-core is not installed")


def test_kansa_dialer_run_over_real_sip(tmp_path: Path) -> None:
    answers = Resident(tmp_path / "r1", "09011110001", answer_after=1, reject_after=None, talk_s=1)
    seat = Baresip(tmp_path / "s01", {"s01": "manual"}).start()
    seat2 = Baresip(tmp_path / "s02", {"s02": "manual"}).start()
    server, placed = prepared(tmp_path, ["090-1111-0001"])
    port = free_port()
    try:
        telephony = f"""
[telephony]
kind = "sip"
uri_template = "sip:{{phone}}@127.0.0.1:{answers.phone.sip_port}"
[[seats]]
name = "s01"
ctrl = "127.0.0.1:{seat.ctrl_port}"
[[seats]]
name = "s02"
ctrl = "127.0.0.1:{seat2.ctrl_port}"
"""
        (tmp_path / "dialer.toml").write_text(config_text(server.url, port, telephony))
        last_day = plan_days(load_profile("nagaoka-nhi-2026"), "2026-09").calling_days()[-1]
        start = datetime.combine(last_day, datetime.min.time(), TOKYO) + timedelta(hours=19, minutes=30)
        proc = start_run(tmp_path / "dialer.toml", start, 10, port)
        stop, seen = threading.Event(), []
        thread = threading.Thread(target=console, args=(f"http://127.0.0.1:{port}", TOKEN, stop, seen))
        thread.start()
        _, err = proc.communicate(timeout=60)
        stop.set()
        thread.join(10)
        assert proc.returncode == 0, err
        dialed = ledger_events(server.url, "call.dialed")
    finally:
        server.stop()
        for phone in (seat, seat2):
            phone.stop()
        answers.stop()
    assert len(dialed) == 1  # one case, one call: the next attempt is planned for a later day
    data = dialed[0]["data"]
    assert data["case"] == placed[0].case_ref
    assert (data["result"], data["ring_s"]) == ("answered", 1)  # the console said: a person
    assert "CALL_ESTABLISHED" in answers.seen and "answered" in seen


def test_kansa_dialer_run_takes_a_callback_on_its_line(tmp_path: Path) -> None:
    from test_sip_callbacks import tone

    seat = Baresip(tmp_path / "s01", {"s01": "manual", "s01-cb": "auto"}).start()
    line = Baresip(tmp_path / "line1", {"center": "manual"}).start()
    caller = Baresip(tmp_path / "caller", {"09011110009": "manual"}).start()
    server, placed = prepared(tmp_path, ["090-1111-0009"])  # the caller is this case's resident
    tone(tmp_path / "message.wav", 3, 440)
    tone(tmp_path / "guide.wav", 3, 660)
    port = free_port()
    try:
        telephony = f"""
[telephony]
kind = "sip"
uri_template = "sip:{{phone}}@127.0.0.1:9"
[[seats]]
name = "s01"
ctrl = "127.0.0.1:{seat.ctrl_port}"
callback_uri = "{seat.uri("s01-cb")}"
[[lines]]
ctrl = "127.0.0.1:{line.ctrl_port}"
message_wav = "message.wav"
guide_wav = "guide.wav"
guide_s = 2
"""
        (tmp_path / "dialer.toml").write_text(config_text(server.url, port, telephony))
        # the first calling day as the hours open: the case's first call is not due yet (it is planned
        # for a later day), so the seat is free when the resident calls back
        day = plan_days(load_profile("nagaoka-nhi-2026"), "2026-09").calling_days()[0]
        start = datetime.combine(day, datetime.min.time(), TOKYO) + timedelta(hours=9, seconds=30)
        proc = start_run(tmp_path / "dialer.toml", start, 8, port)
        assert caller.ctrl is not None
        caller.ctrl.command("dial", line.uri("center"))
        time.sleep(2)  # queued with the message: no seat is ready yet
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"})
        http.post("/v1/seats/s01/ready", json={"operator": "op07"}).raise_for_status()
        time.sleep(2)
        snapshot = http.get("/v1/seats/s01").json()
        http.close()
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        received = [e["data"] for e in ledger_events(server.url, "callback.received")]
    finally:
        server.stop()
        for phone in (seat, line, caller):
            phone.stop()
    assert snapshot["state"] == "connected" and snapshot["call"]["direction"] == "inbound"
    assert len(received) == 1
    assert received[0]["case"] == placed[0].case_ref and received[0]["handled"] == "operator"
    assert 1 <= received[0]["queued_s"] <= 4
