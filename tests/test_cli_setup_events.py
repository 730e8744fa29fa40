"""The set-up's events from commands instead of hand-written JSON Lines (docs/setup.md, steps
4-6): `kansa staff`, `kansa campaign`, `kansa custody erased`, `kansa keys new --at`. Each
appends to a real ledger with its key (or prints the line for `kansa ledger append`); the
events are read back and checked against the ledger's vocabulary; bad input is one line."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from contract.profile import load_profile
from dialer_core.campaign import plan_days
from kansa.cli import main
from ledger import Ledger, load_vocabulary

UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
AT = "2026-09-18T09:00:00+09:00"


def kansa(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def events_of(db: Path) -> list[dict[str, Any]]:
    with Ledger.open(db, readonly=True) as led:
        return [json.loads(leaf)["event"] for _i, leaf, _ in led.leaves()]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    done = kansa("ledger", "init", str(path), "--origin", "t.example/setup", "--contract", "nagaoka-nhi-2026")
    assert done.exit_code == 0, done.output
    return path


def only(events: list[dict[str, Any]]) -> list[tuple[str, str, str, dict[str, Any]]]:
    vocabulary = load_vocabulary()
    for event in events:
        vocabulary.validate(event)
        assert UUID7.fullmatch(event["id"]), event["id"]
    assert len({e["id"] for e in events}) == len(events)
    return [(e["type"], e["at"], e["actor"], e["data"]) for e in events]


def test_staff_commands_append_the_bootstrap(db: Path, tmp_path: Path) -> None:
    for person, role in (("city01", "city"), ("mgr01", "manager")):
        done = kansa(
            "staff", "designate", person, "--role", role, "--by", "city01", "--ledger", str(db), "--at", AT
        )
        assert done.exit_code == 0, done.output
    done = kansa(
        "staff", "trained", "mgr01", "--course", "laws_manual", "--course", "privacy", "--ledger", str(db)
    )
    assert done.exit_code == 0 and done.output.splitlines()[-1] == "staff.trained mgr01: entry 3", done.output
    scan = tmp_path / "pledge-mgr01.pdf"
    scan.write_bytes(b"%PDF the signed pledge")
    done = kansa(
        "staff", "pledged", "mgr01", "--scan", str(scan), "--to", "city01", "--ledger", str(db), "--at", AT
    )
    assert done.exit_code == 0, done.output
    got = only(events_of(db))
    assert got[:2] == [
        ("staff.designated", AT, "system", {"person": "city01", "role": "city", "by": "city01"}),
        ("staff.designated", AT, "system", {"person": "mgr01", "role": "manager", "by": "city01"}),
    ]
    assert [g[3] for g in got[2:4]] == [
        {"person": "mgr01", "course": "laws_manual", "by": "system"},
        {"person": "mgr01", "course": "privacy", "by": "system"},
    ]
    assert datetime.fromisoformat(got[2][1]).year >= 2026  # no --at: the wall clock, with its offset
    sha = hashlib.sha256(b"%PDF the signed pledge").hexdigest()
    assert got[4] == ("staff.pledged", AT, "system", {"person": "mgr01", "sha256": sha, "to": "city01"})


def test_staff_bad_input_is_one_line_and_appends_nothing(db: Path) -> None:
    base = ("staff", "designate", "op01", "--by", "city01", "--ledger", str(db))
    for args, why in (
        (("--role", "boss"), "'boss' is not one of"),
        (("--role", "operator", "--at", "2026-09-18 09:00"), "not an RFC 3339 time with its offset"),
        (("--role", "operator", "--at", "tomorrow"), "not an RFC 3339 time"),
    ):
        done = kansa(*base, *args)
        assert done.exit_code == 2 and why in done.output and "Traceback" not in done.output, done.output
    done = kansa("staff", "designate", "op01", "--role", "operator", "--by", "city01")
    assert done.exit_code == 2 and "give either --ledger DB or --print" in done.output
    assert events_of(db) == []


def test_campaign_plan_schedule_and_lines(db: Path) -> None:
    planned = [d.isoformat() for d in plan_days(load_profile("nagaoka-nhi-2026"), "2026-09").calling_days()]
    done = kansa("campaign", "plan", "--contract", "nagaoka-nhi-2026", "--month", "2026-09")
    assert done.exit_code == 0 and done.output.split() == planned, done.output
    assert planned[0] == "2026-09-20"  # NHI: the weekend days first
    done = kansa(
        "campaign", "schedule", "--month", "2026-09", "--by", "mgr01", "--ledger", str(db), "--at", AT
    )
    assert done.exit_code == 0 and done.output == "campaign.scheduled: entry 0\n", done.output
    done = kansa("campaign", "line", "0258-39-1001", "0258-39-1002", "--ledger", str(db), "--at", AT)
    assert done.exit_code == 0, done.output
    assert only(events_of(db)) == [
        ("campaign.scheduled", AT, "mgr01", {"month": "2026-09", "days": planned, "excluded": []}),
        ("callerid.registered", AT, "system", {"number": "0258-39-1001", "kind": "landline"}),
        ("callerid.registered", AT, "system", {"number": "0258-39-1002", "kind": "landline"}),
    ]


def test_campaign_schedule_by_hand_and_printed(db: Path, tmp_path: Path) -> None:
    """--day and --exclude as the city asks; --print gives a line `kansa ledger append` takes."""
    days = ["2026-09-20", "2026-09-21", "2026-09-22", "2026-09-24"]
    args = ["campaign", "schedule", "--month", "2026-09", "--contract", "nagaoka-nhi-2026", "--print"]
    done = kansa(*args, *(a for d in days for a in ("--day", d)), "--exclude", "2026-09-22")
    assert done.exit_code == 0, done.output
    (line,) = done.output.splitlines()
    event = json.loads(line)
    assert event["data"] == {"month": "2026-09", "days": days[:2] + days[3:], "excluded": ["2026-09-22"]}
    (tmp_path / "c.jsonl").write_text(line + "\n", encoding="utf-8")
    assert kansa("ledger", "append", str(db), str(tmp_path / "c.jsonl")).output == "0\n"
    assert events_of(db) == [event]


def test_campaign_bad_input_is_one_line(db: Path) -> None:
    weekends = [f"2026-09-{d:02d}" for d in (19, 20, 21, 22, 23, 26, 27)]  # Sat, Sun and the holidays
    cases = [
        (("campaign", "plan", "--contract", "nagaoka-nhi-2026", "--month", "2026-13"), 2, "is not a month"),
        (
            (
                "campaign",
                "plan",
                "--contract",
                "nagaoka-nhi-2026",
                "--month",
                "2026-09",
                *(a for d in weekends for a in ("--exclude", d)),
            ),
            1,
            "no calling days for 2026-09",
        ),
        (("campaign", "plan", "--contract", "nowhere", "--month", "2026-09"), 1, "no contract profile"),
        (
            (
                "campaign",
                "schedule",
                "--month",
                "2026-09",
                "--ledger",
                str(db),
                "--day",
                "2026-09-01",
                "--day",
                "2026-09-02",
            ),
            1,
            "calling days cannot hold 3 attempts",
        ),
        (
            ("campaign", "schedule", "--month", "2026-09", "--ledger", str(db), "--day", "2026-10-03"),
            1,
            "2026-10-03 is not in 2026-09",
        ),
        (("campaign", "schedule", "--month", "2026-09", "--print"), 2, "give --contract"),
        (("campaign", "line", "abc", "--ledger", str(db)), 2, "is not a phone number"),
        (
            ("campaign", "line", "0258-39-1001", "--kind", "fax", "--ledger", str(db)),
            2,
            "'fax' is not one of",
        ),
    ]
    for args, code, why in cases:
        done = kansa(*args)
        assert done.exit_code == code and why in done.output, (args, done.output)
        assert "Traceback" not in done.output and len(done.stderr.strip().splitlines()[-1]) > 0
        if code == 1:
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert events_of(db) == []


def test_media_erased_and_keys_new_at(db: Path, tmp_path: Path) -> None:
    at = "2026-09-18T09:30:00+09:00"
    done = kansa(
        "custody",
        "erased",
        "B2026-09",
        "--media",
        "USB-2026-09",
        "--by",
        "cus01",
        "--ledger",
        str(db),
        "--at",
        at,
    )
    assert done.exit_code == 0, done.output
    assert only(events_of(db)) == [
        (
            "custody.media_erased",
            at,
            "cus01",
            {"batch": "B2026-09", "media": "USB-2026-09", "method": "overwrite"},
        )
    ]
    done = kansa("keys", "new", "--holder", "system", "--out", str(tmp_path / "system.key"), "--at", AT)
    assert done.exit_code == 0, done.output
    registered = json.loads(done.stdout)
    assert registered["type"] == "key.registered" and registered["at"] == AT
    assert (
        kansa("keys", "new", "--holder", "x", "--out", str(tmp_path / "x.key"), "--at", "9am").exit_code == 2
    )
    assert not (tmp_path / "x.key").exists()
