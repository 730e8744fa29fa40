"""`kansa check`: the contract's rules and KPIs over a ledger, as of a signed checkpoint.

Compliance is a pure function of (entries up to a checkpoint, profile, month).
It never reads the wall clock: "now" is the time the ledger received the
checkpoint's last entry, and a deadline not yet passed then is pending.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from ledger import Checkpoint, CheckpointError, Verifier, leaf_hash, open_checkpoint
from ledger.merkle import CompactRange

from .contract_calendar import TOKYO, end_of_day, is_weekday, month_days, month_of, tokyo
from .kpis import compute_kpis
from .model import Entry, Finding
from .profile import Profile, load_profile
from .rules import RULES
from .state import LedgerState, derive


class CheckError(Exception):
    """A ledger or checkpoint that cannot be checked (one clear line for the user)."""


@dataclass
class Context:
    profile: Profile
    state: LedgerState
    month: str
    as_of: datetime

    # -- time helpers shared by the rules ------------------------------------

    def hours(self, day: date) -> tuple[time, time]:
        return self.profile.weekday_hours if is_weekday(day) else self.profile.weekend_hours

    def in_hours(self, moment: datetime) -> bool:
        start, end = self.hours(moment.date())
        return start <= moment.timetz().replace(tzinfo=None) < end

    def band(self, moment: datetime) -> int | None:
        clock = moment.timetz().replace(tzinfo=None)
        for i, (start, end) in enumerate(self.profile.time_bands):
            if start <= clock < end:
                return i
        return None

    def in_month(self, moment: datetime | date) -> bool:
        day = moment.date() if isinstance(moment, datetime) else moment
        return month_of(day) == self.month

    @property
    def month_end(self) -> datetime:
        return end_of_day(month_days(self.month)[-1])

    @property
    def month_over(self) -> bool:
        return self.as_of >= self.month_end

    def finding(
        self,
        rule: str,
        *,
        case: str | None,
        entries: list[int] | tuple[int, ...],
        ja: str,
        en: str,
        severity: str | None = None,
        pending: bool = False,
    ) -> Finding:
        return Finding(
            rule=rule,
            case=case or "",
            entries=tuple(sorted(set(entries))),
            severity="info" if pending else (severity or RULES[rule].severity),
            clause=f"{self.profile.short} {self.profile.clauses[rule]}",
            message=("【期限前】" if pending else "") + ja,
            message_en=("(pending) " if pending else "") + en,
            pending=pending,
        )

    def deadline(
        self,
        rule: str,
        *,
        due: datetime,
        done: Entry | None,
        case: str | None,
        entries: list[int],
        ja: str,
        en: str,
    ) -> Iterator[Finding]:
        """A thing due by `due`: late or missing once due has passed; pending before."""
        if done is not None and done.at <= due:
            return
        if done is not None:
            yield self.finding(
                rule, case=case, entries=[*entries, done.index], ja=f"{ja}（期限超過）", en=f"{en} (late)"
            )
        elif self.as_of >= due:
            yield self.finding(rule, case=case, entries=entries, ja=f"{ja}（未実施）", en=f"{en} (missing)")
        else:
            yield self.finding(rule, case=case, entries=entries, ja=ja, en=en, pending=True)


def evaluate(
    entries: list[Entry], profile: Profile, month: str, as_of: datetime
) -> tuple[list[Finding], dict[str, Any]]:
    """Findings and KPIs of `month`: the pure core, used directly by tests."""
    ctx = Context(profile, derive(entries), month, tokyo(as_of))
    findings: list[Finding] = []
    for rule_id in sorted(profile.clauses):
        findings.extend(RULES[rule_id].check(ctx))
    return sorted(set(findings)), compute_kpis(ctx)


# -- reading a ledger up to a checkpoint ------------------------------------------


def read_checkpointed(db: Path, note: str | None) -> tuple[Checkpoint, str, list[Entry], dict[str, str]]:
    """The checkpoint (latest stored, or `note`), its signed note, and its entries, checked against its root."""
    if not db.exists():
        raise CheckError(f"no ledger at {db}")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        verifier = Verifier.parse(meta["vkey"])
        if note is None:
            row = conn.execute("SELECT note FROM checkpoints ORDER BY seq DESC LIMIT 1").fetchone()
            if row is None:
                raise CheckError(
                    "the ledger has no signed checkpoint yet: sign one with `kansa ledger checkpoint`"
                )
            note = str(row[0])
        try:
            checkpoint = open_checkpoint(note, verifier)
        except CheckpointError as exc:
            raise CheckError(f"checkpoint: {exc}") from exc
        entries: list[Entry] = []
        edge = CompactRange()
        rows = conn.execute("SELECT idx, leaf FROM entries WHERE idx < ? ORDER BY idx", (checkpoint.size,))
        for idx, leaf_text in rows:
            leaf = leaf_text.encode("utf-8")
            if idx != edge.size:
                raise CheckError(f"entry {edge.size} is missing: run `kansa ledger verify`")
            edge.append(leaf_hash(leaf))
            value = json.loads(leaf)
            entries.append(Entry.from_event(idx, value["event"], value["received"], value["sig"]["key"]))
        if edge.size != checkpoint.size or edge.root() != checkpoint.root:
            raise CheckError("the entries do not match the checkpoint's root: run `kansa ledger verify`")
    except sqlite3.DatabaseError as exc:
        raise CheckError(f"{db}: {exc}") from exc
    finally:
        conn.close()
    return checkpoint, note, entries, meta


@dataclass(frozen=True)
class CheckResult:
    contract: str
    month: str
    checkpoint: Checkpoint
    as_of: datetime | None
    findings: list[Finding]
    kpis: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        cp = self.checkpoint
        return {
            "contract": self.contract,
            "month": self.month,
            "checkpoint": {
                "origin": cp.origin,
                "size": cp.size,
                "root": _b64(cp.root),
                "as_of": self.as_of.isoformat() if self.as_of else None,
            },
            "findings": [f.as_json() for f in self.findings],
            "kpis": self.kpis,
        }


def _b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode()


def check_ledger(
    db: Path | str, month: str, *, checkpoint: str | None = None, profile: str | None = None
) -> CheckResult:
    db = Path(db)
    if (
        len(month) != 7
        or month[4] != "-"
        or not (month[:4] + month[5:]).isdigit()
        or not 1 <= int(month[5:]) <= 12
    ):
        raise CheckError(f"--month must be YYYY-MM, got {month!r}")
    cp, _note, entries, meta = read_checkpointed(db, checkpoint)
    prof = load_profile(profile or meta.get("contract") or "")
    # "Now" is when the ledger received the checkpoint's last entry: never the wall clock.
    as_of = entries[-1].received if entries else datetime(1970, 1, 1, tzinfo=TOKYO)
    findings, kpis = evaluate(entries, prof, month, as_of)
    return CheckResult(prof.id, month, cp, entries[-1].received if entries else None, findings, kpis)


def to_json(result: CheckResult) -> str:
    return json.dumps(result.as_json(), ensure_ascii=False, indent=1, sort_keys=True) + "\n"
