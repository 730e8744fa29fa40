"""The contract's deliverables to the city, computed from the ledger (one checkpoint):
daily report, monthly report, SMS result report, unreached cases as SMS candidates,
and the final report. Each is a few sheets of rows with Japanese headers; `kansa report`
writes them as Excel (openpyxl) and as CSV in UTF-8 with BOM.

Cases are named by the ledger's reference. The city's own case number (案件番号) lives
only in the encrypted data store; `kansa report --store` adds it there, logging each
read as access.viewed. This module never touches personal data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from contract.calendar import month_of

from .kpis import cases_in, reached
from .review import MonthlyReview, numbers_called

RESULTS = ("answered", "no_answer", "busy", "voicemail", "unavailable", "invalid")
RESULT_JA = {
    "answered": "応答 answered",
    "no_answer": "応答なし no answer",
    "busy": "話中 busy",
    "voicemail": "留守電 voicemail",
    "unavailable": "一時不通 unavailable",
    "invalid": "不通・無効 invalid",
}
SMS_STATUS_JA = {"delivered": "配信 delivered", "failed": "失敗 failed", "expired": "期限切れ expired"}


@dataclass(frozen=True)
class Sheet:
    name: str  # the Excel sheet's name
    slug: str  # the CSV file's suffix (ASCII)
    headers: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class Deliverable:
    kind: str  # report.submitted's kind
    covers: str  # a day or a month
    title: str
    sheets: list[Sheet] = field(default_factory=list)

    @property
    def stem(self) -> str:
        return f"{self.kind}-{self.covers}"


CASE_NUMBER = "案件番号 city case no."


def daily_reports(review: MonthlyReview) -> list[Deliverable]:
    """One report per calling day: calls, results by category, contacts, promises."""
    ctx = review.ctx
    by_day: dict[date, Counter[str]] = {}
    for call in ctx.state.calls:
        if ctx.in_month(call.at):
            by_day.setdefault(call.at.date(), Counter())[call.dialed.data["result"]] += 1
    contacts: Counter[date] = Counter()
    promises: Counter[date] = Counter()
    for outcome in ctx.state.of("call.outcome"):
        if ctx.in_month(outcome.at) and reached(outcome.data):
            contacts[outcome.at.date()] += 1
            if outcome.data["promise"] is not None:
                promises[outcome.at.date()] += 1
    headers = [
        "日付 date",
        "架電件数 calls",
        *(RESULT_JA[r] for r in RESULTS),
        "接触 contacts",
        "納付約束 promises",
    ]
    out = []
    for day in sorted(by_day):
        counts = by_day[day]
        row = [
            day.isoformat(),
            sum(counts.values()),
            *(counts[r] for r in RESULTS),
            contacts[day],
            promises[day],
        ]
        out.append(
            Deliverable(
                "daily",
                day.isoformat(),
                f"日報 {day.isoformat()}",
                [Sheet("日報 daily", "daily", headers, [row])],
            )
        )
    return out


def number_results(review: MonthlyReview) -> Sheet:
    """The month's per-number results list."""
    rows = []
    for ref, number, kind, calls in numbers_called(review.ctx):
        last = calls[-1]
        outcome = last.outcome.data if last.outcome else {}
        rows.append(
            [
                ref,
                "",
                number,
                kind,
                len(calls),
                last.at.isoformat(timespec="minutes"),
                RESULT_JA.get(last.dialed.data["result"], last.dialed.data["result"]),
                outcome.get("disposition", "—"),
                "○" if any(c.outcome and reached(c.outcome.data) for c in calls) else "",
                "○" if any(c.outcome and c.outcome.data.get("promise") for c in calls) else "",
            ]
        )
    headers = [
        "案件 case",
        CASE_NUMBER,
        "番号 number",
        "種別 kind",
        "架電回数 attempts",
        "最終架電 last call",
        "最終結果 last result",
        "処理区分 disposition",
        "接触 contact",
        "納付約束 promise",
    ]
    return Sheet("番号別結果 per number", "numbers", headers, rows)


