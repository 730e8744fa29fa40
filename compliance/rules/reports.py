"""Reports: REPORT-DAILY, REPORT-SMS, REPORT-MONTHLY, REPORT-SMS-CANDIDATES."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from contract.calendar import add_business_days, at_time, end_of_day

from ..model import Entry, Finding
from ..present import month_ja, on_ja, when_ja
from .registry import rule

if TYPE_CHECKING:
    from ..context import Context


def _report(ctx: Context, kind: str, covers: str) -> Entry | None:
    found = [
        e for e in ctx.state.of("report.submitted") if e.data["kind"] == kind and e.data["covers"] == covers
    ]
    return found[0] if found else None


def _calling_days(ctx: Context) -> list[date]:
    return sorted({c.at.date() for c in ctx.state.calls if ctx.in_month(c.at)})


def _last_calling_day(ctx: Context) -> date | None:
    """When the month's work ends (業務終了): its last scheduled calling day, on which the center
    still works and takes callbacks even if no outgoing call was left to make; without a
    schedule, the last day a call was made."""
    called = _calling_days(ctx)
    if not called:
        return None
    scheduled, excluded = ctx.state.campaign_days(ctx.month)
    days = sorted(d for d in scheduled - excluded if ctx.in_month(d))
    return max(days[-1], called[-1]) if days else called[-1]


def daily_due(ctx: Context, day: date) -> datetime:
    nxt = (
        add_business_days(day, 1) if ctx.profile.daily_counts == "business_days" else day + timedelta(days=1)
    )
    return at_time(nxt, ctx.profile.daily_deadline)


@rule("REPORT-DAILY")
def report_daily(ctx: Context) -> Iterator[Finding]:
    first_calls: dict[date, int] = {}
    for call in ctx.state.calls:
        first_calls.setdefault(call.at.date(), call.dialed.index)
    for day in _calling_days(ctx):
        due = daily_due(ctx, day)
        entries = [first_calls[day]]
        yield from ctx.deadline(
            "REPORT-DAILY",
            due=due,
            done=_report(ctx, "daily", day.isoformat()),
            case=None,
            entries=entries,
            ja=f"{on_ja(day)}の日報（期限 {when_ja(due)}）",
            en=f"the daily report of {day} (due {due:%m-%d %H:%M})",
        )


@rule("REPORT-SMS")
def report_sms(ctx: Context) -> Iterator[Finding]:
    days = sorted({e.at.date() for e in ctx.state.of("sms.sent") if ctx.in_month(e.at)})
    for day in days:
        due = end_of_day(add_business_days(day, ctx.profile.sms_report_business_days))
        first = next(e.index for e in ctx.state.of("sms.sent") if e.at.date() == day)
        yield from ctx.deadline(
            "REPORT-SMS",
            due=due,
            done=_report(ctx, "sms", day.isoformat()),
            case=None,
            entries=[first],
            ja=f"{on_ja(day)}のSMS送信結果報告（{ctx.profile.sms_report_business_days}開庁日以内）",
            en=f"the SMS report of {day} (within {ctx.profile.sms_report_business_days} business days)",
        )


@rule("REPORT-MONTHLY")
def report_monthly(ctx: Context) -> Iterator[Finding]:
    last = _last_calling_day(ctx)
    if last is None:
        return
    due = end_of_day(add_business_days(last, ctx.profile.monthly_business_days))
    yield from ctx.deadline(
        "REPORT-MONTHLY",
        due=due,
        done=_report(ctx, "monthly", ctx.month),
        case=None,
        entries=[],
        ja=f"{month_ja(ctx.month)}の月報（最終架電日の{ctx.profile.monthly_business_days}営業日以内）",
        en=f"the monthly report of {ctx.month} (within {ctx.profile.monthly_business_days}"
        " business days of the last calling day)",
    )


@rule("REPORT-SMS-CANDIDATES")
def report_sms_candidates(ctx: Context) -> Iterator[Finding]:
    last = _last_calling_day(ctx)
    if last is None:
        return
    due = at_time(add_business_days(last, 1), ctx.profile.daily_deadline)
    yield from ctx.deadline(
        "REPORT-SMS-CANDIDATES",
        due=due,
        done=_report(ctx, "sms_candidates", ctx.month),
        case=None,
        entries=[],
        ja=f"{month_ja(ctx.month)}の未接触者リスト（SMS送信候補）を最終架電日の翌開庁日の日報と共に提出",
        en=f"the list of unreached cases of {ctx.month} with the next business day's daily report",
    )
