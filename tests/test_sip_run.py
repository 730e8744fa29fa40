"""`kansa dialer run` with real baresip seats: the loop dials a baresip resident who answers after
1 s, the console classifies it over the seats API, and the call reaches the ledger."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from test_dialer_run import EXE, console, prepared
from test_sip import Resident

from contract.calendar import TOKYO
from contract.profile import load_profile
from dialer_core.campaign import plan_days
from dialer_core.follow import LedgerFollower
from dialer_core.sip import Baresip, baresip_available, free_port

pytestmark = pytest.mark.skipif(not baresip_available(), reason="baresip-core is not installed")


def test_kansa_dialer_run_over_real_sip(tmp_path: Path) -> None:
    answers = Resident(tmp_path / "r1", "09011110001", answer_after=1, reject_after=None, talk_s=1)
    seat = Baresip(tmp_path / "s01", {"s01": "manual"}).start()
    seat2 = Baresip(tmp_path / "s02", {"s02": "manual"}).start()
    server, placed = prepared(tmp_path, ["090-1111-0001"])
    port = free_port()
    try:
        (tmp_path / "dialer.toml").write_text(f"""
[dialer]
ledger_url = "{server.url}"
store = "store.db"
key_file = "system.key"
contract = "nagaoka-nhi-2026"
month = "2026-09"
poll_s = 0.5
[api]
listen = "127.0.0.1:{port}"
token_env = "KANSA_TEST_SEATS_TOKEN"
[telephony]
kind = "sip"
uri_template = "sip:{{phone}}@127.0.0.1:{answers.phone.sip_port}"
[[seats]]
name = "s01"
ctrl = "127.0.0.1:{seat.ctrl_port}"
[[seats]]
name = "s02"
ctrl = "127.0.0.1:{seat2.ctrl_port}"
""")
        last_day = plan_days(load_profile("nagaoka-nhi-2026"), "2026-09").calling_days()[-1]
        start = datetime.combine(last_day, datetime.min.time(), TOKYO) + timedelta(hours=19, minutes=30)
        env = {**os.environ, "KANSA_TEST_SEATS_TOKEN": "s3cret"}
        proc = subprocess.Popen(
            [
                EXE,
                "dialer",
                "run",
                str(tmp_path / "dialer.toml"),
                "--for-seconds",
                "10",
                "--start-at",
                start.isoformat(),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/seats", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        stop, seen = threading.Event(), []
        thread = threading.Thread(target=console, args=(f"http://127.0.0.1:{port}", "s3cret", stop, seen))
        thread.start()
        _, err = proc.communicate(timeout=60)
        stop.set()
        thread.join(10)
        assert proc.returncode == 0, err
        follower = LedgerFollower(server.url)
        dialed = [e for e in follower.poll() if e["type"] == "call.dialed"]
        follower.close()
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
