"""`kansa dialer run` end to end: a real ledger service, the data store, two simulated seats,
and a console over the seats API; the calls reach the ledger as call.dialed by the core."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from conftest import event, register
from test_service import EXE, Server, free_port

from contract.calendar import TOKYO
from contract.profile import load_profile
from dialer_core.campaign import plan_days
from dialer_core.client import new_key
from dialer_core.datastore import DataStore, Resident
from dialer_core.follow import LedgerFollower
from ledger import Ledger, Submission

LINES = ["0258-11-1111", "0258-22-2222"]
TOKEN = "s3cret"


def console(url: str, token: str, stop: threading.Event, seen: list[str]) -> None:
    """What the operators' consoles do: sign in, classify answered calls, record outcomes."""
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    for seat in ("s01", "s02"):
        http.post(f"/v1/seats/{seat}/ready", json={"operator": f"op-{seat}"}).raise_for_status()
    while not stop.is_set():
        try:
            seats = http.get("/v1/seats").json()["seats"]
        except httpx.TransportError:
            break  # the run has ended
        for seat in seats:
            call = seat["call"]
            if seat["state"] != "wrap_up" or call is None:
                continue
            seen.append(call["result"])
            try:
                if call["result"] == "answered" and call["classification"] is None and not call["recorded"]:
                    http.post(f"/v1/calls/{call['call']}/classification", json={"kind": "person"})
                if call["recorded"]:
                    http.post(f"/v1/calls/{call['call']}/outcome", json={"event": None})
            except httpx.TransportError:
                break
        time.sleep(0.05)
    http.close()


def prepared(
    tmp_path: Path, phones: list[str], extra: Callable[[list[Resident]], list[Submission]] | None = None
) -> tuple[Server, list[Resident]]:
    """A ledger (core key, two lines, the cases of `phones`, then `extra`) served over HTTP, and the store."""
    db = tmp_path / "ledger.db"
    subprocess.run(
        [EXE, "ledger", "init", str(db), "--origin", "t.example/run", "--contract", "x"],
        check=True,
        capture_output=True,
    )
    core = new_key("system", tmp_path / "system.key")
    store = DataStore(tmp_path / "store.db")
    _, placed = store.add_batch(
        "B1",
        "2026-09",
        [
            Resident("", f"202609-{i:05d}", "佐藤 花子", (phone,), "その他", 1000, {})
            for i, phone in enumerate(phones)
        ],
    )
    store.close()
    now = datetime.now(UTC)
    with Ledger.open(db, key_path=f"{db}.key") as led:
        led.append([register(core)], now=now)
        lines = [event("callerid.registered", actor="mgr01", at=now.isoformat(), number=n) for n in LINES]
        for line in lines:
            line["data"]["kind"] = "landline"
        led.append([Submission(line) for line in lines], now=now)
        led.append(
            [
                Submission(
                    event(
                        "case.opened",
                        actor="system",
                        at=now.isoformat(),
                        case=r.case_ref,
                        batch="B1",
                        month="2026-09",
                        category="other",
                        numbers=[{"ref": "1", "kind": "mobile"}],
                    )
                )
                for r in placed
            ],
            now=now,
        )
        if extra is not None:
            led.append(extra(placed), now=now)
    server = Server(db, free_port())
    server.start()
    return server, placed


def config_text(ledger_url: str, port: int, telephony: str) -> str:
    """The [dialer] and [api] tables every run test shares, then its own telephony and seats."""
    return f"""
[dialer]
ledger_url = "{ledger_url}"
store = "store.db"
key_file = "system.key"
contract = "nagaoka-nhi-2026"
month = "2026-09"
poll_s = 0.5

[api]
listen = "127.0.0.1:{port}"
token_env = "KANSA_TEST_SEATS_TOKEN"
{telephony}
"""


def start_run(config: Path, start: datetime, seconds: float, port: int) -> subprocess.Popen[str]:
    """`kansa dialer run` on a rehearsal clock from `start`; returns once its seats API answers."""
    env = {**os.environ, "KANSA_TEST_SEATS_TOKEN": TOKEN}
    args = [EXE, "dialer", "run", str(config), "--for-seconds", str(seconds), "--start-at", start.isoformat()]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/seats", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    return proc


def ledger_events(url: str, kind: str) -> list[dict[str, Any]]:
    follower = LedgerFollower(url)
    try:
        return [e for e in follower.poll() if e["type"] == kind]
    finally:
        follower.close()


