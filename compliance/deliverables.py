"""The contract's deliverables to the city, computed from the ledger (one checkpoint):
daily report, monthly report, SMS result report, unreached cases as SMS candidates,
and the final report. Each is a few sheets of rows with Japanese headers and Japanese
words for every code; `kansa report` writes them as Excel (openpyxl, with number and
date formats, A4 page setup) and as CSV in UTF-8 with BOM.

Values keep their types (int counts, float rates 0..1, date, datetime in JST) and each
column says its kind, so Excel gets real numbers with formats and the CSV gets the
Japanese forms (2026年10月26日 19:38, 70.7%).

Cases are named by the ledger's reference. The city's own case number (案件番号) lives
only in the encrypted data store; `kansa report --store` adds it there, logging each
read as access.viewed. Without it the column says 未取得. This module never touches
personal data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from contract.calendar import month_of

from .kpis import cases_in, reached
from .present import date_ja, month_ja, word
from .review import MonthlyReview, numbers_called
from .state import CASE_ENDING

RESULTS = ("answered", "no_answer", "busy", "voicemail", "unavailable", "invalid")
RESULT_JA = {r: word("result", r) for r in RESULTS}
NOT_FETCHED = "未取得"  # the city's case number when the data store was not given


@dataclass(frozen=True)
class Sheet:
    name: str  # the Excel sheet's name
    slug: str  # the CSV file's suffix (ASCII)
    headers: list[str]
    rows: list[list[Any]]
    kinds: list[str] = field(default_factory=list)  # per column: text, int, pct, date, datetime

    def kind(self, column: int) -> str:
        return self.kinds[column] if column < len(self.kinds) else "text"


@dataclass(frozen=True)
class Deliverable:
    kind: str  # report.submitted's kind
    covers: str  # a day or a month
    title: str
    sheets: list[Sheet] = field(default_factory=list)

    @property
    def stem(self) -> str:
        return f"{self.kind}-{self.covers}"


CASE_NUMBER = "案件番号"
DAILY_HEADERS = ["日付", "架電件数", *RESULT_JA.values(), "接触件数", "納付了承件数"]
DAILY_KINDS = ["date", *["int"] * (len(DAILY_HEADERS) - 1)]


def calling_days(review: MonthlyReview) -> list[date]:
    """Every scheduled calling day of the month (not excluded), and any other day with calls."""
    ctx = review.ctx
    days, excluded = ctx.state.campaign_days(review.month)
    called = {c.at.date() for c in ctx.state.calls if ctx.in_month(c.at)}
    return sorted((days - excluded) | called)


def daily_rows(review: MonthlyReview) -> list[list[Any]]:
    """One row per calling day: calls, results by kind, contacts, promises (zeros included)."""
    ctx = review.ctx
    by_day: dict[date, Counter[str]] = {day: Counter() for day in calling_days(review)}
    for call in ctx.state.calls:
        if ctx.in_month(call.at):
            by_day.setdefault(call.at.date(), Counter())[call.dialed.data["result"]] += 1
    contacts: Counter[date] = Counter()
    promises: Counter[date] = Counter()
    # A resident's callback reaches a case as a call does, for a case called in the month (as the
    # KPIs count it, docs/compliance.md "KPIs").
    called = {c.case for c in ctx.state.calls if ctx.in_month(c.at)}
    for outcome in ctx.state.of("call.outcome") + ctx.state.of("callback.outcome"):
        if outcome.type == "callback.outcome" and outcome.data["case"] not in called:
            continue
        if ctx.in_month(outcome.at) and reached(outcome.data):
            contacts[outcome.at.date()] += 1
            if outcome.data["promise"] is not None:
                promises[outcome.at.date()] += 1
    return [
        [day, sum(counts.values()), *(counts[r] for r in RESULTS), contacts[day], promises[day]]
        for day, counts in sorted(by_day.items())
    ]


def daily_reports(review: MonthlyReview) -> list[Deliverable]:
    """One report per calling day, a day without calls too (all zeros)."""
    return [
        Deliverable(
            "daily",
            row[0].isoformat(),
            f"日報 {date_ja(row[0])}",
            [Sheet("日報", "daily", DAILY_HEADERS, [row], DAILY_KINDS)],
        )
        for row in daily_rows(review)
    ]


def _jst(moment: datetime) -> datetime:
    """A naive datetime in JST (Excel has no time zones; the report states JST once)."""
    return moment.replace(tzinfo=None)


def number_results(review: MonthlyReview) -> Sheet:
    """(イ) The month's per-number results list."""
    rows = []
    ctx = review.ctx
    for ref, number, kind, calls in numbers_called(ctx):
        last = calls[-1]
        outcome = last.outcome.data if last.outcome else {}
        # A resident's callback belongs to the case, not a number: it shows on each of its rows.
        talks = [c.outcome.data for c in calls if c.outcome] + [
            o.data for o in ctx.state.cases[ref].outcomes if o.type == "callback.outcome" and ctx.in_month(o.at)
        ]
        disposition = word("disposition", outcome["disposition"]) if "disposition" in outcome else "—"
        if outcome.get("disposition") not in CASE_ENDING and any(t["disposition"] == "completed" for t in talks):
            disposition = f"{word('disposition', 'completed')}（折り返し電話）"
        rows.append(
            [
                ref,
                NOT_FETCHED,
                f"番号{number}",
                word("number_kind", kind),
                len(calls),
                _jst(last.at),
                RESULT_JA.get(last.dialed.data["result"], last.dialed.data["result"]),
                disposition,
                "○" if any(reached(t) for t in talks) else "",
                "○" if any(t.get("promise") for t in talks) else "",
            ]
        )
    headers = [
        "案件（参照番号）",
        CASE_NUMBER,
        "番号",
        "種別",
        "架電回数",
        "最終架電日時",
        "最終架電の結果",
        "処理区分",
        "接触",
        "納付了承",
    ]
    kinds = ["text", "text", "text", "text", "int", "datetime", "text", "text", "text", "text"]
    return Sheet("(イ) 番号別結果", "numbers", headers, rows, kinds)


