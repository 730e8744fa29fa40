"""Compliance, second round: a resident listed in several months is one case judged in each
month; the role table is profile data; the three rules on false outcomes, scripts and staff."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from story import Story
from test_compliance_rules import approve, nhi, three_calls

from compliance import load_profile

NHI_OCT = {"month": "2026-10"}
TAX_OCT = {"profile": "nagaoka-tax-2023", "month": "2023-10", "as_of": "2024-06-01 00:00"}


def relisted(numbers: list[tuple[str, str]] | None = None) -> Story:
    """C1 listed in September (batch B9) and again in October (batch B10)."""
    s = nhi().case("C1", numbers, batch="B9")
    s.campaign("2026-10", ["2026-10-20", "2026-10-22", "2026-10-24", "2026-10-27"], at="2026-10-01 08:00")
    s.case("C1", numbers, month="2026-10", batch="B10", at="2026-10-01 09:00")
    return s


def rules(s: Story, **kw: Any) -> set[str]:
    return {f.rule for f in s.check(**kw) if not f.pending}


# -- 1. a case listed again is judged in every month it is listed -------------------------


def test_a_relisted_case_is_judged_on_the_new_months_calls() -> None:
    s = relisted()
    three_calls(s, "C1")  # September: three varied attempts
    s.dial("C1", "2026-10-20 10:00")
    s.dial("C1", "2026-10-20 11:00")  # October: two, the same day and band
    september, october = s.check(), s.check(**NHI_OCT)
    assert not {"ATTEMPTS-MIN", "ATTEMPTS-VARIED"} & {f.rule for f in september}
    found = {f.rule for f in october}
    assert {"ATTEMPTS-MIN", "ATTEMPTS-VARIED", "ATTEMPTS-NONWEEKDAY"} - found == {"ATTEMPTS-NONWEEKDAY"}
    s.dial("C1", "2026-10-22 18:00")  # a third, weekday only: now the weekend attempt is missing
    assert "ATTEMPTS-NONWEEKDAY" in rules(s, **NHI_OCT)


def test_a_relisted_case_with_no_call_in_the_new_month_is_found() -> None:
    s = relisted([("1", "mobile"), ("2", "landline")])
    call = s.dial("C1", "2026-09-24 10:00", result="answered", outcome=False)
    s.outcome("C1", call, "2026-09-24 10:05", party="self", script="completed", disposition="completed")
    assert not {"NUMBERS-ALL", "ATTEMPTS-MIN"} & rules(s)  # completed in September
    october = [f for f in s.check(**NHI_OCT) if f.rule in ("NUMBERS-ALL", "ATTEMPTS-MIN")]
    assert sorted((f.rule, f.message_en) for f in october) == [
        ("ATTEMPTS-MIN", "number 1 was dialled 0 times; at least 3"),
        ("ATTEMPTS-MIN", "number 2 was dialled 0 times; at least 3"),
        ("NUMBERS-ALL", "number 1 was never dialled"),
        ("NUMBERS-ALL", "number 2 was never dialled"),
    ]


def test_a_relisted_case_is_judged_on_the_numbers_of_its_new_listing() -> None:
    s = nhi().case("C1", [("1", "mobile"), ("2", "landline")], batch="B9")
    s.case("C1", [("1", "mobile"), ("3", "landline")], month="2026-10", batch="B10", at="2026-10-01 09:00")
    for at in ("2026-10-20 10:00", "2026-10-22 13:00", "2026-10-24 18:00"):
        s.dial("C1", at, number="1")
        s.dial("C1", at.replace(":00", ":30"), number="3")
    found = [f for f in s.check(**NHI_OCT) if f.rule in ("NUMBERS-ALL", "ATTEMPTS-MIN")]
    assert found == []  # number 2 is not October's


def test_a_stop_ends_the_listing_it_falls_in_not_the_next() -> None:
    s = relisted()
    s.dial("C1", "2026-09-24 10:00")
    s.add("case.stop", "2026-09-24 12:00", actor="city01", case="C1", by="city01", reason="paid")
    assert not {"ATTEMPTS-MIN", "NUMBERS-ALL"} & rules(s)
    # Listed again on 10-01 after the stop: the city wants the resident called again.
    s.dial("C1", "2026-10-20 10:00")
    october = rules(s, **NHI_OCT)
    assert "STOP-HONOURED" not in october and "ATTEMPTS-MIN" in october
    s.dial("C1", "2026-09-25 10:00")  # a September call after the stop is still a breach
    assert "STOP-HONOURED" in rules(s)


def test_a_callback_lapses_by_what_happens_in_its_own_listing() -> None:
    s = relisted()
    ended = s.dial("C1", "2026-09-24 10:00", result="answered", outcome=False)
    s.outcome("C1", ended, "2026-09-24 10:02", party="other", disposition="number_unusable")
    asked = s.dial("C1", "2026-10-20 10:00", result="answered", outcome=False)
    s.outcome(
        "C1", asked, "2026-10-20 10:02", party="household", disposition="absent_now",
        callback_at="2026-10-24 14:00",
    )  # fmt: skip
    # September's unusable number does not excuse October's appointment ...
    assert "CALLBACK-APPOINTMENT" in rules(s, **NHI_OCT)
    # ... but the number found unusable again in October, before the time asked for, does.
    again = s.dial("C1", "2026-10-22 18:00", result="answered", outcome=False)
    s.outcome("C1", again, "2026-10-22 18:02", party="other", disposition="number_unusable")
    assert "CALLBACK-APPOINTMENT" not in rules(s, **NHI_OCT)


def test_the_tax_two_call_rule_compares_the_same_number_in_the_previous_month() -> None:
    def story(october_number: str) -> Story:
        s = Story().team("2023-09-01 08:00").lines(at="2023-09-01 08:00")
        s.campaign("2023-10", ["2023-10-16", "2023-10-17"], at="2023-10-01 08:00")
        s.case("C1", [("1", "mobile")], month="2023-09", batch="B9", at="2023-09-01 09:00")
        s.case("C1", [(october_number, "mobile")], month="2023-10", batch="B10", at="2023-10-01 09:00")
        s.dial("C1", "2023-09-20 10:00", result="busy")
        s.dial("C1", "2023-10-16 10:00", number=october_number, result="busy")
        s.dial("C1", "2023-10-17 14:00", number=october_number, result="busy")
        return s

    assert "ATTEMPTS-MIN" not in rules(story("1"), **TAX_OCT)  # 同一番号: two calls are enough
    assert "ATTEMPTS-MIN" in rules(story("3"), **TAX_OCT)  # a new number: three are needed
    # The comparison is with the previous month, not any earlier one.
    older = story("1")
    older.entries = [
        e
        for e in older.entries
        if not (e.type.startswith("call.") and e.data.get("call") == "K1") and e.type != "campaign.scheduled"
    ]
    older.campaign("2023-10", ["2023-10-16", "2023-10-17"], at="2023-10-01 08:00")
    older.dial("C1", "2023-08-21 10:00", result="busy")
    assert "ATTEMPTS-MIN" in rules(older, **TAX_OCT)


def test_kpis_count_a_relisted_case_once_per_period() -> None:
    s = Story().team("2023-09-01 08:00")
    s.case("C1", month="2023-09", batch="B9", at="2023-09-01 09:00")
    s.case("C1", month="2023-10", batch="B10", at="2023-10-01 09:00")
    s.case("C2", month="2023-10", batch="B10", at="2023-10-01 09:00")
    a = s.dial("C1", "2023-09-20 10:00", result="answered", outcome=False)
    s.outcome(
        "C1",
        a,
        "2023-09-20 10:05",
        party="self",
        script="completed",
        disposition="completed",
        promise={"date": "2023-10-10", "amount": 1000},
    )
    b = s.dial("C1", "2023-10-20 10:00", result="answered", outcome=False)
    s.outcome("C1", b, "2023-10-20 10:05", party="self", script="completed", disposition="completed")
    s.dial("C2", "2023-10-20 11:00")
    kpis = s.kpis(month="2023-10", profile="nagaoka-tax-2023", as_of="2024-06-01 00:00")
    contact, promise = kpis["KPI-CONTACT"], kpis["KPI-PROMISE"]
    assert (contact["numerator"], contact["denominator"]) == (1, 2)  # C1 once over the contract
    assert (contact["month"]["numerator"], contact["month"]["denominator"]) == (1, 2)
    # T §10(1): the promise target is over the contract too, with the month beside it.
    assert (promise["numerator"], promise["denominator"], promise["scope"]) == (1, 1, "contract to 2023-10")
    assert (promise["met"], promise["month"]["numerator"], promise["month"]["value"]) == (True, 0, 0.0)


# -- 2. who may write what: the profile's role table -------------------------------------


def test_a_custodian_opens_the_cases_of_an_import_and_an_operator_escalates() -> None:
    s = nhi()
    s.add("case.opened", "2026-09-01 09:00", actor="cus01", case="C1", batch="B1", month="2026-09",
          category="initial", numbers=[{"ref": "1", "kind": "mobile"}])  # fmt: skip
    s.add("case.unsuitable", "2026-09-02 09:00", actor="cus01", case="C1", reason="deceased")
    s.add("escalation.raised", "2026-09-24 10:00", actor="op07", case="C1", reason="complaint", to="city01")
    assert not s.broken("DESIGNATED-ACTOR")
    s.add("case.opened", "2026-09-03 09:00", actor="op07", case="C2", batch="B1", month="2026-09",
          category="initial", numbers=[{"ref": "1", "kind": "mobile"}])  # fmt: skip
    s.add(
        "sms.lookup", "2026-09-23 10:00", actor="op07", case="C1", number="1", carrier="au", reassigned="no"
    )
    assert sorted(f.message_en for f in s.broken("DESIGNATED-ACTOR")) == [
        "op07 is not designated in a role that may write case.opened (custodian/manager)",
        "op07 is not designated in a role that may write sms.lookup (manager)",
    ]


def test_the_role_table_is_the_profiles(tmp_path: Path) -> None:
    s = nhi()
    s.add("case.stop", "2026-09-24 12:00", actor="mgr01", case="C1", by="mgr01", reason="paid")
    assert s.broken("DESIGNATED-ACTOR")  # the city stops a case, not the manager
    text = resources.files("contract").joinpath("profiles", "nagaoka-nhi-2026.toml").read_text()
    other = tmp_path / "other-city-2027.toml"
    other.write_text(
        text.replace('id = "nagaoka-nhi-2026"', 'id = "other-city-2027"').replace(
            '"case.stop" = ["city"]', '"case.stop" = ["city", "manager"]'
        )
    )
    assert load_profile(other).roles_for("case.stop") == ("city", "manager")
    assert load_profile(other).roles_for("custody.returned") == ("custodian",)
    assert not s.broken("DESIGNATED-ACTOR", profile=str(other))


def test_sign_ins_are_for_oneself_and_a_device_key_signs_only_what_the_device_records() -> None:
    s = nhi()
    keys = (("console-1+00000001", "console-1"), ("op07+00000002", "op07"), ("system+00000003", "system"))
    for key, holder in keys:
        s.add("key.registered", "2026-09-01 08:00", actor="mgr01", public_key="AAAA", holder=holder)
        s.entries[-1].data["key"] = key  # (Story.add's own `key` is the signing key)
    # The console records a failed sign-in, even by someone who is not staff.
    s.add("access.login", "2026-09-24 08:59", actor="guest", key="console-1+00000001",
          person="guest", terminal="console-1", success=False)  # fmt: skip
    s.add("access.login", "2026-09-24 09:00", actor="op07", key="op07+00000002",
          person="op07", terminal="console-1", success=True)  # fmt: skip
    # The dialling core (`kansa dialer run`) signs its call.dialed with its own key, holder system.
    s.add("call.dialed", "2026-09-24 09:30", actor="system", key="system+00000003", case="C1", number="1",
          call="K0", caller_id="0258-00-0000", ended_at="2026-09-24T09:31:00+09:00", ring_s=40,
          result="no_answer")  # fmt: skip
    assert not s.broken("DESIGNATED-ACTOR")
    s.add("access.login", "2026-09-24 09:01", actor="mgr01", person="op07", terminal="m1", success=True)
    s.add("access.viewed", "2026-09-24 09:32", actor="op07", key="system+00000003", person="op07",
          case="C1", purpose="call")  # fmt: skip
    call = s.dial("C1", "2026-09-24 10:00", outcome=False)
    s.add("call.outcome", "2026-09-24 10:01", actor="op07", key="console-1+00000001", case="C1",
          call=call, party="none", proxy_consent=False, script="not_started", disposition="no_contact",
          promise=None, callback_at=None, mobile_asked=False, requests=[])  # fmt: skip
    s.add("key.revoked", "2026-09-24 12:00", actor="mgr01", reason="lost")
    s.entries[-1].data["key"] = "op07+00000002"
    s.add("access.logout", "2026-09-24 12:01", actor="op07", key="op07+00000002", person="op07", terminal="t")
    assert sorted(f.message_en for f in s.broken("DESIGNATED-ACTOR")) == [
        "an event of op07 signed with the key of system",
        "call.outcome signed with the key of the device console-1, which signs only what it records",
        "mgr01 wrote access.login for someone else, op07",
        "signed with a revoked key (of op07)",
    ]


# -- 3. false outcomes, approved scripts, trained and pledged staff --------------------------


def test_an_outcome_for_a_call_never_dialled_is_found_after_an_hour() -> None:
    s = nhi().case("C1")
    s.outcome("C1", "Kx1", "2026-09-24 10:05")
    pending = [f for f in s.check(as_of="2026-09-24 11:04") if f.rule == "OUTCOME-HAS-CALL"]
    assert [(f.pending, f.severity) for f in pending] == [(True, "info")]
    assert [f.message_en for f in s.broken("OUTCOME-HAS-CALL")] == [
        "an outcome for call Kx1, which was never dialled"
    ]
    s.dial("C2", "2026-09-24 10:00", outcome=False)  # K1 was to another case
    s.outcome("C1", "K1", "2026-09-24 10:06")
    assert "call K1 was to another case, C2" in {f.message_en for f in s.broken("OUTCOME-HAS-CALL")}


def test_every_outcome_names_an_approved_script_and_the_manual_and_faq_come_first() -> None:
    s = nhi().case("C1")
    approve(s, "talk_script", "2026-09-10 09:00")
    approve(s, "manual", "2026-09-24 10:30")  # after the contract's first call
    call = s.dial("C1", "2026-09-24 10:00", outcome=False)  # not answered: the rule still applies
    s.outcome("C1", call, "2026-09-24 10:01")
    assert sorted(f.message_en for f in s.broken("SCRIPT-APPROVED")) == [
        "the faq was not approved by the city before the contract's first call (2026-09-24 10:00)",
        "the manual was not approved by the city before the contract's first call (2026-09-24 10:00)",
        "the outcome does not name the talk script it followed (script_version)",
    ]


def test_the_bootstrap_manager_is_trained_and_pledged_too() -> None:
    s = nhi()  # mgr01 records lines and the schedule at 08:00 with no training or pledge
    assert [f.message_en for f in s.broken("STAFF-READY")] == [
        "mgr01 began work (callerid.registered, 09-01 08:00) with no training and pledge recorded before it"
    ]
    assert not nhi().ready("mgr01").broken("STAFF-READY")