def test_a_rehearsal_run_dials_for_ready_seats_into_the_ledger(tmp_path: Path) -> None:
    server, placed = prepared(tmp_path, [f"090{i:08d}" for i in range(6)])
    port = free_port()
    seats = '[telephony]\nkind = "simulator"\n[[seats]]\nname = "s01"\n[[seats]]\nname = "s02"\n'
    (tmp_path / "dialer.toml").write_text(config_text(server.url, port, seats))
    last_day = plan_days(load_profile("nagaoka-nhi-2026"), "2026-09").calling_days()[-1]
    start = datetime.combine(last_day, datetime.min.time(), TOKYO) + timedelta(hours=19, minutes=30)
    stop, seen = threading.Event(), []
    proc = start_run(tmp_path / "dialer.toml", start, 8, port)
    try:
        thread = threading.Thread(target=console, args=(f"http://127.0.0.1:{port}", TOKEN, stop, seen))
        thread.start()
        _, err = proc.communicate(timeout=60)
        stop.set()
        thread.join(10)
        assert proc.returncode == 0, err
        dialed = ledger_events(server.url, "call.dialed")
    finally:
        proc.kill() if proc.poll() is None else None
        server.stop()
    assert len(dialed) >= 6, err
    assert {e["data"]["case"] for e in dialed} == {r.case_ref for r in placed}  # every case called
    assert all(e["actor"] == "system" for e in dialed)
    assert {e["data"]["caller_id"] for e in dialed} == set(LINES)  # both registered lines, in turn
    assert all(e["at"].startswith(last_day.isoformat()) for e in dialed)  # dialled on the rehearsal clock
    assert "calls" in err and seen


def test_a_secret_in_the_toml_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[dialer]\nledger_url = "x"\n[sms]\npassword = "hunter2"\n')
    run = subprocess.run([EXE, "dialer", "run", str(cfg)], capture_output=True, text=True)
    assert run.returncode == 1
    assert "secrets never go in the TOML" in run.stderr and "Traceback" not in run.stderr


def test_the_sample_configuration_loads(tmp_path: Path) -> None:
    from dialer_core.run import load_config

    sample = Path(__file__).parent.parent / "docs" / "dialer-sample.toml"
    token = tmp_path / "seats.token"
    token.write_text("t0ken\n")
    text = sample.read_text().replace("/etc/kansa/seats.token", str(token))
    (tmp_path / "dialer.toml").write_text(text)
    cfg = load_config(tmp_path / "dialer.toml")
    assert cfg.api_token == "t0ken" and cfg.sip.ring_timeout_s == 40
    assert cfg.seats == {"s01": ("127.0.0.1", 4444), "s02": ("127.0.0.1", 4445)}
    assert cfg.lines[0]["guide_s"] == 20 and cfg.seat_callback_uris["s02"].startswith("sip:s02-cb@")


def test_the_rehearsal_phone_rings_answers_and_ends_when_the_operator_hangs_up() -> None:
    """`[telephony] kind = "simulator", realtime = true`: calls take real time, as a SIP seat's do."""
    from dialer_core.adapters import SimulatedPhone, Simulator

    clock = lambda: datetime.now(TOKYO)  # noqa: E731
    seen: list[str] = []
    every = SimulatedPhone(Simulator(seed=3, answer_rate=1.0), clock, ring_s=0.3)
    threading.Timer(0.8, every.hangup).start()  # the console hangs up once the outcome is recorded
    started = time.monotonic()
    answered = every.dial("09011112222", clock(), progress=lambda state, info: seen.append(state))
    took = time.monotonic() - started
    assert answered.result == "answered" and answered.answered_at is not None
    assert seen == ["ringing", "connected"] and 0.7 < took < 5
    assert answered.ended_at > answered.answered_at
    nobody = SimulatedPhone(Simulator(seed=3, answer_rate=0.0), clock, pace=0.005)  # 40 s ring: 0.2 s
    results = [nobody.dial(f"0901111000{i}", clock()) for i in range(8)]
    assert {r.result for r in results} <= {"no_answer", "busy", "unavailable", "invalid"}
    assert all(r.ring_s >= 35 for r in results if r.result == "no_answer")  # never under the ring time
    assert any(r.result == "no_answer" for r in results)
