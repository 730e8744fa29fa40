"""Every rule of rules.md: a history that breaks it, and a near miss that does not.

Each scenario builds a Story and says under which profile and month to judge it.
`test_every_rule_has_a_scenario` keeps this table complete.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from story import Story, t

from compliance import RULES, load_profile

Scenario = Callable[[bool], tuple[Story, dict[str, Any]]]
SCENARIOS: dict[str, Scenario] = {}
TAX = {"profile": "nagaoka-tax-2023", "month": "2023-10", "as_of": "2024-06-01 00:00"}


def scenario(rule: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[rule] = fn
        return fn

    return register


def nhi(days: list[str] | None = None) -> Story:
    s = Story().team()
    s.add("access.login", "2026-09-01 07:50", actor="mgr01", person="mgr01", terminal="m1", success=True)
    s.lines()
    s.campaign(
        "2026-09",
        days
        or ["2026-09-22", "2026-09-24", "2026-09-25", "2026-09-26", "2026-09-28", "2026-09-29", "2026-09-30"],
    )
    return s


def tax(days: list[str] | None = None) -> Story:
    s = Story().team("2023-10-01 08:00").lines(at="2023-10-01 08:00")
    s.campaign(
        "2023-10",
        days or [f"2023-10-{d}" for d in (16, 17, 18, 19, 20, 21, 23, 24, 25, 26)],
        at="2023-10-01 08:00",
    )
    return s


# -- calling time and calendar --------------------------------------------------------


@scenario("CALL-HOURS")
def _call_hours(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1").case("C2")
    # 2026-09-22 is a citizens' holiday (国民の休日): 09:00-17:00.
    s.dial("C1", "2026-09-22 17:00" if broken else "2026-09-22 16:59")
    s.dial("C2", "2026-09-24 20:00" if broken else "2026-09-24 19:59")
    return s, {}


@scenario("CALL-DAYS")
def _call_days(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = Story().team().lines().campaign("2026-09", ["2026-09-24", "2026-09-25"], excluded=["2026-09-28"])
    s.case("C1")
    s.dial("C1", "2026-09-28 10:00" if broken else "2026-09-25 10:00")
    return s, {}


@scenario("CAMPAIGN-SHAPE")
def _campaign_shape(broken: bool) -> tuple[Story, dict[str, Any]]:
    days = (
        ["2026-09-01", "2026-09-02", "2026-09-03"]
        if broken
        else [
            "2026-09-18",
            "2026-09-22",
            "2026-09-24",
            "2026-09-25",
            "2026-09-26",
            "2026-09-29",
            "2026-09-30",
        ]
    )
    return nhi(days), {}


@scenario("WEEKEND-DAYS")
def _weekend_days(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1").case("C2")
    s.dial("C1", "2026-09-26 10:00")  # a Saturday
    s.dial("C2", "2026-09-24 10:00" if broken else "2026-09-22 10:00")  # a Thursday, or a holiday
    return s, {}


@scenario("FIRST-CALL-WEEKDAY")
def _first_call_weekday(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = tax().case("C1", month="2023-10", at="2023-10-01 09:00")
    s.dial("C1", "2023-10-16 17:00" if broken else "2023-10-16 16:59")  # weekday, 09:00-17:00 only
    s.dial("C1", "2023-10-21 10:00")  # a later Saturday call is fine
    return s, TAX


# -- attempts and completion ------------------------------------------------------------


@scenario("NUMBERS-MAX")
def _numbers_max(broken: bool) -> tuple[Story, dict[str, Any]]:
    numbers = [("1", "mobile"), ("2", "landline")] + ([("3", "landline")] if broken else [])
    return nhi().case("C1", numbers), {}


def three_calls(s: Story, case: str, number: str = "1") -> None:
    for at in ("2026-09-22 10:00", "2026-09-24 13:00", "2026-09-25 18:00"):
        s.dial(case, at, number=number)


@scenario("NUMBERS-ALL")
def _numbers_all(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1", [("1", "mobile"), ("2", "landline")])
    three_calls(s, "C1", "1")
    if not broken:
        call = s.dial("C1", "2026-09-26 10:00", number="1", result="answered", outcome=False)
        s.outcome("C1", call, "2026-09-26 10:05", party="self", script="completed", disposition="completed")
    return s, {}


@scenario("ATTEMPTS-MIN")
def _attempts_min(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    three_calls(s, "C1")
    if broken:
        s.entries = [e for e in s.entries if not (e.type.startswith("call.") and e.data["call"] == "K3")]
    return s, {}


@scenario("ATTEMPTS-VARIED")
def _attempts_varied(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    s.dial("C1", "2026-09-24 10:00")
    s.dial("C1", "2026-09-25 11:00" if broken else "2026-09-25 13:00")  # same band 09-12
    return s, {}


@scenario("ATTEMPTS-NONWEEKDAY")
def _attempts_nonweekday(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    first = "2026-09-28 10:00" if broken else "2026-09-22 10:00"  # 9/22 is a holiday
    for at in (first, "2026-09-24 13:00", "2026-09-25 18:00"):
        s.dial("C1", at)
    return s, {}


@scenario("COMPLETION-BASIS")
def _completion_basis(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    call = s.dial("C1", "2026-09-24 10:00", result="answered", outcome=False)
    s.outcome(
        "C1",
        call,
        "2026-09-24 10:05",
        party="household",
        consent=not broken,
        script="completed",
        disposition="completed",
    )
    return s, {}


@scenario("STOP-HONOURED")
def _stop_honoured(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    s.dial("C1", "2026-09-24 10:00")
    s.add("case.stop", "2026-09-24 12:00", actor="city01", case="C1", by="city01", reason="paid")
    s.dial("C1", "2026-09-25 13:00" if broken else "2026-09-24 11:30")
    return s, {}


@scenario("RING-35")
def _ring_35(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    s.dial("C1", "2026-09-24 10:00", ring_s=34 if broken else 35)
    return s, {}


@scenario("VOICEMAIL-MESSAGE")
def _voicemail_message(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    s.dial("C1", "2026-09-24 10:00", result="voicemail", message_left=not broken)
    return s, {}


@scenario("CALLBACK-APPOINTMENT")
def _callback_appointment(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    call = s.dial("C1", "2026-09-24 10:00", result="answered", outcome=False)
    s.outcome(
        "C1",
        call,
        "2026-09-24 10:03",
        party="household",
        disposition="absent_now",
        callback_at="2026-09-25 14:00",
    )
    s.dial("C1", "2026-09-25 14:16" if broken else "2026-09-25 14:14", result="answered")
    return s, {}


@scenario("RECORD-EVERY-CALL")
def _record_every_call(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    s.dial("C1", "2026-09-24 10:00", outcome=not broken)
    return s, {}


@scenario("OUTCOME-HAS-CALL")
def _outcome_has_call(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    if broken:  # an outcome for a call that was never dialled
        s.outcome("C1", "Kx1", "2026-09-24 10:05")
    else:  # the client delivered first: the call.dialed comes later in the ledger, its `at` before
        s.outcome("C1", "K1", "2026-09-24 10:05")
        s.dial("C1", "2026-09-24 10:00", outcome=False)
    return s, {}


@scenario("MOBILE-ASKED")
def _mobile_asked(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1", [("1", "landline")])
    call = s.dial("C1", "2026-09-24 10:00", result="answered", outcome=False)
    s.outcome(
        "C1",
        call,
        "2026-09-24 10:05",
        party="self",
        script="completed",
        disposition="completed",
        mobile_asked=not broken,
    )
    return s, {}


@scenario("ESCALATION-REQUIRED")
def _escalation_required(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    call = s.dial("C1", "2026-09-18 10:00", result="answered", outcome=False)  # a Friday
    s.outcome(
        "C1",
        call,
        "2026-09-18 10:05",
        party="self",
        script="completed",
        disposition="completed",
        requests=["installment"],
    )
    # The next business day after Fri 9/18 is Thu 9/24: 9/19-20 weekend, 9/21-23 holidays.
    s.add(
        "escalation.raised",
        "2026-09-25 09:00" if broken else "2026-09-24 17:00",
        actor="op07",
        case="C1",
        reason="installment",
        to="city01",
    )
    return s, {}


@scenario("UNSUITABLE-NOT-CALLED")
def _unsuitable_not_called(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = (
        tax()
        .case("C1", month="2023-10", at="2023-10-01 09:00")
        .case("C2", month="2023-10", at="2023-10-01 09:00")
    )
    s.add("case.unsuitable", "2023-10-13 10:00", actor="mgr01", case="C2", reason="deceased")
    s.dial("C1", "2023-10-16 10:00")
    if broken:
        s.dial("C2", "2023-10-17 10:00")
    return s, TAX


# -- callbacks and lines --------------------------------------------------------------


@scenario("AFTER-HOURS-GUIDE")
def _after_hours_guide(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi()
    s.add(
        "callback.received",
        "2026-09-24 20:30",
        case=None,
        queued_s=0,
        handled="dropped" if broken else "voice_guide",
    )
    return s, {}


@scenario("CALLBACK-QUEUE")
def _callback_queue(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi()
    s.add(
        "callback.received",
        "2026-09-24 15:00",
        case=None,
        queued_s=40,
        handled="dropped" if broken else "operator",
    )
    return s, {}


@scenario("CALLERID-LINES")
def _callerid_lines(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = Story().team()
    s.lines(*(["0258-00-0001"] if broken else ["0258-00-0001", "0258-00-0002"]))
    s.campaign("2026-09", ["2026-09-24"]).case("C1")
    s.dial("C1", "2026-09-24 10:00", caller_id="0258-00-0001")
    return s, {}


@scenario("CALLERID-LANDLINE")
def _callerid_landline(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = Story().team()
    s.add("callerid.registered", "2026-09-01 08:00", actor="mgr01", number="0258-00-0001", kind="landline")
    s.add(
        "callerid.registered",
        "2026-09-01 08:00",
        actor="mgr01",
        number="0120-000-000" if broken else "0258-00-0002",
        kind="tollfree" if broken else "landline",
    )
    return s, {}


# -- SMS -------------------------------------------------------------------------------


def sms_story(
    *,
    designated: bool = True,
    send_at: str = "2026-09-24 10:00",
    sent: str = "2026-09-24 10:30",
    lookup: str | None = "2026-09-20 10:00",
    reassigned: str = "no",
    sender: str = "0258-99-0000",
    sends: int = 1,
    month: str = "2026-09",
) -> Story:
    s = nhi().case("C1")
    if designated:
        s.add(
            "sms.designated",
            "2026-09-10 09:00",
            actor="city01",
            batch="B1",
            cases=["C1"],
            send_at=t(send_at).isoformat(),
            sender_id="0258-99-0000",
        )
    if lookup:
        s.add("sms.lookup", lookup, case="C1", number="1", carrier="docomo", reassigned=reassigned)
    for i in range(sends):
        s.add(
            "sms.sent",
            sent,
            case="C1",
            number="1",
            message=f"M{i}",
            sender_id=sender,
            chars=70,
            segments=1,
            carrier="docomo",
        )
    return s


@scenario("SMS-DESIGNATED")
def _sms_designated(broken: bool) -> tuple[Story, dict[str, Any]]:
    return sms_story(sent="2026-09-24 11:01" if broken else "2026-09-24 10:59"), {}


@scenario("SMS-FREQUENCY")
def _sms_frequency(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = Story().team("2023-10-01 08:00")
    s.case("C1", month="2023-10", at="2023-10-01 09:00")
    s.add(
        "sms.designated",
        "2023-10-02 09:00",
        actor="city01",
        batch="B1",
        cases=["C1"],
        send_at="2023-10-20T10:00:00+09:00",
        sender_id="0258-99-0000",
    )
    s.add("sms.lookup", "2023-10-19 10:00", case="C1", number="1", carrier="au", reassigned="no")
    for i in range(3 if broken else 2):
        s.add(
            "sms.sent",
            "2023-10-20 10:00",
            case="C1",
            number="1",
            message=f"M{i}",
            sender_id="0258-99-0000",
            chars=70,
            segments=1,
            carrier="au",
        )
    return s, TAX


@scenario("SMS-LOOKUP")
def _sms_lookup(broken: bool) -> tuple[Story, dict[str, Any]]:
    return sms_story(lookup="2026-09-17 10:29" if broken else "2026-09-17 10:31"), {}


@scenario("SMS-REASSIGNED")
def _sms_reassigned(broken: bool) -> tuple[Story, dict[str, Any]]:
    return sms_story(reassigned="possibly" if broken else "unknown"), {}


@scenario("SMS-SENDER")
def _sms_sender(broken: bool) -> tuple[Story, dict[str, Any]]:
    return sms_story(sender="0258-99-9999" if broken else "0258-99-0000"), {}


# -- reports ---------------------------------------------------------------------------


def report(s: Story, kind: str, covers: str, at: str) -> None:
    s.add("report.submitted", at, actor="mgr01", kind=kind, covers=covers, sha256="0" * 64, to="city01")


@scenario("REPORT-DAILY")
def _report_daily(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    s.dial("C1", "2026-09-25 10:00")  # a Friday; NHI counts the next day, whatever it is
    report(s, "daily", "2026-09-25", "2026-09-26 12:01" if broken else "2026-09-26 11:59")
    return s, {}


@scenario("REPORT-SMS")
def _report_sms(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = sms_story()
    # Sent Thu 9/24; three business days: Fri 9/25, Mon 9/28, Tue 9/29.
    report(s, "sms", "2026-09-24", "2026-09-30 09:00" if broken else "2026-09-29 23:59")
    return s, {}


@scenario("REPORT-MONTHLY")
def _report_monthly(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    s.dial("C1", "2026-09-30 10:00")  # the last calling day, a Wednesday; two business days: 10/1, 10/2
    report(s, "monthly", "2026-09", "2026-10-05 09:00" if broken else "2026-10-02 18:00")
    return s, {}


@scenario("REPORT-SMS-CANDIDATES")
def _report_sms_candidates(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = tax().case("C1", month="2023-10", at="2023-10-01 09:00")
    s.dial("C1", "2023-10-20 10:00")
    # The month's work ends on its last scheduled day, Thu 10/26: due Fri 10/27 12:00.
    report(s, "sms_candidates", "2023-10", "2023-10-27 12:01" if broken else "2023-10-27 11:59")
    return s, TAX


# -- custody and access -------------------------------------------------------------


def custody(
    s: Story, *, opened_first: bool = False, destroyed: str = "2026-10-31 10:00", actor: str = "cus01"
) -> Story:
    def event(kind: str, at: str, **data: Any) -> None:
        s.add(kind, at, actor=actor, batch="B1", **data)

    if opened_first:
        s.case("C1", at="2026-09-01 09:00")
    event(
        "custody.received",
        "2026-09-01 10:00",
        media="USB-1",
        sha256="a" * 64,
        records=1,
        **{"from": "city01"},
        encrypted=True,
        transport="hand_delivery",
    )
    event("custody.imported", "2026-09-01 11:00", records=1, sha256="a" * 64)
    if not opened_first:
        s.case("C1", at="2026-09-01 12:00")
    event("custody.media_erased", "2026-09-01 13:00", media="USB-1", method="overwrite")
    event("custody.destroyed", destroyed, method="crypto_shred", keys=["k1"])
    return s


@scenario("CUSTODY-ORDER")
def _custody_order(broken: bool) -> tuple[Story, dict[str, Any]]:
    return custody(Story().team(), opened_first=broken), {}


@scenario("CUSTODY-DEADLINE")
def _custody_deadline(broken: bool) -> tuple[Story, dict[str, Any]]:
    # NHI: irrecoverable deletion by the contract's end, 2027-03-31.
    return custody(Story().team(), destroyed="2027-04-01 09:00" if broken else "2027-03-31 17:00"), {}


@scenario("CUSTODY-PERSON")
def _custody_person(broken: bool) -> tuple[Story, dict[str, Any]]:
    return custody(Story().team(), actor="op07" if broken else "cus01"), {}


@scenario("ACCESS-LOGGED")
def _access_logged(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    s.add("access.login", "2026-09-24 09:00", actor="op07", person="op07", terminal="t1", success=not broken)
    call = s.dial("C1", "2026-09-24 10:00", outcome=False)
    s.outcome("C1", call, "2026-09-24 10:01")
    return s, {}


@scenario("DESIGNATED-ACTOR")
def _designated_actor(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    if broken:
        s.add("staff.revoked", "2026-09-20 09:00", actor="mgr01", person="op07", role="operator", by="mgr01")
    call = s.dial("C1", "2026-09-24 10:00", outcome=False)
    s.outcome("C1", call, "2026-09-24 10:01")
    return s, {}


# -- staff and documents --------------------------------------------------------------


def approve(s: Story, kind: str, at: str, version: str = "1") -> None:
    s.add("document.approved", at, actor="city01", kind=kind, version=version, sha256="b" * 64, by="city01")


@scenario("SCRIPT-APPROVED")
def _script_approved(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    approve(s, "manual", "2026-09-10 09:00")
    approve(s, "faq", "2026-09-10 09:00")
    approve(s, "talk_script", "2026-09-10 09:00")
    # Version 2 of the script, approved one minute after (or before) the call that followed it.
    approve(s, "talk_script", "2026-09-24 10:01" if broken else "2026-09-24 09:59", version="2")
    call = s.dial("C1", "2026-09-24 10:00", outcome=False)
    s.outcome("C1", call, "2026-09-24 10:03", script_version="2")
    return s, {}


@scenario("STAFF-READY")
def _staff_ready(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().ready("mgr01").case("C1")
    s.add("access.login", "2026-09-24 09:00", actor="op07", person="op07", terminal="t1", success=True)
    # Signing in does not count as work; the first outcome at 10:03 does.
    trained = "2026-09-24 10:03" if broken else "2026-09-24 10:02"
    s.add("staff.trained", trained, actor="mgr01", person="op07", course="laws_manual", by="mgr01")
    s.add("staff.pledged", "2026-09-24 09:30", actor="mgr01", person="op07", sha256="c" * 64, to="city01")
    call = s.dial("C1", "2026-09-24 10:00", outcome=False)
    s.outcome("C1", call, "2026-09-24 10:03")
    return s, {}


# -- residents' callbacks (callback.outcome, T §10(4)キ / N §8(4)キ) ------------------
# The same rules, on an outcome recorded for a resident who called us back.
ON_CALLBACK: dict[str, Scenario] = {}


def on_callback(rule: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        ON_CALLBACK[rule] = fn
        return fn

    return register


@on_callback("COMPLETION-BASIS")
def _callback_completion_basis(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    s.dial("C1", "2026-09-24 10:00", result="voicemail", message_left=True)
    call = s.callback("C1", "2026-09-24 15:00")
    # Completed on a callback: the script to the end with a household member, with (not) consent.
    s.callback_outcome("C1", call, "2026-09-24 15:06", party="household", consent=not broken)
    return s, {}


@on_callback("OUTCOME-HAS-CALL")
def _callback_outcome_has_call(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1").case("C2")
    call = s.callback("C2" if broken else "C1", "2026-09-24 15:00")  # broken: C2's number called
    s.callback_outcome("C1", call, "2026-09-24 15:06")
    return s, {}


@on_callback("MOBILE-ASKED")
def _callback_mobile_asked(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1", [("1", "landline")])
    s.dial("C1", "2026-09-24 10:00", result="voicemail", message_left=True)
    call = s.callback("C1", "2026-09-24 15:00")
    s.callback_outcome("C1", call, "2026-09-24 15:06", mobile_asked=not broken)
    return s, {}


@on_callback("ESCALATION-REQUIRED")
def _callback_escalation_required(broken: bool) -> tuple[Story, dict[str, Any]]:
    s = nhi().case("C1")
    s.dial("C1", "2026-09-18 10:00", result="voicemail", message_left=True)  # a Friday
    call = s.callback("C1", "2026-09-18 15:00")
    s.callback_outcome("C1", call, "2026-09-18 15:06", requests=["tax_dispute"])
    # The next business day after Fri 9/18 is Thu 9/24.
    at = "2026-09-25 09:00" if broken else "2026-09-24 17:00"
    s.add("escalation.raised", at, actor="op07", case="C1", reason="tax_dispute", to="city01", via="callback")
    return s, {}


@on_callback("ATTEMPTS-MIN")
def _callback_attempts_min(broken: bool) -> tuple[Story, dict[str, Any]]:
    """A case completed on a callback needs no more calls; one where the person was out does."""
    s = nhi().case("C1")
    s.dial("C1", "2026-09-24 10:00", result="voicemail", message_left=True)
    call = s.callback("C1", "2026-09-24 15:00")
    if broken:
        s.callback_outcome(
            "C1", call, "2026-09-24 15:03", party="other", script="not_started", disposition="absent_now"
        )
    else:
        s.callback_outcome("C1", call, "2026-09-24 15:06")
    return s, {}


@pytest.mark.parametrize("rule", sorted(ON_CALLBACK))
def test_the_rule_is_broken_on_a_callback(rule: str) -> None:
    story, kw = ON_CALLBACK[rule](True)
    found = story.broken(rule, **kw)
    assert found, f"{rule}: no finding"
    if rule != "ATTEMPTS-MIN":  # that one names the case and its calls; the others the callback's outcome
        assert all(any(story.entries[i].type == "callback.outcome" for i in f.entries) for f in found)


@pytest.mark.parametrize("rule", sorted(ON_CALLBACK))
def test_the_near_miss_is_not_on_a_callback(rule: str) -> None:
    story, kw = ON_CALLBACK[rule](False)
    assert story.broken(rule, **kw) == []


def test_a_callback_outcome_without_its_callback_is_pending_then_broken() -> None:
    """Like a call's outcome: the loop delivers callback.received after the operator's client
    may deliver the outcome, so a missing one is pending for 60 minutes, then a finding; one
    naming a callback played the voice guide (never put through) is a false record."""
    s = nhi().case("C1")
    s.callback_outcome("C1", "B9", "2026-09-24 15:06")
    found = [f for f in s.check(as_of="2026-09-24 16:00") if f.rule == "OUTCOME-HAS-CALL"]
    assert [f.pending for f in found] == [True]
    assert [f.message for f in s.broken("OUTCOME-HAS-CALL")] == ["着信 B9 の記録がない折り返し電話の結果"]
    s = nhi().case("C1")
    call = s.callback("C1", "2026-09-24 20:30", handled="voice_guide", queued_s=0)
    s.callback_outcome("C1", call, "2026-09-24 20:31")
    assert [f.message for f in s.broken("OUTCOME-HAS-CALL")] == [
        f"着信 {call} はオペレータにつながっていない（音声ガイド）"
    ]
    s = nhi().case("C1")
    s.callback_outcome("C1", "B1", "2026-09-24 15:06")
    s.callback("C1", "2026-09-24 15:00")  # delivered later, arrived earlier: holds
    assert s.broken("OUTCOME-HAS-CALL") == []


def test_a_callback_outcome_without_its_script_version_says_callback() -> None:
    """SCRIPT-APPROVED on a callback's outcome names it as one (it said 架電結果: no call was made)."""
    s = nhi().case("C1")
    for kind in ("manual", "faq", "talk_script"):
        approve(s, kind, "2026-09-10 09:00")
    s.callback_outcome("C1", s.callback("C1", "2026-09-24 15:00"), "2026-09-24 15:06")
    found = [f.message for f in s.broken("SCRIPT-APPROVED")]
    assert found == ["折り返し電話の結果に使用したトークスクリプトの版（script_version）がない"]


