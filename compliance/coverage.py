"""What each rule examines, counted in the ledger up to a checkpoint: the auditor's
"架電 1,121 件を確認" beside each clause, and the filter that lists those records.

Plain SQL over the ledger's browsing columns (`type`, `at` in JST as written, `idx`), so
Datasette's table view can list exactly the records counted (`/ledger/entries?...`).
A rule reads more than it counts (e.g. the profile); the count is of the ledger records
it judged. A rule not listed here is shown without a count.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from urllib.parse import urlencode

from .present import jst_month_sql, jst_prefix_sql


@dataclass(frozen=True)
class Reads:
    types: tuple[str, ...]
    what: str  # "{n}" is replaced by the count
    monthly: bool = True  # only the month's records (by `at`); else everything up to the checkpoint
    unit: str = "entries"  # entries | days | cases
    # (SQL counting a subset with :month and :size, words when it is all, words with {n} when not)
    detail: tuple[str, str, str] | None = None


CALLS = ("call.dialed",)
OUTCOMES = ("call.outcome",)
TALKS = ("call.outcome", "callback.outcome")  # a call's outcome, and a resident's callback's
CUSTODY = (
    "custody.received",
    "custody.imported",
    "custody.media_erased",
    "custody.returned",
    "custody.destroyed",
)

READS: dict[str, Reads] = {
    "CALL-HOURS": Reads(CALLS, "架電 {n} 件の開始時刻を確認"),
    "CALL-DAYS": Reads(CALLS, "架電 {n} 件の架電日を予定日と照合"),
    "CAMPAIGN-SHAPE": Reads(CALLS, "架電のあった {n} 日の日程を確認", unit="days"),
    "WEEKEND-DAYS": Reads(CALLS, "架電のあった {n} 日のうち土日祝の日を確認", unit="days"),
    "FIRST-CALL-WEEKDAY": Reads(CALLS, "案件 {n} 件の最初の架電を確認", unit="cases"),
    "NUMBERS-MAX": Reads(("case.opened",), "案件 {n} 件の登録番号数を確認", unit="cases"),
    "NUMBERS-ALL": Reads(CALLS, "架電した案件 {n} 件の全番号への架電を確認", unit="cases"),
    "ATTEMPTS-MIN": Reads(CALLS, "架電した案件 {n} 件の番号ごとの架電回数を確認", unit="cases"),
    "ATTEMPTS-VARIED": Reads(CALLS, "架電した案件 {n} 件の架電の曜日・時間帯を確認", unit="cases"),
    "ATTEMPTS-NONWEEKDAY": Reads(CALLS, "架電した案件 {n} 件の土日祝の架電を確認", unit="cases"),
    "COMPLETION-BASIS": Reads(TALKS, "通話結果 {n} 件の完了・終了の根拠を確認"),
    "STOP-HONOURED": Reads(("case.stop", "call.dialed"), "架電停止指示と架電 計 {n} 件を照合"),
    "RING-35": Reads(CALLS, "架電 {n} 件の呼出し秒数を確認"),
    "VOICEMAIL-MESSAGE": Reads(CALLS, "架電 {n} 件のうち留守番電話へのメッセージを確認"),
    "CALLBACK-APPOINTMENT": Reads(OUTCOMES, "通話結果 {n} 件の折り返し約束を確認"),
    "RECORD-EVERY-CALL": Reads(("call.dialed", "call.outcome"), "架電と通話結果 計 {n} 件を突合"),
    "OUTCOME-HAS-CALL": Reads(
        ("call.outcome", "call.dialed", "callback.outcome", "callback.received"),
        "通話結果と架電・折り返し電話 計 {n} 件を突合",
    ),
    "MOBILE-ASKED": Reads(TALKS, "通話結果 {n} 件で携帯番号の聞き取りを確認"),
    "ESCALATION-REQUIRED": Reads(
        ("call.outcome", "callback.outcome", "escalation.raised"), "通話結果と市への引継ぎ 計 {n} 件を確認"
    ),
    "UNSUITABLE-NOT-CALLED": Reads(
        ("case.unsuitable", "call.dialed"), "架電不適の案件と架電 計 {n} 件を照合"
    ),
    "AFTER-HOURS-GUIDE": Reads(("callback.received",), "折り返し電話 {n} 件の対応を確認"),
    "CALLBACK-QUEUE": Reads(("callback.received",), "折り返し電話 {n} 件の待ち時間を確認"),
    "CALLERID-LINES": Reads(
        ("callerid.registered", "callerid.retired"), "発信番号の登録・廃止 {n} 件を確認", monthly=False
    ),
    "CALLERID-LANDLINE": Reads(
        ("callerid.registered", "callerid.retired"), "発信番号の登録・廃止 {n} 件を確認", monthly=False
    ),
    "SMS-DESIGNATED": Reads(
        ("sms.sent",),
        "SMS {n} 件が市の指定した対象者か確認",
        detail=(
            "WITH designated AS (SELECT j.value AS c, min(d.idx) AS i"
            " FROM entries d, json_each(d.leaf, '$.event.data.cases') j"
            " WHERE d.type = 'sms.designated' AND d.idx < :size GROUP BY j.value)"
            " SELECT count(*) FROM entries s JOIN designated ON designated.c = s.case_ref AND designated.i < s.idx"
            f" WHERE s.type = 'sms.sent' AND s.idx < :size AND {jst_month_sql('s.at')} = :month",
            "すべて市の指定した対象者",
            "うち市の指定した対象者は {n} 件のみ",
        ),
    ),
    "SMS-FREQUENCY": Reads(("sms.sent",), "SMS {n} 件の1人あたり送信回数を確認"),
    "SMS-LOOKUP": Reads(
        ("sms.sent",),
        "SMS {n} 件の事前のキャリア判定を確認",
        detail=(
            "SELECT count(*) FROM entries s WHERE s.type = 'sms.sent' AND s.idx < :size"
            f" AND {jst_month_sql('s.at')} = :month AND EXISTS (SELECT 1 FROM entries l WHERE l.type = 'sms.lookup'"
            " AND l.case_ref = s.case_ref AND l.idx < s.idx"
            " AND json_extract(l.leaf, '$.event.data.number') = json_extract(s.leaf, '$.event.data.number'))",
            "すべて送信前にキャリア判定あり",
            "うち送信前にキャリア判定があったのは {n} 件のみ",
        ),
    ),
    "SMS-REASSIGNED": Reads(("sms.sent",), "SMS {n} 件の番号再割当の判定を確認"),
    "SMS-SENDER": Reads(("sms.sent",), "SMS {n} 件の送信元番号を確認"),
    "REPORT-DAILY": Reads(("report.submitted",), "提出された報告書 {n} 件の期限を確認", monthly=False),
    "REPORT-SMS": Reads(("report.submitted",), "提出された報告書 {n} 件の期限を確認", monthly=False),
    "REPORT-MONTHLY": Reads(("report.submitted",), "提出された報告書 {n} 件の期限を確認", monthly=False),
    "REPORT-SMS-CANDIDATES": Reads(
        ("report.submitted",), "提出された報告書 {n} 件の期限を確認", monthly=False
    ),
    "CUSTODY-ORDER": Reads(CUSTODY, "個人情報の受領から削除までの記録 {n} 件の順序を確認", monthly=False),
    "CUSTODY-DEADLINE": Reads(CUSTODY, "個人情報の受領から削除までの記録 {n} 件の期限を確認", monthly=False),
    "CUSTODY-PERSON": Reads(CUSTODY, "個人情報の取扱い {n} 件の担当者を確認", monthly=False),
    "ACCESS-LOGGED": Reads(("access.viewed", "access.login"), "個人情報の閲覧とサインイン {n} 件を確認"),
    "SCRIPT-APPROVED": Reads(TALKS, "通話結果 {n} 件のトークスクリプトの版と市の承認を確認"),
    "STAFF-READY": Reads(
        ("staff.trained", "staff.pledged"), "従事者の研修・誓約書の記録 {n} 件を確認", monthly=False
    ),
    "DESIGNATED-ACTOR": Reads(
        ("call.dialed", "call.outcome", "callback.outcome", "access.viewed"), "記録 {n} 件の担当者の指名を確認"
    ),
}


@dataclass(frozen=True)
class Examined:
    rule: str
    count: int | None
    text: str  # e.g. 架電 1,121 件の開始時刻を確認; or that there was nothing to examine
    query: str  # the query string of /ledger/entries listing the records counted ("" when none)


def examined(conn: sqlite3.Connection, rules: list[str], month: str, size: int) -> dict[str, Examined]:
    """What each rule examined in `month`, in the ledger's first `size` entries: two grouped
    passes over the ledger (the month's records by type, and all records by type), then one
    query per rule that says more than a count."""
    monthly: dict[str, tuple[int, int, int]] = {
        t: (n, days, cases)
        for t, n, days, cases in conn.execute(
            f"SELECT type, count(*), count(DISTINCT {jst_prefix_sql('at', 10)}), count(DISTINCT case_ref)"
            f" FROM entries WHERE idx < ? AND {jst_month_sql('at')} = ? GROUP BY type",
            (size, month),
        )
    }
    overall: dict[str, int] = dict(
        conn.execute("SELECT type, count(*) FROM entries WHERE idx < ? GROUP BY type", (size,)).fetchall()
    )
    out = {}
    for rule in rules:
        reads = READS.get(rule)
        if reads is None:
            out[rule] = Examined(rule, None, "台帳の記録から判定（件数の集計なし）", "")
            continue
        if reads.monthly:
            column = {"entries": 0, "days": 1, "cases": 2}[reads.unit]
            # days and cases are counted over one type (every Reads with those units has one)
            n = sum(monthly.get(t, (0, 0, 0))[column] for t in reads.types)
        else:
            n = sum(overall.get(t, 0) for t in reads.types)
        filters = [("type__in", ",".join(reads.types)), ("idx__lt", str(size))]
        if reads.monthly:
            filters.append(("at__startswith", month))
        filters.append(("_sort", "idx"))
        nothing = "この月に確認する記録はありません（該当なし）" if reads.monthly else "確認する記録はまだありません（該当なし）"
        text = reads.what.format(n=f"{n:,}") if n else nothing
        if n and reads.detail is not None:
            sql, every, some = reads.detail
            part = int(conn.execute(sql, {"month": month, "size": size}).fetchone()[0])
            text += "（" + (every if part == n else some.format(n=f"{part:,}")) + "）"
        out[rule] = Examined(rule, n, text, urlencode(filters) if n else "")
    return out
