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
from .present import (
    KPI_WORDS,
    RATE_KPIS,
    SEVERITY_MARK,
    clause_ja,
    count,
    custody_words,
    jst,
    pct,
    word,
)
from .state import Call

Row = dict[str, Any]


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
    """KPIs against targets: counts as integers, rates as percentages."""
    rows = []
    for name, k in sorted(review.result.kpis.items()):
        rate = name in RATE_KPIS
        show = pct if rate else count
        rows.append(
            {
                "指標": KPI_WORDS.get(name, name),
                "分子": count(k.get("numerator")),
                "分母": count(k.get("denominator")),
                "値": show(k.get("value")),
                "目標": show(k.get("target")) if k.get("target") is not None else "—",
                "達成": "—" if k.get("met") is None else ("✔ 達成" if k["met"] else "✘ 未達"),
            }
        )
        month = k.get("month")
        if isinstance(month, dict):  # a target over the contract: the month's own figure beside it
            rows.append(
                {
                    "指標": f"{KPI_WORDS.get(name, name)}（当月）",
                    "分子": count(month.get("numerator")),
                    "分母": count(month.get("denominator")),
                    "値": show(month.get("value")),
                    "目標": "—",
                    "達成": "—",
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
                "案件": ref,
                "番号": f"番号{number}",
                "種別": word("number_kind", kind),
                "架電回数": len(calls),
                "日数": len({c.at.date() for c in calls}),
                "時間帯の数": len({b for c in calls if (b := ctx.band(c.at)) is not None}),
                "土日祝の架電": sum(not is_weekday(c.at.date()) for c in calls),
                "最後の処理区分": word("disposition", outcomes[-1]) if outcomes else "—",
                "記録の番号": " ".join(str(c.dialed.index) for c in calls),
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
        kind = "平日" if is_weekday(call.at.date()) else "土日祝"
        counts[(kind, call.at.hour)] += 1
        if not ctx.in_hours(call.at):
            outside[(kind, call.at.hour)] += 1
    weekday = ctx.profile.weekday_hours
    weekend = ctx.profile.weekend_hours
    rows = []
    for (kind, hour), n in sorted(counts.items(), key=lambda kv: (kv[0][0] != "平日", kv[0][1])):
        window = weekday if kind == "平日" else weekend
        rows.append(
            {
                "曜日の区分": kind,
                "開始時刻": f"{hour}時台",
                "架電件数": n,
                "うち時間外": outside[(kind, hour)],
                "架電できる時間": f"{window[0]:%H:%M}〜{window[1]:%H:%M}",
            }
        )
    return rows


def finding_groups(review: MonthlyReview) -> list[Row]:
    """Findings grouped by rule, each group with the contract's clause quoted."""
    quotes = review.result.profile.quotes if review.result.profile else {}
    groups: dict[str, Row] = {}
    for f in review.result.findings:
        group = groups.setdefault(
            f.rule,
            {"rule": f.rule, "clause": clause_ja(f.clause), "quote": quotes.get(f.rule, ""), "rows": []},
        )
        group["rows"].append(
            {
                "区分": SEVERITY_MARK["pending" if f.pending else f.severity],
                "案件": f.case or "—",
                "内容": f.message,
                "根拠の記録": " ".join(map(str, f.entries)),
            }
        )
    return list(groups.values())


def custody_rows(review: MonthlyReview) -> list[Row]:
    """Every custody event of every batch, batch by batch in ledger order, in words."""
    by_batch: dict[str, list[Row]] = defaultdict(list)
    for entry in review.ctx.state.entries:
        if entry.type.startswith("custody."):
            by_batch[str(entry.data["batch"])].append(
                {
                    "バッチ": entry.data["batch"],
                    "手順": word("event", entry.type),
                    "日時": jst(entry.at),
                    "担当": entry.actor,
                    "内容": custody_words(entry.type, entry.data),
                    "記録の番号": entry.index,
                }
            )
    return [row for batch in sorted(by_batch) for row in by_batch[batch]]