def test_a_callback_reaches_the_case_and_its_promise_counts() -> None:
    """KPI-CONTACT / KPI-PROMISE: a resident who calls back after our voicemail and talks is a
    contact of a called case, with the promise made on the callback."""
    s = nhi().case("C1").case("C2")
    s.dial("C1", "2026-09-24 10:00", result="voicemail", message_left=True)
    s.dial("C2", "2026-09-24 10:05", result="voicemail", message_left=True)
    call = s.callback("C1", "2026-09-24 15:00")
    s.callback_outcome("C1", call, "2026-09-24 15:06", promise={"date": "2026-09-30", "amount": 5000})
    s.callback_outcome(
        "C2",
        s.callback("C2", "2026-09-24 16:00"),
        "2026-09-24 16:02",
        party="other",
        script="not_started",
        disposition="absent_now",
    )
    kpis = s.kpis()
    assert (kpis["KPI-CONTACT"]["numerator"], kpis["KPI-CONTACT"]["denominator"]) == (1, 2)
    assert kpis["KPI-PROMISE"]["of_reached"] == 1.0
    callbacks = kpis["KPI-CALLBACKS"]
    assert (callbacks["value"], callbacks["outcomes"], callbacks["completed_cases"]) == (
        2,
        {"completed": 1, "absent_now": 1},
        1,
    )


