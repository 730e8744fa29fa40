"""`kansa check`: the contract's rules and KPIs over a ledger, as of a signed checkpoint.

Compliance is a pure function of (entries up to a checkpoint, profile, month).
It never reads the wall clock: "now" is the time the ledger received the
checkpoint's last entry, and a deadline not yet passed then is pending.
"""

from __future__ import annotations

import gc
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import orjson

from ledger import Checkpoint, CheckpointError, Verifier, leaf_hash, open_checkpoint
from ledger.merkle import root_of

from .contract_calendar import TOKYO, end_of_day, is_weekday, month_days, month_of, tokyo
from .kpis import compute_kpis
from .model import Entry, Finding
from .profile import Profile, load_profile
from .rules import RULES
from .state import LedgerState, derive


class CheckError(Exception):
    """A ledger or checkpoint that cannot be checked (one clear line for the user)."""


def _seconds(span: tuple[time, time]) -> tuple[int, int]:
    return tuple(t.hour * 3600 + t.minute * 60 + t.second for t in span)  # type: ignore[return-value]


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
        """Half-open: a call may start at 09:00:00 and up to, not at, the closing time."""
        start, end = self._seconds_weekday if is_weekday(moment.date()) else self._seconds_weekend
        return start <= moment.hour * 3600 + moment.minute * 60 + moment.second < end

    def in_calling_period(self, moment: datetime) -> bool:
        """On a scheduled, not excluded calling day of its month, and within that day's hours."""
        days, excluded = self.state.campaign_days(month_of(moment.date()))
        return moment.date() in days and moment.date() not in excluded and self.in_hours(moment)

    def band(self, moment: datetime) -> int | None:
        clock = moment.hour * 3600 + moment.minute * 60 + moment.second
        for i, (start, end) in enumerate(self._seconds_bands):
            if start <= clock < end:
                return i
        return None

    def __post_init__(self) -> None:
        self._year_month = (int(self.month[:4]), int(self.month[5:7]))
        self._memo: dict[str, Any] = {}
        self._seconds_weekday = _seconds(self.profile.weekday_hours)
        self._seconds_weekend = _seconds(self.profile.weekend_hours)
        self._seconds_bands = [_seconds(band) for band in self.profile.time_bands]

    def in_month(self, moment: datetime | date) -> bool:
        return (moment.year, moment.month) == self._year_month

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """Something derived once per check and shared by the rules that need it."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

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
    return evaluate_in(Context(profile, derive(entries), month, tokyo(as_of)))


def evaluate_in(ctx: Context) -> tuple[list[Finding], dict[str, Any]]:
    findings: list[Finding] = []
    for rule_id in sorted(ctx.profile.clauses):
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
        hashes: list[bytes] = []
        # CAST to BLOB hands over the stored UTF-8 bytes as they are: no decode and re-encode.
        rows = conn.execute(
            "SELECT idx, CAST(leaf AS BLOB) FROM entries WHERE idx < ? ORDER BY idx", (checkpoint.size,)
        )
        for idx, leaf in rows:
            if idx != len(hashes):
                raise CheckError(f"entry {len(hashes)} is missing: run `kansa ledger verify`")
            hashes.append(leaf_hash(leaf))
            value = orjson.loads(leaf)
            entries.append(Entry.from_event(idx, value["event"], value["received"], value["sig"]["key"]))
        if len(hashes) != checkpoint.size or root_of(hashes) != checkpoint.root:
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
    profile: Profile | None = None  # the profile judged by (not part of the JSON)

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
    result, _ctx, _note = check_with_context(db, month, checkpoint=checkpoint, profile=profile)
    return result


def check_with_context(
    db: Path | str, month: str, *, checkpoint: str | None = None, profile: str | None = None
) -> tuple[CheckResult, Context, str]:
    """`check_ledger`, also handing back what it judged (the derived state, the profile)
    and the checkpoint's signed note: the monthly review and the reports read these."""
    db = Path(db)
    if (
        len(month) != 7
        or month[4] != "-"
        or not (month[:4] + month[5:]).isdigit()
        or not 1 <= int(month[5:]) <= 12
    ):
        raise CheckError(f"--month must be YYYY-MM, got {month!r}")
    with _gc_paused():
        return _check(db, month, checkpoint, profile)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The check builds hundreds of thousands of long-lived objects and frees none of
    them until it ends; the cyclic collector would rescan them all again and again
    (time grew faster than the ledger). Reference counting still frees what dies."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check(
    db: Path, month: str, checkpoint: str | None, profile: str | None
) -> tuple[CheckResult, Context, str]:
    cp, note, entries, meta = read_checkpointed(db, checkpoint)
    prof = load_profile(profile or meta.get("contract") or "")
    # "Now" is when the ledger received the checkpoint's last entry: never the wall clock.
    as_of = entries[-1].received_at if entries else datetime(1970, 1, 1, tzinfo=TOKYO)
    ctx = Context(prof, derive(entries), month, tokyo(as_of))
    findings, kpis = evaluate_in(ctx)
    result = CheckResult(
        prof.id, month, cp, entries[-1].received_at if entries else None, findings, kpis, prof
    )
    return result, ctx, note


def to_json(result: CheckResult) -> str:
    return json.dumps(result.as_json(), ensure_ascii=False, indent=1, sort_keys=True) + "\n"
