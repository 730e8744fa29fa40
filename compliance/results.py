"""Findings and KPIs written to their own SQLite file beside the ledger (never into it),
for Datasette and the notebooks. One run per (month, checkpoint); a rerun replaces it."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

from .engine import CheckResult
from .present import clause_ja, word

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    contract TEXT NOT NULL, month TEXT NOT NULL, origin TEXT NOT NULL, size INTEGER NOT NULL,
    root TEXT NOT NULL, as_of TEXT, PRIMARY KEY (month, size, root)
);
CREATE TABLE IF NOT EXISTS findings (
    month TEXT NOT NULL, size INTEGER NOT NULL, root TEXT NOT NULL, rule TEXT NOT NULL, clause TEXT NOT NULL,
    severity TEXT NOT NULL, case_ref TEXT, entries TEXT NOT NULL, message TEXT NOT NULL,
    message_en TEXT NOT NULL, pending INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_run ON findings (month, size, root);
CREATE TABLE IF NOT EXISTS clauses (
    contract TEXT NOT NULL, rule TEXT NOT NULL, clause TEXT NOT NULL, quote TEXT NOT NULL,
    PRIMARY KEY (contract, rule)
);
CREATE TABLE IF NOT EXISTS kpis (
    month TEXT NOT NULL, size INTEGER NOT NULL, root TEXT NOT NULL, kpi TEXT NOT NULL,
    numerator NUMERIC, denominator NUMERIC, value NUMERIC, target NUMERIC, met INTEGER, details TEXT NOT NULL
);
"""


def default_results_path(db: Path | str) -> Path:
    return Path(f"{Path(db).with_suffix('')}.compliance.db")


def write_results(path: Path | str, result: CheckResult) -> None:
    data = result.as_json()
    cp = data["checkpoint"]
    key = (result.month, cp["size"], cp["root"])
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.executescript(SCHEMA)
        conn.execute("BEGIN IMMEDIATE")
        for table in ("runs", "findings", "kpis"):
            conn.execute(f"DELETE FROM {table} WHERE month = ? AND size = ? AND root = ?", key)
        conn.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?)",
            (result.contract, result.month, cp["origin"], cp["size"], cp["root"], cp["as_of"]),
        )
        conn.executemany(
            "INSERT INTO findings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    *key,
                    f["rule"],
                    f["clause"],
                    f["severity"],
                    f["case"],
                    json.dumps(f["entries"]),
                    f["message"],
                    f["message_en"],
                    int(f["pending"]),
                )
                for f in data["findings"]
            ],
        )
        conn.executemany(
            "INSERT INTO kpis VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    *key,
                    name,
                    k.get("numerator"),
                    k.get("denominator"),
                    k.get("value"),
                    k.get("target"),
                    None if k.get("met") is None else int(k["met"]),
                    json.dumps(k, ensure_ascii=False, sort_keys=True),
                )
                for name, k in sorted(data["kpis"].items())
            ],
        )
        profile = result.profile
        if profile is not None:
            conn.executemany(
                "INSERT OR REPLACE INTO clauses VALUES (?, ?, ?, ?)",
                [
                    (profile.id, rule, f"{profile.short} {clause}", profile.quotes[rule])
                    for rule, clause in sorted(profile.clauses.items())
                ],
            )
        conn.execute("COMMIT")
    finally:
        conn.close()


def to_csv(result: CheckResult) -> str:
    """Findings as CSV with Japanese headers, UTF-8 with BOM as Japanese Excel expects."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["規則", "条項", "区分", "案件", "根拠の記録", "内容", "内容（英語）", "期限前"])
    for f in result.as_json()["findings"]:
        writer.writerow(
            [
                f["rule"],
                clause_ja(f["clause"]),
                word("severity", "pending" if f["pending"] else f["severity"]),
                f["case"] or "",
                " ".join(map(str, f["entries"])),
                f["message"],
                f["message_en"],
                "期限前" if f["pending"] else "",
            ]
        )
    return "\ufeff" + out.getvalue()


def to_table(result: CheckResult) -> str:
    data = result.as_json()
    quotes = result.profile.quotes if result.profile else {}
    cp = data["checkpoint"]
    lines = [
        f"契約 contract: {data['contract']}   月 month: {data['month']}",
        f"チェックポイント checkpoint: {cp['origin']} size {cp['size']} root {cp['root']} (as of {cp['as_of']})",
        "",
        "KPI:",
    ]
    for name, k in sorted(data["kpis"].items()):
        value = "-" if k.get("value") is None else k["value"]
        target = "" if k.get("target") is None else f"  目標 target {k['target']}"
        met = "" if k.get("met") is None else ("  達成 met" if k["met"] else "  未達 NOT MET")
        lines.append(f"  {name:14} {k.get('numerator')}/{k.get('denominator')} = {value}{target}{met}")
    counts: dict[str, int] = {}
    for f in data["findings"]:
        counts[f["severity"]] = counts.get(f["severity"], 0) + 1
    lines += [
        "",
        f"所見 findings: {len(data['findings'])} " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())),
    ]
    rule = None
    for f in data["findings"]:
        if f["rule"] != rule:  # findings are sorted by rule: each group opens with the contract's words
            rule = f["rule"]
            lines.append(f"  {rule} ({f['clause']}) 「{quotes.get(rule, '')}」")
        lines.append(f"    [{f['severity']}] case={f['case'] or '-'} entries={f['entries']}: {f['message']}")
    return "\n".join(lines) + "\n"
