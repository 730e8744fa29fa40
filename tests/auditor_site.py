"""A small real site for the Datasette tests: one simulated month (the demo at 5% scale),
plus one call outside the calling hours so that there is a violation to look at."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from compliance import check_ledger
from compliance.results import default_results_path, write_results
from datasette_plugins.access_log import default_access_log_path
from datasette_plugins.auditors import add_auditor, default_auditors_path
from kansa.demo import run_demo
from ledger import Ledger, Submission
from ledger.commands import default_key_path

MONTH = "2026-09"
PASSWORD = "correct horse battery staple"
LATE_CALL_AT = "2026-09-15T21:30:00+09:00"  # a Tuesday: weekday calls end at 20:00


def access_entries(db: Path) -> list[dict[str, Any]]:
    """The access log's events, in order."""
    conn = sqlite3.connect(default_access_log_path(db))
    try:
        return [
            json.loads(leaf)["event"] for (leaf,) in conn.execute("SELECT leaf FROM entries ORDER BY idx")
        ]
    finally:
        conn.close()


def build_site(root: Path) -> dict[str, Any]:
    out = root / "site"
    run_demo(out, now=datetime(2026, 11, 1, tzinfo=UTC), echo=lambda _: None, months=[MONTH], scale=0.05)
    db = out / "ledger.db"
    with Ledger.open(db, key_path=default_key_path(db)) as ledger:
        opened = next((idx, leaf) for idx, leaf, _ in ledger.leaves() if b'"type":"case.opened"' in leaf)
        case = re.search(rb'"case":"([^"]+)"', opened[1]).group(1).decode()  # type: ignore[union-attr]
        event = {
            "id": str(uuid.uuid4()),
            "type": "call.dialed",
            "at": LATE_CALL_AT,
            "actor": "system",
            "data": {
                "case": case,
                "number": "1",
                "call": "late-call-1",
                "caller_id": "0258-00-0000",
                "ended_at": "2026-09-15T21:31:00+09:00",
                "ring_s": 35,
                "result": "no_answer",
            },
        }
        (late,) = ledger.append([Submission(event)], now=datetime(2026, 10, 2, tzinfo=UTC))
        ledger.sign_checkpoint(now=datetime(2026, 10, 2, tzinfo=UTC))
    write_results(default_results_path(db), check_ledger(db, MONTH))
    add_auditor(default_auditors_path(db), "alice", PASSWORD)
    add_auditor(default_auditors_path(db), "sam", PASSWORD, roles=("auditor", "sql"))
    return {"db": db, "late_index": late.index, "case": case}