def monthly_report(review: MonthlyReview) -> Deliverable:
    """The monthly report (N §10(2), T §12(2)): (ア) the month's figures with the results by
    kind, and the daily figures they add up from; (イ) the per-number results."""
    k = review.result.kpis
    volume, contact, promise, callbacks = (
        k.get("KPI-VOLUME", {}),
        k.get("KPI-CONTACT", {}),
        k.get("KPI-PROMISE", {}),
        k.get("KPI-CALLBACKS", {}),
    )
    days = daily_rows(review)
    total = [sum(row[i] for row in days) for i in range(1, len(DAILY_HEADERS))]
    by_result = dict(zip(RESULTS, total[1 : 1 + len(RESULTS)], strict=True))
    totals: list[list[Any]] = [
        ["架電日数", len(days), None],
        ["架電対象件数（架電した案件）", volume.get("value"), None],
        ["架電件数", total[0], None],
        *[[f"　うち{RESULT_JA[r]}", by_result[r], _share(by_result[r], total[0])] for r in RESULTS],
        ["接触した案件数（本人または同意した同一世帯の方）", contact.get("numerator"), None],
        ["接触率", None, contact.get("value")],
        ["接触率の目標", None, contact.get("target")],
        ["納付了承件数", promise.get("numerator"), None],
        ["納付了承率", None, promise.get("value")],
        ["SMS送信件数", volume.get("sms_sent"), None],
        ["SMS送信の見送り件数", volume.get("sms_blocked"), None],
        ["折り返し電話の件数", callbacks.get("value"), None],
        ["　うち通話結果を記録した件数", sum(callbacks.get("outcomes", {}).values()), None],
        ["折り返し電話で完了した案件数", callbacks.get("completed_cases"), None],
    ]
    daily = [*days, ["合計", *total]]
    return Deliverable(
        "monthly",
        review.month,
        f"月報 {month_ja(review.month)}",
        [
            Sheet("(ア) 月間集計", "totals", ["項目", "件数", "割合"], totals, ["text", "int", "pct"]),
            Sheet("(ア) 日別集計", "days", DAILY_HEADERS, daily, DAILY_KINDS),
            number_results(review),
        ],
    )


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def sms_reports(review: MonthlyReview) -> list[Deliverable]:
    """One report per sending day: every SMS sent (with its delivery result) and every one held back."""
    ctx = review.ctx
    results = {e.data["message"]: e for e in ctx.state.of("sms.result")}
    by_day: dict[date, list[list[Any]]] = {}
    for sent in ctx.state.of("sms.sent"):
        if ctx.in_month(sent.at):
            result = results.get(sent.data["message"])
            status = word("sms_status", result.data["status"]) if result else "結果未着"
            by_day.setdefault(sent.at.date(), []).append(
                [
                    sent.data["case"],
                    NOT_FETCHED,
                    f"番号{sent.data['number']}",
                    _jst(sent.at),
                    word("carrier", sent.data["carrier"]),
                    sent.data["segments"],
                    status,
                    "",
                ]
            )
    for blocked in ctx.state.of("sms.blocked"):
        if ctx.in_month(blocked.at):
            by_day.setdefault(blocked.at.date(), []).append(
                [
                    blocked.data["case"],
                    NOT_FETCHED,
                    f"番号{blocked.data['number']}",
                    _jst(blocked.at),
                    "",
                    0,
                    "送信を見送り",
                    word("sms_blocked", blocked.data["reason"]),
                ]
            )
    headers = ["案件（参照番号）", CASE_NUMBER, "番号", "日時", "キャリア", "通数", "結果", "見送りの理由"]
    kinds = ["text", "text", "text", "datetime", "text", "int", "text", "text"]
    return [
        Deliverable(
            "sms",
            day.isoformat(),
            f"SMS結果報告 {date_ja(day)}",
            [Sheet("SMS結果", "results", headers, rows, kinds)],
        )
        for day, rows in sorted(by_day.items())
    ]