def test_the_monthly_reports_number_list_shows_a_callbacks_completion_contact_and_promise() -> None:
    """(イ) 番号別結果: the number's last call was a voicemail; the resident's callback completed
    the case with a promise, so its row says so (not 不通 with no contact)."""
    from types import SimpleNamespace

    from compliance.context import Context
    from compliance.deliverables import number_results
    from compliance.model import Entry
    from compliance.present import word
    from compliance.state import derive

    s = nhi().case("C1")
    s.dial("C1", "2026-09-24 10:00", result="voicemail", message_left=True)
    s.callback_outcome(
        "C1",
        s.callback("C1", "2026-09-24 15:00"),
        "2026-09-24 15:06",
        promise={"date": "2026-09-30", "amount": 5000},
    )
    entries: list[Entry] = s.entries
    ctx = Context(load_profile("nagaoka-nhi-2026"), derive(entries), "2026-09", t("2027-06-01 00:00"))
    (row,) = number_results(SimpleNamespace(ctx=ctx)).rows  # type: ignore[arg-type]
    assert row[7:] == [f"{word('disposition', 'completed')}（折り返し電話）", "○", "○"]


def test_the_daily_report_counts_a_callbacks_contact_for_a_case_called_in_the_month_only() -> None:
    """The daily report counts callbacks' contacts and promises as the KPIs do (docs/compliance.md
    "KPIs"): C1, called this month, calls back and promises; C2, last called in August, calls
    back on the same day and promises too, and is left out (it counted: 2 contacts, 2 promises)."""
    from types import SimpleNamespace

    from compliance.context import Context
    from compliance.deliverables import daily_rows
    from compliance.state import derive

    s = nhi().case("C1").case("C2")
    s.dial("C2", "2026-08-20 10:00", result="voicemail", message_left=True)
    s.dial("C1", "2026-09-24 10:00", result="voicemail", message_left=True)
    promise = {"date": "2026-09-30", "amount": 5000}
    for case, at in (("C1", "2026-09-24 15:00"), ("C2", "2026-09-24 16:00")):
        s.callback_outcome(case, s.callback(case, at), at[:-2] + "06", promise=promise)
    ctx = Context(load_profile("nagaoka-nhi-2026"), derive(s.entries), "2026-09", t("2027-06-01 00:00"))
    rows = {row[0].isoformat(): row for row in daily_rows(SimpleNamespace(ctx=ctx, month="2026-09"))}  # type: ignore[arg-type]
    assert rows["2026-09-24"][-2:] == [1, 1]
    kpis = s.kpis()
    assert (kpis["KPI-CONTACT"]["numerator"], kpis["KPI-PROMISE"]["numerator"]) == (1, 1)


