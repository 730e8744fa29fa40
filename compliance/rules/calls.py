"""Calling time and calendar: CALL-HOURS, CALL-DAYS, CAMPAIGN-SHAPE, WEEKEND-DAYS, FIRST-CALL-WEEKDAY."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from contract.calendar import is_weekday

from ..model import Finding
from ..present import month_ja, on_ja, when_ja
from .registry import rule

if TYPE_CHECKING:
    from ..context import Context


def _fmt(moment: object) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if hasattr(moment, "strftime") else str(moment)


@rule("CALL-HOURS")
def call_hours(ctx: Context) -> Iterator[Finding]:
    for call in ctx.state.calls:
        at = call.at
        if ctx.in_month(at) and not ctx.in_hours(at):
            start, end = ctx.hours(at.date())
            kind = "平日" if is_weekday(at.date()) else "土日祝日"
            yield ctx.finding(
                "CALL-HOURS",
                case=call.case,
                entries=[call.dialed.index],
                ja=f"{when_ja(at)}の架電は{kind}の架電可能時間（{start:%H:%M}〜{end:%H:%M}）外",
                en=f"call at {_fmt(at)} is outside the hours of a {'weekday' if kind == '平日' else 'weekend/holiday'}"
                f" ({start:%H:%M}-{end:%H:%M})",
            )


@rule("CALL-DAYS")
def call_days(ctx: Context) -> Iterator[Finding]:
    scheduled, excluded = ctx.state.campaign_days(ctx.month)
    for call in ctx.state.calls:
        day = call.at.date()
        if not ctx.in_month(day):
            continue
        if day in excluded:
            ja, en = f"{on_ja(day)}は甲が架電しないよう指示した日", f"{day} is a day the city excluded"
        elif day not in scheduled:
            ja, en = (
                f"{on_ja(day)}は当月の架電日として記録されていない",
                f"{day} is not a scheduled calling day",
            )
        else:
            continue
        yield ctx.finding("CALL-DAYS", case=call.case, entries=[call.dialed.index], ja=ja, en=en)


@rule("CAMPAIGN-SHAPE", severity="judgement")
def campaign_shape(ctx: Context) -> Iterator[Finding]:
    p = ctx.profile
    if ctx.month not in p.calling_months:
        return
    entry = ctx.state.campaigns.get(ctx.month)
    if entry is None:
        if ctx.month_over:
            yield ctx.finding(
                "CAMPAIGN-SHAPE",
                case=None,
                entries=[],
                severity="violation",
                ja=f"{month_ja(ctx.month)}の架電日程が記録されていない",
                en=f"no calling schedule was recorded for {ctx.month}",
            )
        return
    days = sorted(ctx.state.campaign_days(ctx.month)[0])
    if not days:
        if not entry.data.get("reason"):
            yield ctx.finding(
                "CAMPAIGN-SHAPE",
                case=None,
                entries=[entry.index],
                severity="violation",
                ja=f"{month_ja(ctx.month)}は架電なしだが理由の記録がない",
                en=f"{ctx.month} has no calling days and no recorded reason",
            )
        return
    low, high = p.campaign_days - p.campaign_days_tolerance, p.campaign_days + p.campaign_days_tolerance
    if not low <= len(days) <= high:
        yield ctx.finding(
            "CAMPAIGN-SHAPE",
            case=None,
            entries=[entry.index],
            ja=f"{month_ja(ctx.month)}の架電日数 {len(days)} 日は約{p.campaign_days}日間（{low}〜{high}日と判断）外",
            en=f"{len(days)} calling days in {ctx.month}, not about {p.campaign_days} ({low}-{high})",
        )
    earliest = p.first_day - p.first_day_tolerance
    if days[0].day < earliest:
        yield ctx.finding(
            "CAMPAIGN-SHAPE",
            case=None,
            entries=[entry.index],
            ja=f"{month_ja(ctx.month)}の初日（{on_ja(days[0])}）は{earliest}日より前（契約: {p.first_day}日頃から）",
            en=f"the first calling day {days[0]} is before the {earliest}th",
        )
    if not all(ctx.in_month(day) for day in days):
        yield ctx.finding(
            "CAMPAIGN-SHAPE",
            case=None,
            entries=[entry.index],
            severity="violation",
            ja=f"{month_ja(ctx.month)}の日程に他の月の日が含まれる",
            en=f"the schedule of {ctx.month} lists days of another month",
        )


@rule("WEEKEND-DAYS")
def weekend_days(ctx: Context) -> Iterator[Finding]:
    need = ctx.profile.weekend_days_min
    if ctx.month not in ctx.profile.calling_months or not need:
        return
    days = {c.at.date() for c in ctx.state.calls if ctx.in_month(c.at) and not is_weekday(c.at.date())}
    if len(days) >= need:
        return
    entries = [c.dialed.index for c in ctx.state.calls if c.at.date() in days]
    ja = f"{month_ja(ctx.month)}に架電した土日祝日は {len(days)} 日（{need}日以上が必要）"
    en = f"calls were made on {len(days)} weekend/holiday days in {ctx.month}; at least {need} are required"
    yield ctx.finding("WEEKEND-DAYS", case=None, entries=entries, ja=ja, en=en, pending=not ctx.month_over)


@rule("FIRST-CALL-WEEKDAY")
def first_call_weekday(ctx: Context) -> Iterator[Finding]:
    p = ctx.profile
    if not p.first_call_weekday_only:
        return
    start, end = p.first_call_hours or p.weekday_hours
    for case in ctx.state.cases.values():
        if not case.calls:
            continue
        first = min(case.calls, key=lambda c: (c.at, c.dialed.index))
        at = first.at
        clock = at.timetz().replace(tzinfo=None)
        if ctx.in_month(at) and not (is_weekday(at.date()) and start <= clock < end):
            yield ctx.finding(
                "FIRST-CALL-WEEKDAY",
                case=case.ref,
                entries=[first.dialed.index],
                ja=f"初回の架電（{when_ja(at)}）は平日{start:%H:%M}〜{end:%H:%M}ではない",
                en=f"the first call {_fmt(at)} is not on a weekday {start:%H:%M}-{end:%H:%M}",
            )
