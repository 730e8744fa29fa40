"""The monthly review's tables, from one checkpoint: what the marimo notebook shows and
`kansa report` prints. Plain rows (lists of dicts with Japanese column names, English
beside them) so the notebook, the HTML report and the spreadsheets show the same thing.

Everything comes from `check_with_context`: the entries below the checkpoint, never the
wall clock, so the same checkpoint always gives the same tables.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.calendar import is_weekday
from ledger import Report, verify_ledger

from .context import Context
from .engine import CheckResult, check_with_context
from .state import Call

Row = dict[str, Any]

KPI_NAMES = {
    "KPI-CONTACT": "接触率 contact rate",
    "KPI-PROMISE": "納付約束率 promise rate",
    "KPI-VOLUME": "架電対象件数 cases called",
    "KPI-CALLBACKS": "折り返し件数 callbacks",
}
SEVERITY_JA = {"violation": "違反 violation", "judgement": "判断 judgement", "info": "情報 info"}


@dataclass(frozen=True)
class MonthlyReview:
    month: str
    note: str  # the checkpoint's signed note
    result: CheckResult
    ctx: Context
    verification: Report | None

    @property
    def checkpoint(self) -> dict[str, Any]:
        cp = self.result.as_json()["checkpoint"]
        return {"origin": cp["origin"], "size": cp["size"], "root": cp["root"], "as_of": cp["as_of"]}


def load_review(
    db: Path | str, month: str, *, checkpoint: str | None = None, verify: bool = True
) -> MonthlyReview:
    """Verify the ledger against the checkpoint (when `verify`), then check the month as of it."""
    result, ctx, note = check_with_context(db, month, checkpoint=checkpoint)
    report = verify_ledger(db, checkpoint=note) if verify else None
    return MonthlyReview(month, note, result, ctx, report)


def kpi_rows(review: MonthlyReview) -> list[Row]:
    rows = []
    for name, k in sorted(review.result.kpis.items()):
        rows.append(
            {
                "KPI": name,
                "名称 name": KPI_NAMES.get(name, name),
                "分子 numerator": k.get("numerator"),
                "分母 denominator": k.get("denominator"),
                "値 value": k.get("value"),
                "目標 target": k.get("target"),
                "達成 met": "—" if k.get("met") is None else ("達成 met" if k["met"] else "未達 NOT met"),
            }
        )
    return rows


def numbers_called(ctx: Context) -> Iterator[tuple[str, str, str, list[Call]]]:
    """(case, number, kind of number, the month's calls to it in call order), by case and number."""
    for ref in sorted(ctx.state.cases):
        case = ctx.state.cases[ref]
        kinds = {n["ref"]: n["kind"] for o in case.openings for n in o.data.get("numbers", [])}
        for number in sorted({c.number for c in case.calls}):
            calls = case.calls_to(number, ctx.month)
            if calls:
                yield ref, number, kinds.get(number, "unknown"), calls


def attempts_rows(review: MonthlyReview) -> list[Row]:
    """Each number called this month: attempts, on how many days and time bands, and whether
    one was on a weekend or holiday (the contract's 'varied days and times')."""
    ctx = review.ctx
    rows = []
    for ref, number, kind, calls in numbers_called(ctx):
        outcomes = [c.outcome.data["disposition"] for c in calls if c.outcome is not None]
        rows.append(
            {
                "案件 case": ref,
                "番号 number": number,
                "種別 kind": kind,
                "架電回数 attempts": len(calls),
                "日数 days": len({c.at.date() for c in calls}),
                "時間帯 bands": len({b for c in calls if (b := ctx.band(c.at)) is not None}),
                "土日祝 weekend/holiday": sum(not is_weekday(c.at.date()) for c in calls),
                "最後の結果 last disposition": outcomes[-1] if outcomes else "—",
                "台帳番号 entries": " ".join(str(c.dialed.index) for c in calls),
            }
        )
    return rows


def hours_rows(review: MonthlyReview) -> list[Row]:
    """Calls by day type and starting hour, against the calling window of that day type."""
    ctx = review.ctx
    counts: Counter[tuple[str, int]] = Counter()
    outside: Counter[tuple[str, int]] = Counter()
    for call in ctx.state.calls:
        if not ctx.in_month(call.at):
            continue
        kind = "平日 weekday" if is_weekday(call.at.date()) else "土日祝 weekend/holiday"
        counts[(kind, call.at.hour)] += 1
        if not ctx.in_hours(call.at):
            outside[(kind, call.at.hour)] += 1
    weekday = ctx.profile.weekday_hours
    weekend = ctx.profile.weekend_hours
    rows = []
    for (kind, hour), n in sorted(counts.items()):
        window = weekday if kind.startswith("平日") else weekend
        rows.append(
            {
                "曜日区分 day type": kind,
                "時 hour": hour,
                "架電 calls": n,
                "時間外 outside hours": outside[(kind, hour)],
                "架電可能時間 window": f"{window[0]:%H:%M}-{window[1]:%H:%M}",
            }
        )
    return rows


def finding_groups(review: MonthlyReview) -> list[Row]:
    """Findings grouped by rule, each group with the contract's clause quoted."""
    quotes = review.result.profile.quotes if review.result.profile else {}
    groups: dict[str, Row] = {}
    for f in review.result.findings:
        group = groups.setdefault(
            f.rule, {"rule": f.rule, "clause": f.clause, "quote": quotes.get(f.rule, ""), "rows": []}
        )
        group["rows"].append(
            {
                "区分 severity": SEVERITY_JA[f.severity] + ("（期限前 pending）" if f.pending else ""),
                "案件 case": f.case or "—",
                "内容 message": f.message,
                "台帳番号 entries": " ".join(map(str, f.entries)),
            }
        )
    return list(groups.values())


def custody_rows(review: MonthlyReview) -> list[Row]:
    """Every custody event of every batch, batch by batch in ledger order."""
    by_batch: dict[str, list[Row]] = defaultdict(list)
    for entry in review.ctx.state.entries:
        if entry.type.startswith("custody."):
            data = {k: v for k, v in entry.data.items() if k != "batch"}
            by_batch[str(entry.data["batch"])].append(
                {
                    "バッチ batch": entry.data["batch"],
                    "種別 type": entry.type,
                    "日時 at": entry.at.isoformat(timespec="minutes"),
                    "担当 actor": entry.actor,
                    "内容 details": ", ".join(f"{k}={v}" for k, v in sorted(data.items())),
                    "台帳番号 entry": entry.index,
                }
            )
    return [row for batch in sorted(by_batch) for row in by_batch[batch]]
