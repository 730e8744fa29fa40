"""`kansa dialer sms` end to end: the city's list from a real ledger service, the lookup over HTTP,
SMPP to the loopback SMSC, receipts into the ledger; run twice, nothing is sent twice."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

from conftest import event
from test_dialer_run import EXE, prepared

from contract.calendar import TOKYO
from dialer_core.datastore import Resident
from dialer_core.follow import LedgerFollower
from dialer_core.lookup import LookupServer, SimulatedLookup
from ledger import Submission
from tests.smsc import LoopbackSmsc

SEND_AT = datetime(2026, 9, 24, 10, 0, tzinfo=TOKYO)


def test_the_sms_pass_over_smpp_into_the_ledger(tmp_path: Path) -> None:
    phones = ["090-1000-0001", "090-1000-0002", "090-1000-0003", "080-1000-0004"]

    def city(placed: list[Resident]) -> list[Submission]:
        cases = [r.case_ref for r in placed]
        designated = event("sms.designated", actor="city01", at=(SEND_AT - timedelta(days=3)).isoformat())
        designated["data"] = {
            "batch": "B1",
            "cases": cases,
            "send_at": SEND_AT.isoformat(),
            "sender_id": "0258-39-2000",
        }
        stop = event("case.stop", actor="city01", at=(SEND_AT - timedelta(days=1)).isoformat())
        stop["data"] = {"case": cases[3], "by": "city01", "reason": "納付済み"}
        return [Submission(designated), Submission(stop)]

    server, placed = prepared(tmp_path, phones, city)
    cases = [r.case_ref for r in placed]
    smsc = LoopbackSmsc(receipts={"819010000002": "failed"}).start()
    (tmp_path / "sms.txt").write_text(
        "長岡市国保年金課です。保険料の納付をお願いします。" * 3, encoding="utf-8"
    )
    lookup = LookupServer(SimulatedLookup(reassigned=frozenset({phones[2]})))
    with lookup:
        (tmp_path / "dialer.toml").write_text(f"""
[dialer]
ledger_url = "{server.url}"
store = "store.db"
key_file = "system.key"
contract = "nagaoka-nhi-2026"
month = "2026-09"
[api]
token_env = "KANSA_TEST_TOKEN"
[telephony]
kind = "simulator"
[[seats]]
name = "s01"
[sms]
host = "127.0.0.1"
port = {smsc.port}
system_id = "kansa"
password_env = "KANSA_TEST_SMPP_PASSWORD"
rate = 50
text_file = "sms.txt"
lookup_url = "{lookup.url}"
""")
        env = {**os.environ, "KANSA_TEST_TOKEN": "t", "KANSA_TEST_SMPP_PASSWORD": "secret"}
        args = [
            EXE,
            "dialer",
            "sms",
            str(tmp_path / "dialer.toml"),
            "--receipts-for",
            "2",
            "--start-at",
            (SEND_AT + timedelta(minutes=1)).isoformat(),
        ]
        try:
            first = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
            again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
            late = subprocess.run(
                [*args[:-1], (SEND_AT + timedelta(hours=3)).isoformat()],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            follower = LedgerFollower(server.url)
            events = follower.poll()
            follower.close()
        finally:
            server.stop()
            smsc.stop()
    assert first.returncode == 0, first.stderr
    assert "4 designated, 2 sent, 0 unconfirmed, 2 blocked" in first.stdout
    assert again.returncode == 0 and "0 sent" in again.stdout and "4 already done" in again.stdout
    assert late.returncode == 1 and "not sending" in late.stderr
    kinds = [e["type"] for e in events]
    sent = [e["data"] for e in events if e["type"] == "sms.sent"]
    assert [d["case"] for d in sent] == cases[:2] and all(d["segments"] == 2 and d["smsc_id"] for d in sent)
    assert sorted(
        (e["data"]["case"], e["data"]["reason"]) for e in events if e["type"] == "sms.blocked"
    ) == sorted([(cases[2], "possibly_reassigned"), (cases[3], "stopped")])
    results = {e["data"]["message"]: e["data"]["status"] for e in events if e["type"] == "sms.result"}
    assert sorted(results.values()) == ["delivered", "failed"]
    assert kinds.count("sms.lookup") == 3  # not for the stopped case
    assert len(smsc.submitted) == 4  # two messages of two segments, once each over both runs
