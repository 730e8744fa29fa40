"""SMS: SMS-DESIGNATED, SMS-FREQUENCY, SMS-LOOKUP, SMS-REASSIGNED, SMS-SENDER."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..model import Entry, Finding
from ..present import when_ja
from .registry import rule

if TYPE_CHECKING:
    from ..context import Context


def _by_case(ctx: Context) -> dict[str, list[Entry]]:
    index: dict[str, list[Entry]] = {}
    for entry in ctx.state.of("sms.designated"):
        for case in entry.data["cases"]:
            index.setdefault(case, []).append(entry)
    return index


def _designations(ctx: Context, case: str, before: datetime | None = None) -> list[Entry]:
    """The city's designations of `case` (made by `before`), from an index built once per check."""
    found = ctx.memo("sms-designations", lambda: _by_case(ctx)).get(case, [])
    return [e for e in found if before is None or e.at <= before]


def _matching(ctx: Context, sent: Entry) -> Entry | None:
    """The designation whose date and time (within the tolerance) fit this SMS."""
    tolerance = timedelta(minutes=ctx.profile.sms_send_tolerance_minutes)
    for designation in _designations(ctx, sent.data["case"], sent.at):
        send_at = designation.time("send_at")
        if send_at is not None and send_at.date() == sent.at.date() and abs(sent.at - send_at) <= tolerance:
            return designation
    return None


def _sent_in_month(ctx: Context) -> Iterator[Entry]:
    return (e for e in ctx.state.of("sms.sent") if ctx.in_month(e.at))


@rule("SMS-DESIGNATED")
def sms_designated(ctx: Context) -> Iterator[Finding]:
    for sent in _sent_in_month(ctx):
        if _matching(ctx, sent) is not None:
            continue
        if not _designations(ctx, sent.data["case"], sent.at):
            ja, en = "甲が指定していない対象者へのSMS送信", "an SMS to a case the city did not designate"
        else:
            ja = f"指定日時から外れたSMS送信（{when_ja(sent.at)}、許容 ±{ctx.profile.sms_send_tolerance_minutes}分）"
            en = f"an SMS at {sent.at:%m-%d %H:%M}, not on its designated date and time"
        yield ctx.finding("SMS-DESIGNATED", case=sent.data["case"], entries=[sent.index], ja=ja, en=en)


@rule("SMS-FREQUENCY")
def sms_frequency(ctx: Context) -> Iterator[Finding]:
    low, high = ctx.profile.sms_per_case_per_month
    if not high:
        return
    designated = {c for e in ctx.state.of("sms.designated") if ctx.in_month(e.at) for c in e.data["cases"]}
    for ref in sorted(designated):
        case = ctx.state.cases.get(ref)
        sent = [e for e in case.sms_sent if ctx.in_month(e.at)] if case else []
        blocked = bool(case and (case.sms_blocked or case.stopped_before(ctx.month_end)))
        if len(sent) > high:
            yield ctx.finding(
                "SMS-FREQUENCY",
                case=ref,
                entries=[e.index for e in sent],
                ja=f"当月のSMS送信が {len(sent)} 回（月{low}〜{high}回）",
                en=f"{len(sent)} SMS this month; {low}-{high} a month",
            )
        elif len(sent) < low and not blocked and ctx.month_over:
            yield ctx.finding(
                "SMS-FREQUENCY",
                case=ref,
                entries=[e.index for e in sent],
                ja=f"指定された対象者へのSMS送信が {len(sent)} 回（月{low}回以上）",
                en=f"{len(sent)} SMS to a designated case; at least {low} a month",
            )


def _lookup_before(ctx: Context, sent: Entry) -> Entry | None:
    case = ctx.state.cases.get(sent.data["case"])
    lookups = [
        e
        for e in (case.sms_lookups if case else [])
        if e.data["number"] == sent.data["number"] and e.at <= sent.at
    ]
    return lookups[-1] if lookups else None


@rule("SMS-LOOKUP")
def sms_lookup(ctx: Context) -> Iterator[Finding]:
    within = timedelta(days=ctx.profile.sms_lookup_within_days)
    for sent in _sent_in_month(ctx):
        lookup = _lookup_before(ctx, sent)
        if lookup is None or sent.at - lookup.at > within:
            yield ctx.finding(
                "SMS-LOOKUP",
                case=sent.data["case"],
                entries=[sent.index],
                ja=f"送信前{ctx.profile.sms_lookup_within_days}日以内のキャリア・番号再割当確認がない",
                en=f"no carrier and reassigned-number lookup in the {within.days} days before sending",
            )
        elif lookup.data["carrier"] == "unknown" and sent.data["carrier"] == "unknown":
            yield ctx.finding(
                "SMS-LOOKUP",
                case=sent.data["case"],
                entries=[lookup.index, sent.index],
                ja="送信先のキャリアが記録されていない",
                en="the carrier was not recorded",
            )


@rule("SMS-REASSIGNED")
def sms_reassigned(ctx: Context) -> Iterator[Finding]:
    for sent in _sent_in_month(ctx):
        lookup = _lookup_before(ctx, sent)
        if lookup is not None and lookup.data["reassigned"] == "possibly":
            yield ctx.finding(
                "SMS-REASSIGNED",
                case=sent.data["case"],
                entries=[lookup.index, sent.index],
                ja="再割当の可能性がある番号へSMSを送信（送信停止が必要）",
                en="an SMS to a number that may have been reassigned; it had to be blocked",
            )


@rule("SMS-SENDER")
def sms_sender(ctx: Context) -> Iterator[Finding]:
    for sent in _sent_in_month(ctx):
        earlier = _designations(ctx, sent.data["case"], sent.at)
        designation = _matching(ctx, sent) or (earlier[-1] if earlier else None)
        if designation is not None and sent.data["sender_id"] != designation.data["sender_id"]:
            yield ctx.finding(
                "SMS-SENDER",
                case=sent.data["case"],
                entries=[designation.index, sent.index],
                ja=f"送信元番号 {sent.data['sender_id']} は甲の指定（{designation.data['sender_id']}）と異なる",
                en=f"sender {sent.data['sender_id']} is not the one designated,"
                f" {designation.data['sender_id']}",
            )
