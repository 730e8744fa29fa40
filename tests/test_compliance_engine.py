"""The engine around the rules: deadlines, exemptions, KPIs, calendar, profiles, and `kansa check`."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import NOW
from freezegun import freeze_time
from story import Story
from test_compliance_rules import SCENARIOS, nhi, report, three_calls

from compliance import ProfileError, load_profile
from compliance.engine import CheckResult
from compliance.model import Finding
from compliance.profiles import parse_profile
from contract.calendar import add_business_days, is_business_day, is_weekday
from kansa.cli import main
from ledger import Checkpoint, Ledger, Submission

# -- deadlines are pending until they pass --------------------------------------------


def test_a_deadline_not_yet_passed_is_pending_then_missing() -> None:
    s = nhi().case("C1")
    s.dial("C1", "2026-09-25 10:00")
    before = [f for f in s.check(as_of="2026-09-26 11:59") if f.rule == "REPORT-DAILY"]
    assert [(f.pending, f.severity) for f in before] == [(True, "info")]
    after = [f for f in s.check(as_of="2026-09-26 12:00") if f.rule == "REPORT-DAILY"]
    assert [(f.pending, f.severity) for f in after] == [(False, "violation")]
    assert "未実施" in after[0].message


def test_a_late_report_is_late_even_before_the_month_ends() -> None:
    s = nhi().case("C1")
    s.dial("C1", "2026-09-25 10:00")
    report(s, "daily", "2026-09-25", "2026-09-26 13:00")
    found = [f for f in s.check(as_of="2026-09-27 00:00") if f.rule == "REPORT-DAILY"]
    assert len(found) == 1 and not found[0].pending and "期限超過" in found[0].message


def test_month_end_rules_wait_for_the_month_to_end() -> None:
    s = nhi().case("C1")
    s.dial("C1", "2026-09-24 10:00")
    assert not [f for f in s.check(as_of="2026-09-30 23:59") if f.rule == "ATTEMPTS-MIN"]
    assert [f for f in s.check(as_of="2026-10-01 00:00") if f.rule == "ATTEMPTS-MIN"]


def test_the_tax_contract_daily_report_counts_business_days() -> None:
    s = Story().team("2023-10-01 08:00").lines(at="2023-10-01 08:00")
    s.campaign("2023-10", ["2023-10-20"], at="2023-10-01 08:00").case(
        "C1", month="2023-10", at="2023-10-01 09:00"
    )
    s.dial("C1", "2023-10-20 10:00")  # Friday: due Monday 10-23 12:00
    report(s, "daily", "2023-10-20", "2023-10-23 11:00")
    kw = {"profile": "nagaoka-tax-2023", "month": "2023-10", "as_of": "2024-06-01 00:00"}
    assert not s.broken("REPORT-DAILY", **kw)


# -- exemptions -------------------------------------------------------------------------


def test_a_number_ended_as_unusable_needs_no_more_attempts() -> None:
    s = nhi().case("C1")
    call = s.dial("C1", "2026-09-24 10:00", result="invalid", outcome=False)
    s.outcome("C1", call, "2026-09-24 10:01", disposition="number_unusable")
    assert not s.broken("ATTEMPTS-MIN")


def test_tax_two_calls_with_last_months_result_are_enough() -> None:
    s = Story().team("2023-09-01 08:00").lines(at="2023-09-01 08:00")
    s.campaign("2023-10", ["2023-10-16", "2023-10-17"], at="2023-10-01 08:00")
    s.case("C1", month="2023-10", at="2023-10-01 09:00")
    s.dial("C1", "2023-09-20 10:00", result="busy")
    kw = {"profile": "nagaoka-tax-2023", "month": "2023-10", "as_of": "2024-06-01 00:00"}
    s.dial("C1", "2023-10-16 10:00", result="busy")
    s.dial("C1", "2023-10-17 14:00", result="busy")
    assert not s.broken("ATTEMPTS-MIN", **kw)
    other = Story(list(s.entries[:-4]), s.calls)  # drop the two October calls and their outcomes
    other.dial("C1", "2023-10-16 10:00", result="busy")
    other.dial("C1", "2023-10-17 14:00", result="no_answer")
    assert other.broken("ATTEMPTS-MIN", **kw)
    assert s.broken("ATTEMPTS-MIN", **{**kw, "profile": "nagaoka-nhi-2026"})  # no such exemption there


def test_a_call_at_the_time_the_resident_asked_for_may_repeat_the_band() -> None:
    s = nhi().case("C1")
    call = s.dial("C1", "2026-09-24 10:00", result="answered", outcome=False)
    s.outcome(
        "C1",
        call,
        "2026-09-24 10:02",
        party="household",
        disposition="absent_now",
        callback_at="2026-09-25 10:30",
    )
    s.dial("C1", "2026-09-25 10:30")
    assert not s.broken("ATTEMPTS-VARIED")


def test_a_callback_outside_the_calling_period_needs_an_escalation() -> None:
    s = nhi().case("C1")
    call = s.dial("C1", "2026-09-24 10:00", result="answered", outcome=False)
    s.outcome(
        "C1",
        call,
        "2026-09-24 10:02",
        party="household",
        disposition="absent_now",
        callback_at="2026-10-05 10:00",
    )
    assert s.broken("CALLBACK-APPOINTMENT")
    s.add(
        "escalation.raised",
        "2026-09-24 15:00",
        actor="op07",
        case="C1",
        reason="callback_outside_period",
        to="city01",
    )
    assert not s.broken("CALLBACK-APPOINTMENT")


# -- KPIs ----------------------------------------------------------------------------


def test_contact_and_promise_rates_state_their_denominators() -> None:
    s = nhi()
    for ref in ("C1", "C2", "C3", "C4"):
        s.case(ref)
    a = s.dial("C1", "2026-09-24 10:00", result="answered", outcome=False)
    s.outcome(
        "C1",
        a,
        "2026-09-24 10:05",
        party="self",
        script="completed",
        disposition="completed",
        promise={"date": "2026-10-10", "amount": 5000},
    )
    b = s.dial("C2", "2026-09-24 11:00", result="answered", outcome=False)
    s.outcome(
        "C2",
        b,
        "2026-09-24 11:05",
        party="household",
        consent=True,
        script="completed",
        disposition="completed",
    )
    c = s.dial("C3", "2026-09-24 12:00", result="answered", outcome=False)
    s.outcome("C3", c, "2026-09-24 12:05", party="household", consent=False, disposition="absent_now")
    s.dial("C4", "2026-09-24 13:00")
    kpis = s.kpis()
    contact = kpis["KPI-CONTACT"]
    assert (contact["numerator"], contact["denominator"], contact["value"]) == (2, 4, 0.5)
    assert (contact["target"], contact["met"]) == (0.5, True)
    promise = kpis["KPI-PROMISE"]
    assert (promise["numerator"], promise["denominator"], promise["of_reached"], promise["of_called"]) == (
        1,
        2,
        0.5,
        0.25,
    )
    volume = kpis["KPI-VOLUME"]
    assert (volume["cases_called"], volume["attempts"], volume["calls_expected"]) == (4, 4, 300)


def test_the_tax_contact_rate_is_over_the_contract() -> None:
    s = Story().team("2023-09-01 08:00")
    s.case("C1", month="2023-09", at="2023-09-01 09:00").case("C2", month="2023-10", at="2023-10-01 09:00")
    a = s.dial("C1", "2023-09-20 10:00", result="answered", outcome=False)
    s.outcome("C1", a, "2023-09-20 10:05", party="self", script="completed", disposition="completed")
    s.dial("C2", "2023-10-20 10:00")
    contact = s.kpis(month="2023-10", profile="nagaoka-tax-2023", as_of="2024-06-01 00:00")["KPI-CONTACT"]
    assert (contact["numerator"], contact["denominator"], contact["scope"]) == (1, 2, "contract to 2023-10")
    assert contact["month"]["value"] == 0.0 and contact["met"] is False


# -- calendar and profiles -------------------------------------------------------------


def test_calendar_knows_substitute_and_citizens_holidays_and_the_closure() -> None:
    assert not is_weekday(date(2026, 9, 22))  # 国民の休日
    assert not is_weekday(date(2024, 2, 12))  # 振替休日
    assert is_weekday(date(2026, 12, 28)) and is_business_day(date(2026, 12, 28))
    assert is_weekday(date(2026, 12, 29)) and not is_business_day(date(2026, 12, 29))
    assert add_business_days(date(2026, 12, 28), 1) == date(2027, 1, 4)
    assert add_business_days(date(2026, 9, 18), 1) == date(2026, 9, 24)


def _raw(profile: str) -> dict:
    return tomllib.loads(resources.files("contract").joinpath("profiles", f"{profile}.toml").read_text())


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r["attempts"].update(per_number=0), "attempts.per_number: expected an integer >= 1"),
        (lambda r: r["attempts"].update(per_number="3"), "attempts.per_number: expected"),
        (lambda r: r["hours"].update(weekday=["20:00", "09:00"]), "hours.weekday: start must be before end"),
        (lambda r: r["clauses"].update({"CALL-TELEPATHY": "§1"}), "clauses.CALL-TELEPATHY: no such rule"),
        (lambda r: r["kpis"].update(contact_target=55), "kpis.contact_target: expected a share 0-1"),
        (lambda r: r["sms"].update(colour="red"), "sms.colour: unknown key"),
        (lambda r: r.pop("contract_end"), "contract_end: missing"),
    ],
)
def test_profile_errors_name_the_key(edit, message) -> None:
    raw = _raw("nagaoka-nhi-2026")
    edit(raw)
    with pytest.raises(ProfileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_profile(raw, "nhi.toml")


def test_a_third_contract_is_a_new_file(tmp_path: Path) -> None:
    text = resources.files("contract").joinpath("profiles", "nagaoka-nhi-2026.toml").read_text()
    third = tmp_path / "other-city-2027.toml"
    third.write_text(
        text.replace('id = "nagaoka-nhi-2026"', 'id = "other-city-2027"').replace(
            "weekend_days_min = 2", "weekend_days_min = 3"
        )
    )
    profile = load_profile(third)
    assert (profile.id, profile.weekend_days_min) == ("other-city-2027", 3)
    story, kw = SCENARIOS["WEEKEND-DAYS"](False)  # two weekend days: enough for N, not for this one
    assert not story.broken("WEEKEND-DAYS", **kw)
    assert story.broken("WEEKEND-DAYS", **{**kw, "profile": str(third)})


# -- kansa check on a real ledger -------------------------------------------------------


@pytest.fixture
def checked_ledger(tmp_path: Path, ledger_signer) -> Path:
    """A ledger holding the breaking scenarios of a few rules, checkpointed."""
    db = tmp_path / "ledger.db"
    led = Ledger.create(
        db, origin="test.example/ledger", signer=ledger_signer, contract="nagaoka-nhi-2026", now=NOW
    )
    s = nhi().case("C1").case("C2")
    three_calls(s, "C1")
    s.dial("C2", "2026-09-24 20:00", ring_s=20)
    events = [
        {"id": f"e{e.index}", "type": e.type, "at": e.at.isoformat(), "actor": e.actor, "data": e.data}
        for e in s.entries
    ]
    led.append([Submission(e) for e in events], now=datetime(2026, 11, 1, tzinfo=UTC))
    led.sign_checkpoint(now=NOW)
    led.close()
    return db


def run_check(db: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["check", str(db), "--month", "2026-09", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_check_json_has_the_interface_of_verification_md(checked_ledger: Path) -> None:
    out = json.loads(run_check(checked_ledger))
    assert {"contract", "month", "checkpoint", "findings", "kpis"} <= set(out)
    assert out["contract"] == "nagaoka-nhi-2026" and out["month"] == "2026-09"
    assert out["checkpoint"]["size"] == len(nhi().entries) + 2 + 2 * 4
    for finding in out["findings"]:
        assert {"rule", "clause", "severity", "case", "entries", "message"} <= set(finding)
        assert finding["severity"] in ("violation", "judgement", "info")
    rules = {f["rule"] for f in out["findings"]}
    assert {"CALL-HOURS", "RING-35", "REPORT-DAILY"} <= rules
    for name in ("KPI-CONTACT", "KPI-PROMISE", "KPI-VOLUME", "KPI-CALLBACKS"):
        assert {"numerator", "denominator", "value", "target", "met"} <= set(out["kpis"][name])
    assert Path(f"{checked_ledger.with_suffix('')}.compliance.db").exists()


def test_same_checkpoint_same_bytes_across_processes_and_clocks(checked_ledger: Path) -> None:
    with freeze_time("2026-10-01"):
        first = run_check(checked_ledger)
    with freeze_time("2031-01-01"):
        second = run_check(checked_ledger)
    exe = Path(sys.executable).parent / "kansa"
    third = subprocess.run(
        [str(exe), "check", str(checked_ledger), "--month", "2026-09"], capture_output=True, check=True
    ).stdout.decode()
    assert first == second == third


def test_an_old_checkpoint_gives_the_old_findings(
    checked_ledger: Path, ledger_signer, tmp_path: Path
) -> None:
    old_note = Ledger.open(checked_ledger).latest_checkpoint().note
    before = run_check(checked_ledger)
    with Ledger(
        checked_ledger, __import__("sqlite3").connect(checked_ledger, isolation_level=None), ledger_signer
    ) as led:
        led.append(
            [
                Submission(
                    {
                        "id": "late-report",
                        "type": "report.submitted",
                        "at": "2026-09-25T11:00:00+09:00",
                        "actor": "mgr01",
                        "data": {"kind": "daily", "covers": "2026-09-24", "sha256": "0" * 64, "to": "city01"},
                    }
                )
            ],
            now=NOW,
        )
        led.sign_checkpoint(now=NOW)
    kept = tmp_path / "old.txt"
    kept.write_text(old_note)
    assert run_check(checked_ledger, "--checkpoint", str(kept)) == before
    assert run_check(checked_ledger) != before


def test_table_and_csv_formats(checked_ledger: Path) -> None:
    table = run_check(checked_ledger, "--format", "table")
    assert "KPI-CONTACT" in table and "CALL-HOURS" in table and "チェックポイント" in table
    raw = (
        CliRunner()
        .invoke(main, ["check", str(checked_ledger), "--month", "2026-09", "--format", "csv"])
        .stdout_bytes
    )
    assert raw.startswith("\ufeff".encode()) and "規則,条項,区分".encode() in raw and b"violation" not in raw


def test_check_errors_are_one_clear_line_and_exit_2(tmp_path: Path, make_ledger) -> None:
    led = make_ledger(2)
    no_cp = CliRunner().invoke(main, ["check", str(led.path), "--month", "2026-09"])
    assert no_cp.exit_code == 2 and "no signed checkpoint" in no_cp.output
    led.sign_checkpoint(now=NOW)
    bad_month = CliRunner().invoke(main, ["check", str(led.path), "--month", "2026-13"])
    assert bad_month.exit_code == 2 and "YYYY-MM" in bad_month.output
    no_profile = CliRunner().invoke(main, ["check", str(led.path), "--month", "2026-09"])
    assert no_profile.exit_code == 2 and "no contract profile" in no_profile.output


def test_attempts_are_ordered_by_when_they_happened_not_by_ledger_order() -> None:
    s = nhi().case("C1")
    s.dial("C1", "2026-09-29 13:35")  # delivered first, made last
    s.dial("C1", "2026-09-22 15:26")
    s.dial("C1", "2026-09-25 10:00")
    assert not s.broken("ATTEMPTS-VARIED")
    s.dial("C1", "2026-09-30 16:00")  # right after 09-29 13:35 in time: the same band
    assert s.broken("ATTEMPTS-VARIED")


def test_the_monthly_report_counts_from_the_last_scheduled_calling_day() -> None:
    s = nhi().case("C1")  # scheduled to 09-30
    s.dial("C1", "2026-09-28 10:00")  # the last outgoing call; the center works on to 09-30
    report(s, "monthly", "2026-09", "2026-10-02 15:00")  # 2 business days after 09-30
    assert not s.broken("REPORT-MONTHLY")


def test_a_callback_on_a_number_ended_meanwhile_lapses() -> None:
    s = nhi().case("C1")
    first = s.dial("C1", "2026-09-24 10:00", result="answered", outcome=False)
    s.outcome(
        "C1",
        first,
        "2026-09-24 10:02",
        party="household",
        disposition="absent_now",
        callback_at="2026-09-29 14:30",
    )
    second = s.dial("C1", "2026-09-25 18:00", result="answered", outcome=False)
    s.outcome("C1", second, "2026-09-25 18:02", party="other", disposition="number_unusable")
    assert not s.broken("CALLBACK-APPOINTMENT")


CONTRACTS = Path(__file__).parent / "vectors" / "contracts"


@pytest.mark.parametrize("profile_id", ["nagaoka-nhi-2026", "nagaoka-tax-2023"])
def test_every_rule_quotes_its_contract_verbatim(profile_id: str) -> None:
    import re

    profile = load_profile(profile_id)
    text = re.sub(r"\s+", "", (CONTRACTS / f"{profile_id}.txt").read_text("utf-8"))
    assert set(profile.quotes) == set(profile.clauses)
    for rule, quote in profile.quotes.items():
        for fragment in quote.split("…"):
            assert re.sub(r"\s+", "", fragment) in text, f"{rule}: {fragment!r}"


def test_a_profile_must_quote_every_rule_it_applies() -> None:
    raw = _raw("nagaoka-nhi-2026")
    del raw["quotes"]["RING-35"]
    with pytest.raises(ProfileError, match="quotes.RING-35: missing"):
        parse_profile(raw, "nhi.toml")


def test_the_results_database_holds_the_clauses_quoted(checked_ledger: Path) -> None:
    import sqlite3

    run_check(checked_ledger)
    rows = (
        sqlite3.connect(f"{checked_ledger.with_suffix('')}.compliance.db")
        .execute("SELECT rule, clause, quote FROM clauses WHERE contract = 'nagaoka-nhi-2026'")
        .fetchall()
    )
    quoted = {rule: (clause, quote) for rule, clause, quote in rows}
    assert set(quoted) == set(load_profile("nagaoka-nhi-2026").clauses)
    assert quoted["RING-35"] == ("N §8(5)ア", "呼び出し音35秒以上の呼び出しを行うものの、応答がない場合")


def test_fail_on_counts_what_is_due_at_that_severity_or_worse() -> None:
    def result(*findings: tuple[str, bool]) -> CheckResult:
        made = [Finding("R", "C1", (0,), sev, "§1", "x", "x", pending) for sev, pending in findings]
        return CheckResult("c", "2026-09", Checkpoint("o", 1, bytes(32)), None, made, {})

    assert result(("violation", False)).due_at_least("judgement")  # worse counts
    assert result(("judgement", False)).due_at_least("judgement")
    assert not result(("judgement", False)).due_at_least("violation")
    assert not result(("violation", True), ("info", False)).due_at_least("judgement")  # pending: not due


def test_findings_are_results_unless_fail_on_asks(checked_ledger: Path) -> None:
    plain = CliRunner().invoke(main, ["check", str(checked_ledger), "--month", "2026-09"])
    assert plain.exit_code == 0 and '"severity": "violation"' in plain.output
    strict = CliRunner().invoke(
        main, ["check", str(checked_ledger), "--month", "2026-09", "--fail-on", "violation"]
    )
    assert strict.exit_code == 1 and '"severity": "violation"' in strict.output
