"""What the month page says each rule examined (compliance/coverage.py), on a small ledger table."""

from __future__ import annotations

import sqlite3

from compliance.coverage import examined


def entries(*rows: tuple[str, str, str]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE entries (idx INTEGER, type TEXT, case_ref TEXT, at TEXT, leaf TEXT)")
    for idx, (kind, case, at) in enumerate(rows):
        conn.execute("INSERT INTO entries VALUES (?, ?, ?, ?, '{}')", (idx, kind, case, at))
    return conn


def test_counts_the_months_calls_days_and_cases_and_lists_them() -> None:
    conn = entries(
        ("call.dialed", "c1", "2026-09-24T10:00:00+09:00"),
        ("call.dialed", "c1", "2026-09-25T10:00:00+09:00"),
        ("call.dialed", "c2", "2026-09-25T11:00:00+09:00"),
        ("call.dialed", "c3", "2026-10-01T10:00:00+09:00"),  # another month
    )
    found = examined(conn, ["CALL-HOURS", "CAMPAIGN-SHAPE", "ATTEMPTS-MIN"], "2026-09", 4)
    assert [found[r].count for r in ("CALL-HOURS", "CAMPAIGN-SHAPE", "ATTEMPTS-MIN")] == [3, 2, 2]
    assert found["CALL-HOURS"].text == "架電 3 件の開始時刻を確認"
    assert "at__startswith=2026-09" in found["CALL-HOURS"].query and "idx__lt=4" in found["CALL-HOURS"].query


def test_the_outcomes_of_residents_callbacks_are_counted_where_their_rules_read_them() -> None:
    """A resident's callback's outcome (callback.outcome) is an operator's record as a call's is:
    the rules that read both count both (DESIGNATED-ACTOR counted the call's only)."""
    conn = entries(
        ("call.dialed", "c1", "2026-09-24T10:00:00+09:00"),
        ("call.outcome", "c1", "2026-09-24T10:03:00+09:00"),
        ("callback.received", "c1", "2026-09-24T15:00:00+09:00"),
        ("callback.outcome", "c1", "2026-09-24T15:06:00+09:00"),
    )
    rules = ["COMPLETION-BASIS", "SCRIPT-APPROVED", "MOBILE-ASKED", "DESIGNATED-ACTOR"]
    found = examined(conn, rules, "2026-09", 4)
    assert [found[r].count for r in rules] == [2, 2, 2, 3]


def test_nothing_to_examine_says_so_for_the_month_or_for_the_contract_so_far() -> None:
    found = examined(entries(), ["CALL-HOURS", "REPORT-MONTHLY", "NO-SUCH-RULE"], "2026-09", 0)
    assert found["CALL-HOURS"].text == "この月に確認する記録はありません（該当なし）"
    # a cumulative rule looks at the whole contract so far, not "this month"
    assert found["REPORT-MONTHLY"].text == "確認する記録はまだありません（該当なし）"
    assert found["CALL-HOURS"].query == "" and found["NO-SUCH-RULE"].count is None


def test_months_are_tokyos_whatever_the_offset_of_at() -> None:
    """A call written in UTC late on 30 September is 1 October in Tokyo: October's."""
    conn = entries(
        ("call.dialed", "c1", "2026-09-30T10:00:00+09:00"),
        ("call.dialed", "c2", "2026-09-30T15:30:00Z"),  # 2026-10-01 00:30 JST
        ("call.dialed", "c3", "2026-09-30T14:59:59+00:00"),  # 2026-09-30 23:59:59 JST
    )
    september = examined(conn, ["CALL-HOURS", "CAMPAIGN-SHAPE"], "2026-09", 3)
    october = examined(conn, ["CALL-HOURS"], "2026-10", 3)
    assert september["CALL-HOURS"].count == 2 and october["CALL-HOURS"].count == 1
    assert september["CAMPAIGN-SHAPE"].count == 1  # one calling day (30 Sep), not two