# -- the tests -----------------------------------------------------------------------


def test_every_rule_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(RULES)


@pytest.mark.parametrize("rule", sorted(SCENARIOS))
def test_the_rule_is_broken(rule: str) -> None:
    story, kw = SCENARIOS[rule](True)
    found = story.broken(rule, **kw)
    assert found, f"{rule}: no finding"
    profile = load_profile(kw.get("profile", "nagaoka-nhi-2026"))
    assert all(f.clause == f"{profile.short} {profile.clauses[rule]}" for f in found)
    assert all(f.message and f.message_en and f.severity in ("violation", "judgement") for f in found)
    assert all(0 <= i < len(story.entries) for f in found for i in f.entries)
    # The Japanese says dates and codes in words: 9月24日（木）10:00, not 09-24 10:00 or call.dialed.
    iso = r"\b20\d\d-\d\d|\b\d\d-\d\d \d\d:"
    codes = re.compile(rf"{iso}|\b[a-z]+\.[a-z_]+\b|=[a-z]|\b[a-z_]{{5,}}\b|True|False")
    assert [f.message for f in found if codes.search(f.message)] == []


@pytest.mark.parametrize("rule", sorted(SCENARIOS))
def test_the_near_miss_is_not(rule: str) -> None:
    story, kw = SCENARIOS[rule](False)
    assert story.broken(rule, **kw) == []


ONE_CONTRACT = sorted(
    r
    for r in RULES
    if (r in load_profile("nagaoka-nhi-2026").clauses) != (r in load_profile("nagaoka-tax-2023").clauses)
)


@pytest.mark.parametrize("rule", ONE_CONTRACT)
def test_a_rule_of_one_contract_is_silent_under_the_other(rule: str) -> None:
    story, kw = SCENARIOS[rule](True)
    other = "nagaoka-nhi-2026" if kw.get("profile") == "nagaoka-tax-2023" else "nagaoka-tax-2023"
    assert [f for f in story.check(**{**kw, "profile": other}) if f.rule == rule] == []


def test_one_contract_rules_are_the_ones_rules_md_marks() -> None:
    assert (
        sorted(
            [
                "ATTEMPTS-NONWEEKDAY",
                "CALLERID-LANDLINE",
                "FIRST-CALL-WEEKDAY",
                "MOBILE-ASKED",
                "REPORT-SMS-CANDIDATES",
                "SMS-FREQUENCY",
                "UNSUITABLE-NOT-CALLED",
            ]
        )
        == ONE_CONTRACT
    )
