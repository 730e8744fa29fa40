"""Callbacks and phone lines: AFTER-HOURS-GUIDE, CALLBACK-QUEUE, CALLERID-LINES, CALLERID-LANDLINE."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from contract.calendar import month_days

from ..model import Entry, Finding
from ..present import on_ja, when_ja, word
from .registry import rule

if TYPE_CHECKING:
    from ..context import Context

# A landline with an area code: 0 then a non-zero digit, and not free dial (0120, 0800),
# IP (050) or mobile (070, 080, 090, 060). Separators are ignored.
_NOT_LANDLINE = re.compile(r"0(120|800|50|70|80|90|60)")


def is_area_code_landline(number: str) -> bool:
    digits = re.sub(r"[-()\s]", "", number)
    return bool(re.fullmatch(r"0[1-9]\d{8}", digits)) and not _NOT_LANDLINE.match(digits)


@rule("AFTER-HOURS-GUIDE")
def after_hours_guide(ctx: Context) -> Iterator[Finding]:
    for entry in ctx.state.of("callback.received"):
        handled = entry.data["handled"]
        if not ctx.in_month(entry.at) or ctx.in_calling_period(entry.at):
            continue
        if handled != "voice_guide":
            yield ctx.finding(
                "AFTER-HOURS-GUIDE",
                case=entry.data["case"],
                entries=[entry.index],
                ja=f"時間外の折り返し電話（{when_ja(entry.at)}）に音声ガイドで対応していない（{word('callback_handled', handled)}）",
                en=f"an after-hours callback at {entry.at:%m-%d %H:%M} was {handled}, not voice_guide",
            )


@rule("CALLBACK-QUEUE")
def callback_queue(ctx: Context) -> Iterator[Finding]:
    for entry in ctx.state.of("callback.received"):
        handled = entry.data["handled"]
        if not ctx.in_month(entry.at) or not ctx.in_calling_period(entry.at) or handled == "operator":
            continue
        yield ctx.finding(
            "CALLBACK-QUEUE",
            case=entry.data["case"],
            entries=[entry.index],
            ja=f"時間内の折り返し電話（{when_ja(entry.at)}）をオペレータが受けていない（{word('callback_handled', handled)}）",
            en=f"a callback in hours at {entry.at:%m-%d %H:%M} was {handled}, not taken by an operator",
        )


def _lines_at(events: list[Entry], moment: datetime) -> dict[str, Entry]:
    """Caller IDs registered and not retired at `moment` (events in ledger order)."""
    lines: dict[str, Entry] = {}
    for entry in events:
        if entry.at > moment:
            continue
        if entry.type == "callerid.registered":
            lines[entry.data["number"]] = entry
        else:
            lines.pop(entry.data["number"], None)
    return lines


@rule("CALLERID-LINES")
def callerid_lines(ctx: Context) -> Iterator[Finding]:
    need = ctx.profile.callerid_lines_min
    events = sorted(
        ctx.state.of("callerid.registered") + ctx.state.of("callerid.retired"), key=lambda e: e.index
    )
    last_change = max((e.at for e in events), default=None)
    final = _lines_at(events, last_change) if last_change is not None else {}
    short_days: set[str] = set()
    for call in ctx.state.calls:
        if not ctx.in_month(call.at):
            continue
        # Most calls come after the last change of lines: their state is the final one.
        lines = final if last_change is not None and call.at >= last_change else _lines_at(events, call.at)
        shown = call.dialed.data["caller_id"]
        if shown not in lines:
            yield ctx.finding(
                "CALLERID-LINES",
                case=call.case,
                entries=[call.dialed.index],
                ja=f"発信者番号 {shown} は登録された専用番号ではない",
                en=f"caller ID {shown} is not a registered dedicated line",
            )
        if len(lines) < need:
            day = call.at.date().isoformat()
            if day not in short_days:
                short_days.add(day)
                yield ctx.finding(
                    "CALLERID-LINES",
                    case=None,
                    entries=[call.dialed.index],
                    ja=f"{on_ja(day)}の専用発信番号が {len(lines)} 件（{need}電番以上）",
                    en=f"{len(lines)} dedicated lines on {day}; at least {need}",
                )


@rule("CALLERID-LANDLINE")
def callerid_landline(ctx: Context) -> Iterator[Finding]:
    p = ctx.profile
    for entry in ctx.state.of("callerid.registered"):
        number = entry.data["number"]
        bad = entry.data["kind"] != "landline" or not is_area_code_landline(number)
        if p.callerid_landline_required and bad and entry.at <= ctx.month_end:
            yield ctx.finding(
                "CALLERID-LANDLINE",
                case=None,
                entries=[entry.index],
                ja=f"発信者番号 {number} は市外局番から始まる固定電話番号ではない",
                en=f"caller ID {number} is not a landline with an area code",
            )
    if not p.callerid_max_months:
        return
    month_start = ctx.month_end - timedelta(days=len(month_days(ctx.month)))
    for entry in ctx.state.of("callerid.registered"):
        number = entry.data["number"]
        retired = next(
            (
                e.at
                for e in ctx.state.of("callerid.retired")
                if e.data["number"] == number and e.at > entry.at
            ),
            None,
        )
        end = min(retired or ctx.as_of, ctx.month_end)
        if entry.at >= ctx.month_end or end < month_start:
            continue  # not in use this month
        months = (end.year - entry.at.year) * 12 + end.month - entry.at.month - (end.day < entry.at.day)
        if months >= p.callerid_max_months:
            yield ctx.finding(
                "CALLERID-LANDLINE",
                case=None,
                entries=[entry.index],
                severity="judgement",
                ja=f"発信者番号 {number} を{months}か月以上使用（定期的な変更: {p.callerid_max_months}か月未満と判断）",
                en=f"caller ID {number} in use for {months} months or more; changing it periodically"
                f" is judged as within {p.callerid_max_months} months",
            )
