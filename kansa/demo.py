"""`kansa demo`: until the dialing core exists, a small sample ledger, signed and verified."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ledger import Signer, Submission, verify_ledger
from ledger.canonical import canonicalize
from ledger.commands import inclusion_json, init_ledger
from ledger.note import b64encode
from ledger.store import Signature

TOKYO = ZoneInfo("Asia/Tokyo")
ORIGIN = "kansa.demo/nagaoka-nhi-2026"


def _event(kind: str, at: datetime, actor: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": kind, "at": at.isoformat(), "actor": actor, "data": data}


def sample_day(day: datetime, operator: Signer) -> list[Submission]:
    """One calling day of a tiny campaign: setup, a few calls with their outcomes, the daily report."""
    key_ref = operator.verifier.key_ref
    setup = [
        _event(
            "staff.designated",
            day.replace(hour=8),
            "mgr01",
            {"person": "mgr01", "role": "manager", "by": "city01"},
        ),
        _event(
            "staff.designated",
            day.replace(hour=8),
            "mgr01",
            {"person": "op07", "role": "operator", "by": "mgr01"},
        ),
        _event(
            "key.registered",
            day.replace(hour=8),
            "mgr01",
            {"key": key_ref, "public_key": b64encode(operator.verifier.public_key), "holder": "op07"},
        ),
        _event(
            "campaign.scheduled",
            day.replace(hour=8),
            "mgr01",
            {"month": day.strftime("%Y-%m"), "days": [day.strftime("%Y-%m-%d")], "excluded": []},
        ),
        _event(
            "access.login",
            day.replace(hour=8, minute=55),
            "op07",
            {"person": "op07", "terminal": "t1", "success": True},
        ),
    ]
    subs = [Submission(e) for e in setup]
    for n in range(3):
        start = day.replace(hour=9 + n, minute=10)
        call = f"K{n + 1:04d}"
        dialed = _event(
            "call.dialed",
            start,
            "system",
            {
                "case": f"C{n + 1:05d}",
                "number": "1",
                "call": call,
                "caller_id": "0258-00-0001",
                "ended_at": (start + timedelta(minutes=3)).isoformat(),
                "ring_s": 12,
                "result": "answered",
            },
        )
        outcome = _event(
            "call.outcome",
            start + timedelta(minutes=3),
            "op07",
            {
                "case": f"C{n + 1:05d}",
                "call": call,
                "party": "self",
                "proxy_consent": False,
                "script": "completed",
                "disposition": "completed",
                "promise": {"date": (day + timedelta(days=14)).strftime("%Y-%m-%d"), "amount": 12000},
                "callback_at": None,
                "mobile_asked": False,
                "requests": [],
            },
        )
        signature = operator.sign(canonicalize(outcome))
        subs += [Submission(dialed), Submission(outcome, Signature(key_ref, b64encode(signature)))]
    return subs


def run_demo(out: Path, *, now: datetime, echo: Callable[[str], None]) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    db = out / "ledger.db"
    ledger, key_path = init_ledger(db, origin=ORIGIN, contract="nagaoka-nhi-2026", key_path=None, now=now)
    operator = Signer.generate("op07")
    day = datetime(2026, 9, 24, tzinfo=TOKYO)
    results = ledger.append(sample_day(day, operator), now=now)
    checkpoint = ledger.sign_checkpoint(now=now)
    (out / "checkpoint.txt").write_text(checkpoint.note)
    proof = inclusion_json(ledger, results[-1].index, checkpoint.size)
    (out / "proof.json").write_text(json.dumps(proof, indent=1))
    report = verify_ledger(db, checkpoint=checkpoint.note)
    echo(f"台帳 ledger: {db} ({ledger.size} 件 entries), 署名鍵 key: {key_path}")
    echo(f"検証鍵 verifier key: {ledger.verifier.vkey}")
    echo("チェックポイント checkpoint:")
    echo(checkpoint.note.rstrip("\n"))
    echo(f"検証 verify: {report.summary()}")
    echo(f"自分で確かめる check it yourself: kansa ledger verify {db} --checkpoint {out / 'checkpoint.txt'}")
    if not report.ok:
        raise SystemExit(1)