def sms_candidates(review: MonthlyReview) -> Deliverable:
    """Cases called this month and never reached, not stopped, that have a mobile number:
    the list the city chooses SMS recipients from."""
    ctx = review.ctx
    called, reached_cases, _ = cases_in(ctx, {ctx.month})
    rows = []
    for ref in sorted(called - reached_cases):
        case = ctx.state.cases[ref]
        if case.stopped_in(ctx.month) is not None or case.ending(ctx.month) is not None:
            continue
        listed = case.numbers_in(ctx.month) if case.listing(ctx.month) is not None else case.numbers
        mobiles = [n["ref"] for n in listed if n["kind"] == "mobile"]
        if not mobiles:
            continue
        attempts = len([c for c in case.calls if ctx.in_month(c.at)])
        rows.append([ref, NOT_FETCHED, "・".join(f"番号{m}" for m in mobiles), attempts])
    headers = ["案件（参照番号）", CASE_NUMBER, "携帯電話の番号", "架電回数"]
    return Deliverable(
        "sms_candidates",
        review.month,
        f"未接触者一覧（SMS候補） {month_ja(review.month)}",
        [Sheet("SMS候補", "candidates", headers, rows, ["text", "text", "text", "int"])],
    )


def final_report(review: MonthlyReview) -> Deliverable:
    """The contract to date: contact rate, promise rate, callbacks, month by month and in total."""
    ctx = review.ctx
    months = [m for m in ctx.profile.calling_months if m <= review.month]
    rows = []
    all_called: set[str] = set()
    all_reached: set[str] = set()
    all_promised: set[str] = set()
    callbacks_total = 0
    for m in months:
        called, reached_cases, promised = cases_in(ctx, {m})
        callbacks = sum(1 for e in ctx.state.of("callback.received") if month_of(e.at.date()) == m)
        all_called |= called
        all_reached |= reached_cases
        all_promised |= promised
        callbacks_total += callbacks
        rows.append(
            [
                month_ja(m),
                len(called),
                len(reached_cases),
                _rate(reached_cases, called),
                len(promised),
                _rate(promised, reached_cases),
                callbacks,
            ]
        )
    rows.append(
        [
            "合計",
            len(all_called),
            len(all_reached),
            _rate(all_reached, all_called),
            len(all_promised),
            _rate(all_promised, all_reached),
            callbacks_total,
        ]
    )
    headers = ["月", "架電対象件数", "接触件数", "接触率", "納付了承件数", "納付了承率", "折り返し電話"]
    return Deliverable(
        "final",
        review.month,
        f"最終報告（{month_ja(review.month)}まで）",
        [Sheet("最終報告", "final", headers, rows, ["text", "int", "int", "pct", "int", "pct", "int"])],
    )


def _rate(part: set[str], whole: set[str]) -> float | None:
    return round(len(part) / len(whole), 4) if whole else None


def all_deliverables(review: MonthlyReview) -> list[Deliverable]:
    found = [
        *daily_reports(review),
        monthly_report(review),
        *sms_reports(review),
        sms_candidates(review),
        final_report(review),
    ]
    if review.result.profile is not None and review.result.profile.wareki:
        return [in_wareki(d) for d in found]
    return found


def in_wareki(deliverable: Deliverable) -> Deliverable:
    """The same deliverable with its dates written in 和暦 (令和8年10月26日), as the profile asks."""
    sheets = [
        Sheet(s.name, s.slug, s.headers, s.rows, [WAREKI.get(k, k) for k in s.kinds])
        for s in deliverable.sheets
    ]
    return Deliverable(deliverable.kind, deliverable.covers, deliverable.title, sheets)


WAREKI = {"date": "wdate", "datetime": "wdatetime"}