def monthly_report(review: MonthlyReview) -> Deliverable:
    k = review.result.kpis
    volume, contact, promise, callbacks = (
        k["KPI-VOLUME"],
        k["KPI-CONTACT"],
        k["KPI-PROMISE"],
        k["KPI-CALLBACKS"],
    )
    totals = [
        ["架電対象件数 cases called", volume["value"]],
        ["架電回数 calls", volume["attempts"]],
        ["1番号あたり架電回数 attempts per number", volume["attempts_per_number"]],
        [
            "接触件数 cases reached",
            promise["denominator"] if promise["denominator_is"] == "reached" else None,
        ],
        ["接触率 contact rate", contact["value"]],
        ["接触率の目標 contact target", contact["target"]],
        ["納付約束件数 promises", promise["numerator"]],
        ["納付約束率 promise rate", promise["value"]],
        ["SMS送信 SMS sent", volume["sms_sent"]],
        ["SMS送信停止 SMS blocked", volume["sms_blocked"]],
        ["折り返し電話 callbacks", callbacks["value"]],
    ]
    return Deliverable(
        "monthly",
        review.month,
        f"月報 {review.month}",
        [Sheet("集計 totals", "totals", ["項目 item", "値 value"], totals), number_results(review)],
    )


def sms_reports(review: MonthlyReview) -> list[Deliverable]:
    """One report per sending day: every SMS sent (with its delivery result) and every one blocked."""
    ctx = review.ctx
    results = {e.data["message"]: e for e in ctx.state.of("sms.result")}
    by_day: dict[date, list[list[Any]]] = {}
    for sent in ctx.state.of("sms.sent"):
        if ctx.in_month(sent.at):
            result = results.get(sent.data["message"])
            status = SMS_STATUS_JA.get(result.data["status"], "") if result else "未着 no result yet"
            by_day.setdefault(sent.at.date(), []).append(
                [
                    sent.data["case"],
                    "",
                    sent.data["number"],
                    sent.at.isoformat(timespec="minutes"),
                    sent.data["carrier"],
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
                    "",
                    blocked.data["number"],
                    blocked.at.isoformat(timespec="minutes"),
                    "",
                    0,
                    "送信せず not sent",
                    blocked.data["reason"],
                ]
            )
    headers = [
        "案件 case",
        CASE_NUMBER,
        "番号 number",
        "日時 at",
        "キャリア carrier",
        "通数 segments",
        "結果 result",
        "送信しない理由 reason not sent",
    ]
    return [
        Deliverable(
            "sms",
            day.isoformat(),
            f"SMS結果報告 {day.isoformat()}",
            [Sheet("SMS結果 results", "results", headers, rows)],
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
        rows.append([ref, "", " ".join(mobiles), attempts])
    headers = ["案件 case", CASE_NUMBER, "携帯番号 mobile number refs", "架電回数 attempts"]
    return Deliverable(
        "sms_candidates",
        review.month,
        f"未接触者一覧（SMS候補） {review.month}",
        [Sheet("SMS候補 candidates", "candidates", headers, rows)],
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
                m,
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
            "合計 total",
            len(all_called),
            len(all_reached),
            _rate(all_reached, all_called),
            len(all_promised),
            _rate(all_promised, all_reached),
            callbacks_total,
        ]
    )
    headers = [
        "月 month",
        "架電対象 cases called",
        "接触 reached",
        "接触率 contact rate",
        "納付約束 promises",
        "納付約束率 promise rate",
        "折り返し callbacks",
    ]
    return Deliverable(
        "final",
        review.month,
        f"最終報告（{review.month} まで）",
        [Sheet("最終報告 final", "final", headers, rows)],
    )


def _rate(part: set[str], whole: set[str]) -> float | None:
    return round(len(part) / len(whole), 4) if whole else None


def all_deliverables(review: MonthlyReview) -> list[Deliverable]:
    return [
        *daily_reports(review),
        monthly_report(review),
        *sms_reports(review),
        sms_candidates(review),
        final_report(review),
    ]
