"""Attempts and completion: how often, when and why each number is called, and what ends a case."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

from contract.calendar import add_business_days, end_of_day, is_weekday, previous_month

from ..model import Entry, Finding
from ..present import on_ja, when_ja, word
from ..state import NON_CONTACT, Call, Case
from .registry import rule

if TYPE_CHECKING:
    from ..context import Context

ESCALATING_REQUESTS = ("installment", "refusal", "tax_dispute")


def _month_cases(ctx: Context) -> list[Case]:
    """Cases listed this month (a case listed in several months is judged in each, on that
    month's calls), or never listed and called this month. Found once per check."""

    def find() -> list[Case]:
        return [
            case
            for case in ctx.state.cases.values()
            if case.listing(ctx.month) is not None
            or (case.opened is None and any(ctx.in_month(c.at) for c in case.calls))
        ]

    return ctx.memo("month-cases", find)


def month_outcomes(ctx: Context) -> list[tuple[Entry, Call | None]]:
    """The month's outcomes (by their `at`), each with the call it names, if dialled. Found once."""

    def find() -> list[tuple[Entry, Call | None]]:
        calls = ctx.state.calls_by_id
        return [
            (o, calls.get(str(o.data["call"]))) for o in ctx.state.of("call.outcome") if ctx.in_month(o.at)
        ]

    return ctx.memo("month-outcomes", find)


def outcomes_of_talks(ctx: Context) -> list[Entry]:
    """Every outcome of a talk with a resident: our calls' (call.outcome) and residents'
    callbacks' (callback.outcome, T §10(4)キ / N §8(4)キ), in ledger order."""

    def find() -> list[Entry]:
        both = ctx.state.of("call.outcome") + ctx.state.of("callback.outcome")
        return sorted(both, key=lambda e: e.index)

    return ctx.memo("talk-outcomes", find)


def month_callback_outcomes(ctx: Context) -> list[tuple[Entry, Entry | None]]:
    """The month's callback outcomes (by their `at`), each with the callback.received it names, if any."""

    def find() -> list[tuple[Entry, Entry | None]]:
        received = ctx.state.callbacks_by_call
        return [
            (o, received.get(str(o.data["call"])))
            for o in ctx.state.of("callback.outcome")
            if ctx.in_month(o.at)
        ]

    return ctx.memo("month-callback-outcomes", find)


def _done_in(case: Case, month: str) -> bool:
    """The month's listing needs no more calls: completed, refused, absent or stopped in the
    month, or found unsuitable in its data check."""
    return (
        case.ending(month) is not None
        or case.stopped_in(month) is not None
        or case.unsuitable_in(month) is not None
    )


@rule("NUMBERS-MAX")
def numbers_max(ctx: Context) -> Iterator[Finding]:
    limit = ctx.profile.numbers_max
    for case in _month_cases(ctx):
        opening, numbers = case.listing(ctx.month), case.numbers_in(ctx.month)
        if opening is not None and len(numbers) > limit:
            yield ctx.finding(
                "NUMBERS-MAX",
                case=case.ref,
                entries=[opening.index],
                ja=f"電話番号が {len(numbers)} 件（1案件につき最大{limit}番号）",
                en=f"{len(numbers)} numbers for one case; at most {limit}",
            )


@rule("NUMBERS-ALL")
def numbers_all(ctx: Context) -> Iterator[Finding]:
    if not ctx.month_over:
        return
    for case in _month_cases(ctx):
        opening = case.listing(ctx.month)
        if opening is None or _done_in(case, ctx.month):
            continue
        for number in case.numbers_in(ctx.month):
            if not case.calls_to(number["ref"], ctx.month):
                yield ctx.finding(
                    "NUMBERS-ALL",
                    case=case.ref,
                    entries=[opening.index],
                    ja=f"番号 {number['ref']} に一度も架電していない",
                    en=f"number {number['ref']} was never dialled",
                )


def _same_result_exempt(ctx: Context, case: Case, number: str, calls: list[Call]) -> bool:
    """T §10(4)ク: twice this month the same non-contact result as the last call of the same
    number (同一番号, the same reference) in the previous month."""
    if not ctx.profile.same_result_exemption or len(calls) != 2:
        return False
    earlier = case.calls_to(number, previous_month(ctx.month))
    if not earlier:
        return False
    previous = earlier[-1].dialed.data["result"]
    return previous in NON_CONTACT and all(c.dialed.data["result"] == previous for c in calls)


@rule("ATTEMPTS-MIN")
def attempts_min(ctx: Context) -> Iterator[Finding]:
    need = ctx.profile.attempts_per_number
    if not ctx.month_over:
        return
    for case in _month_cases(ctx):
        opening = case.listing(ctx.month)
        if opening is None or _done_in(case, ctx.month):
            continue
        for number in case.numbers_in(ctx.month):
            calls = case.calls_to(number["ref"], ctx.month)
            if len(calls) >= need or case.number_ended(number["ref"], ctx.month) is not None:
                continue
            if _same_result_exempt(ctx, case, number["ref"], calls):
                continue
            yield ctx.finding(
                "ATTEMPTS-MIN",
                case=case.ref,
                entries=[opening.index, *(c.dialed.index for c in calls)],
                ja=f"番号 {number['ref']} への架電は {len(calls)} 回（最低{need}回）",
                en=f"number {number['ref']} was dialled {len(calls)} times; at least {need}",
            )


def _asked_for(ctx: Context, case: Case, call: Call) -> bool:
    """Whether `call` was made at a time the resident asked for (callback_at)."""
    window = timedelta(minutes=ctx.profile.callback_window_minutes)
    for outcome in case.outcomes:
        asked = outcome.time("callback_at")
        if asked is not None and outcome.at < call.at and abs(call.at - asked) <= window:
            return True
    return False


@rule("ATTEMPTS-VARIED")
def attempts_varied(ctx: Context) -> Iterator[Finding]:
    for case in _month_cases(ctx):
        for number in {c.number for c in case.calls}:
            calls = case.calls_to(number, ctx.month)
            for before, after in zip(calls, calls[1:], strict=False):
                if _asked_for(ctx, case, after):
                    continue
                same_day = before.at.date() == after.at.date()
                same_band = ctx.band(before.at) == ctx.band(after.at)
                if not (same_day or same_band):
                    continue
                what = "同じ日" if same_day else "同じ時間帯"
                yield ctx.finding(
                    "ATTEMPTS-VARIED",
                    case=case.ref,
                    entries=[before.dialed.index, after.dialed.index],
                    ja=f"番号 {number} への連続した架電が{what}（{when_ja(before.at)}、{when_ja(after.at)}）",
                    en=f"consecutive calls to number {number} on the same {'day' if same_day else 'time band'}"
                    f" ({before.at:%m-%d %H:%M}, {after.at:%m-%d %H:%M})",
                )


@rule("ATTEMPTS-NONWEEKDAY")
def attempts_nonweekday(ctx: Context) -> Iterator[Finding]:
    if not ctx.profile.nonweekday_required:
        return
    need = ctx.profile.attempts_per_number
    for case in _month_cases(ctx):
        for number in {c.number for c in case.calls}:
            calls = case.calls_to(number, ctx.month)
            if len(calls) < need:
                continue
            third = calls[need - 1]
            if case.ended_before(third.at) or case.number_ended(number, ctx.month) is not None:
                continue
            if any(not is_weekday(c.at.date()) for c in calls[:need]):
                continue
            yield ctx.finding(
                "ATTEMPTS-NONWEEKDAY",
                case=case.ref,
                entries=[c.dialed.index for c in calls[:need]],
                ja=f"番号 {number} への{need}回の架電がすべて平日（1回以上は平日以外）",
                en=f"all {need} calls to number {number} were on weekdays; one must not be",
            )


@rule("COMPLETION-BASIS")
def completion_basis(ctx: Context) -> Iterator[Finding]:
    """A call's outcome, and a callback's (キ: a callback completes a case only as ア or イ)."""
    for outcome in outcomes_of_talks(ctx):
        data = outcome.data
        if not ctx.in_month(outcome.at) or data["disposition"] != "completed":
            continue
        person = data["party"] == "self" or (data["party"] == "household" and data["proxy_consent"])
        if data["script"] == "completed" and person:
            continue
        on_callback = outcome.type == "callback.outcome"
        yield ctx.finding(
            "COMPLETION-BASIS",
            case=data["case"],
            entries=[outcome.index],
            ja=f"{'折り返し電話で' if on_callback else ''}業務完了としたが、トークスクリプトは「{word('script', data['script'])}」、"
            f"応答者は「{word('party', data['party'])}」（伝言の了承：{word('bool', data['proxy_consent'])}）",
            en=f"completed{' on a callback' if on_callback else ''} with script={data['script']},"
            f" party={data['party']}, proxy_consent={data['proxy_consent']}",
        )


@rule("STOP-HONOURED")
def stop_honoured(ctx: Context) -> Iterator[Finding]:
    for case in ctx.state.cases.values():
        if not case.stops:
            continue
        for entry in [c.dialed for c in case.calls] + case.sms_sent:
            if not ctx.in_month(entry.at):
                continue
            # A stop holds until the city lists the case again (a later case.opened).
            stop = next(
                (s for s in case.stops if s.at < entry.at and not case.relisted_between(s.at, entry.at)),
                None,
            )
            if stop is not None:
                kind = "架電" if entry.type == "call.dialed" else "SMS送信"
                yield ctx.finding(
                    "STOP-HONOURED",
                    case=case.ref,
                    entries=[stop.index, entry.index],
                    ja=f"架電停止の指示（{when_ja(stop.at)}）の後に{kind}（{when_ja(entry.at)}）",
                    en=f"{entry.type} at {entry.at:%m-%d %H:%M} after the stop order of"
                    f" {stop.at:%m-%d %H:%M}",
                )


@rule("RING-35")
def ring_35(ctx: Context) -> Iterator[Finding]:
    need = ctx.profile.ring_seconds
    for call in ctx.state.calls:
        data = call.dialed.data
        if ctx.in_month(call.at) and data["result"] == "no_answer" and data["ring_s"] < need:
            yield ctx.finding(
                "RING-35",
                case=call.case,
                entries=[call.dialed.index],
                ja=f"応答なしの呼び出しが {data['ring_s']} 秒（{need}秒以上）",
                en=f"no answer after {data['ring_s']} s of ringing; at least {need} s",
            )


@rule("VOICEMAIL-MESSAGE")
def voicemail_message(ctx: Context) -> Iterator[Finding]:
    for call in ctx.state.calls:
        data = call.dialed.data
        if ctx.in_month(call.at) and data["result"] == "voicemail" and data.get("message_left") is not True:
            yield ctx.finding(
                "VOICEMAIL-MESSAGE",
                case=call.case,
                entries=[call.dialed.index],
                ja="留守番電話に所定のメッセージを残していない",
                en="no scripted message was left on the voicemail",
            )


@rule("CALLBACK-APPOINTMENT")
def callback_appointment(ctx: Context) -> Iterator[Finding]:
    window = timedelta(minutes=ctx.profile.callback_window_minutes)
    for outcome in ctx.state.of("call.outcome"):
        asked = outcome.time("callback_at")
        if asked is None or not ctx.in_month(outcome.at):
            continue
        case = ctx.state.cases[outcome.data["case"]]
        call = ctx.state.calls_by_id.get(str(outcome.data["call"]))
        if (
            case.ended_before(asked)
            or case.stopped_before(asked) is not None
            or (call is not None and case.number_ended_before(call.number, asked))
        ):
            continue  # completed, stopped, or the number ended before the time: the appointment lapses
        if ctx.in_calling_period(asked):
            done = next((c for c in case.calls if c.at > outcome.at and abs(c.at - asked) <= window), None)
            if done is not None:
                continue
            ja = f"指定時間（{when_ja(asked)}）の前後{ctx.profile.callback_window_minutes}分以内に再架電していない"
            en = f"no call within {ctx.profile.callback_window_minutes} min of the time asked for, {asked:%m-%d %H:%M}"
            if ctx.as_of < asked + window:
                yield ctx.finding(
                    "CALLBACK-APPOINTMENT", case=case.ref, entries=[outcome.index], ja=ja, en=en, pending=True
                )
            else:
                yield ctx.finding(
                    "CALLBACK-APPOINTMENT", case=case.ref, entries=[outcome.index], ja=ja, en=en
                )
        else:
            yield from _escalated_by_next_business_day(
                ctx,
                "CALLBACK-APPOINTMENT",
                case,
                outcome,
                reason="callback_outside_period",
                ja=f"架電期間外の指定時間（{when_ja(asked)}）を甲にエスカレーション",
                en=f"escalate the callback time {asked:%m-%d %H:%M}, outside the calling period, to the city",
            )


@rule("RECORD-EVERY-CALL")
def record_every_call(ctx: Context) -> Iterator[Finding]:
    within = timedelta(minutes=ctx.profile.outcome_within_minutes)
    for call in ctx.state.calls:
        if not ctx.in_month(call.at) or call.outcome is not None:
            continue
        ended = call.dialed.time("ended_at") or call.at
        ja, en = (
            f"架電 {call.dialed.data['call']} の結果記録がない",
            f"call {call.dialed.data['call']} has no outcome",
        )
        yield ctx.finding(
            "RECORD-EVERY-CALL",
            case=call.case,
            entries=[call.dialed.index],
            ja=ja,
            en=en,
            pending=ctx.as_of < ended + within,
        )


@rule("OUTCOME-HAS-CALL")
def outcome_has_call(ctx: Context) -> Iterator[Finding]:
    """An outcome for a call that was never dialled is a false record. Its call.dialed may
    arrive late (the dialing core delivers after the client): pending for the profile's minutes."""
    within = timedelta(minutes=ctx.profile.outcome_within_minutes)
    for outcome, call in month_outcomes(ctx):
        data = outcome.data
        if call is None:
            yield ctx.finding(
                "OUTCOME-HAS-CALL",
                case=data["case"],
                entries=[outcome.index],
                ja=f"架電 {data['call']} の記録がない架電結果",
                en=f"an outcome for call {data['call']}, which was never dialled",
                pending=ctx.as_of < outcome.at + within,
            )
        elif call.case != data["case"]:
            yield ctx.finding(
                "OUTCOME-HAS-CALL",
                case=data["case"],
                entries=[call.dialed.index, outcome.index],
                ja=f"架電 {data['call']} は別の案件 {call.case} への架電",
                en=f"call {data['call']} was to another case, {call.case}",
            )
        elif call.at > outcome.at:
            yield ctx.finding(
                "OUTCOME-HAS-CALL",
                case=data["case"],
                entries=[call.dialed.index, outcome.index],
                ja=f"架電結果（{when_ja(outcome.at)}）が架電開始（{when_ja(call.at)}）より前",
                en=f"the outcome ({outcome.at:%m-%d %H:%M}) is before the call began ({call.at:%m-%d %H:%M})",
            )

    yield from _callback_outcomes_have_callbacks(ctx, within)


def _callback_outcomes_have_callbacks(ctx: Context, within: timedelta) -> Iterator[Finding]:
    """A callback's outcome names the `call` of a `callback.received` of the same case, put
    through to an operator, at or before it; not in the ledger yet: pending, as a call's is."""
    for outcome, received in month_callback_outcomes(ctx):
        data = outcome.data
        if received is None:
            yield ctx.finding(
                "OUTCOME-HAS-CALL",
                case=data["case"],
                entries=[outcome.index],
                ja=f"着信 {data['call']} の記録がない折り返し電話の結果",
                en=f"a callback outcome for call {data['call']}, which was never received",
                pending=ctx.as_of < outcome.at + within,
            )
            continue
        entries = [received.index, outcome.index]
        if received.data["case"] != data["case"]:
            other = received.data["case"]
            yield ctx.finding(
                "OUTCOME-HAS-CALL",
                case=data["case"],
                entries=entries,
                ja=f"着信 {data['call']} は"
                + (
                    f"別の案件 {other} からの折り返し電話"
                    if other
                    else "発信者を特定できなかった折り返し電話"
                ),
                en=f"callback {data['call']} was "
                + (f"from another case, {other}" if other else "not identified"),
            )
        elif received.data["handled"] != "operator":
            yield ctx.finding(
                "OUTCOME-HAS-CALL",
                case=data["case"],
                entries=entries,
                ja=f"着信 {data['call']} はオペレータにつながっていない"
                f"（{word('callback_handled', received.data['handled'])}）",
                en=f"callback {data['call']} was not put through to an operator ({received.data['handled']})",
            )
        elif received.at > outcome.at:
            yield ctx.finding(
                "OUTCOME-HAS-CALL",
                case=data["case"],
                entries=entries,
                ja=f"折り返し電話の結果（{when_ja(outcome.at)}）が着信（{when_ja(received.at)}）より前",
                en=f"the callback outcome ({outcome.at:%m-%d %H:%M}) is before the callback came in"
                f" ({received.at:%m-%d %H:%M})",
            )


@rule("MOBILE-ASKED")
def mobile_asked(ctx: Context) -> Iterator[Finding]:
    for case in _month_cases(ctx):
        numbers = case.numbers_in(ctx.month) if case.opened is not None else []
        if not numbers or any(n["kind"] != "landline" for n in numbers):
            continue
        reached = [
            o for o in case.outcomes if o.data["party"] in ("self", "household") and ctx.in_month(o.at)
        ]
        if reached and not any(o.data["mobile_asked"] for o in reached):
            yield ctx.finding(
                "MOBILE-ASKED",
                case=case.ref,
                entries=[reached[0].index],
                ja="固定電話のみの対象者に接触したが携帯電話番号を聞き取っていない",
                en="reached a landline-only case without asking for a mobile number",
            )


@rule("ESCALATION-REQUIRED")
def escalation_required(ctx: Context) -> Iterator[Finding]:
    for outcome in outcomes_of_talks(ctx):
        asked = [r for r in outcome.data["requests"] if r in ESCALATING_REQUESTS]
        if not asked or not ctx.in_month(outcome.at):
            continue
        yield from _escalated_by_next_business_day(
            ctx,
            "ESCALATION-REQUIRED",
            ctx.state.cases[outcome.data["case"]],
            outcome,
            reason=None,
            ja=f"{'・'.join(word('request', a) for a in asked)}の申出を翌開庁日中に甲へエスカレーション",
            en=f"escalate {', '.join(asked)} to the city by the end of the next business day",
        )


def _escalated_by_next_business_day(
    ctx: Context, rule_id: str, case: Case, outcome: Entry, *, reason: str | None, ja: str, en: str
) -> Iterator[Finding]:
    """An escalation.raised for the case (with `reason`, if given) after the outcome, by the
    end of the profile's business days after it (§9(3)/§8(3)キ, §10(5)エ/§8(5)エ)."""
    due = end_of_day(add_business_days(outcome.at.date(), ctx.profile.escalation_business_days))
    escalation = next(
        (
            e
            for e in case.escalations
            if e.at >= outcome.at and (reason is None or e.data["reason"] == reason)
        ),
        None,
    )
    yield from ctx.deadline(
        rule_id,
        due=due,
        done=escalation,
        case=case.ref,
        entries=[outcome.index],
        ja=f"{ja}（期限 {on_ja(due - timedelta(seconds=1))}）",
        en=en,
    )


@rule("UNSUITABLE-NOT-CALLED")
def unsuitable_not_called(ctx: Context) -> Iterator[Finding]:
    month_calls = [c for c in ctx.state.calls if ctx.in_month(c.at)]
    first = min((c.at for c in month_calls), default=None)
    for case in ctx.state.cases.values():
        mark = case.unsuitable_in(ctx.month) if case.listing(ctx.month) is not None else None
        if mark is None:
            mark = next((u for u in case.unsuitables if ctx.in_month(u.at)), None)
        if mark is None:
            continue
        if first is not None and mark.at > first:
            yield ctx.finding(
                "UNSUITABLE-NOT-CALLED",
                case=case.ref,
                entries=[mark.index],
                ja="架電不適の報告が当月の初回架電より後",
                en="the unsuitable case was reported after the month's first call",
            )
        for call in case.calls:
            if call.at > mark.at and not case.relisted_between(mark.at, call.at):
                yield ctx.finding(
                    "UNSUITABLE-NOT-CALLED",
                    case=case.ref,
                    entries=[mark.index, call.dialed.index],
                    ja="架電不適とされた案件に架電",
                    en="a case found unsuitable was called",
                )
