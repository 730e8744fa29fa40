"""The pages an auditor reads and signs off, in Japanese: the month clause by clause, a
case's whole story, attempts per number, custody per batch.

Every page reads the compliance results of the month's latest run (one checkpoint) and
the ledger up to that checkpoint's size, so what it shows matches the findings beside it.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from datasette.utils.asgi import NotFound, Response
from markupsafe import Markup

from compliance.coverage import examined
from compliance.present import (
    JST_NOTE,
    KPI_WORDS,
    RATE_KPIS,
    SEVERITY_MARK,
    clause_ja,
    count,
    custody_words,
    day_ja,
    jst,
    jst_month,
    jst_month_sql,
    kpi_charts,
    month_ja,
    pct,
    word,
)
from contract.calendar import add_business_days, is_weekday, month_days, tokyo
from contract.profile import load_profile

COMPLIANCE_DB = "compliance"
LEDGER_DB = "ledger"

LATEST_RUNS = """
SELECT r.* FROM runs r
WHERE r.size = (SELECT max(size) FROM runs WHERE month = r.month)
ORDER BY r.month
"""


async def _require(datasette: Any, request: Any, *databases: str) -> None:
    from datasette.resources import DatabaseResource

    for database in databases:
        await datasette.ensure_permission(
            action="view-database", resource=DatabaseResource(database=database), actor=request.actor
        )


async def _render(datasette: Any, request: Any, template: str, context: dict[str, Any]) -> Response:
    context = {"jst_note": JST_NOTE, "month_ja": month_ja, "jst": jst, **context}
    return Response.html(await datasette.render_template(template, context, request=request))


async def latest_runs(datasette: Any) -> list[dict[str, Any]]:
    db = datasette.get_database(COMPLIANCE_DB)
    return [dict(row) for row in (await db.execute(LATEST_RUNS)).rows]


def _clause_key(clause: str) -> list[Any]:
    """Sort clauses as the document runs: 6(2)ア before 8(4)カ before 10(1)."""
    text = clause_ja(clause)
    return [int(n) if n.isdigit() else n for n in re.findall(r"\d+|[^\d(),、・]+", text)]


def verdict(severities: dict[str, int], examined_count: int | None) -> tuple[str, str, str]:
    """(mark, words, css class) of one rule in one month."""
    if severities.get("violation"):
        return "✘", "違反あり", "violated"
    if severities.get("judgement"):
        return "△", "判断を要する", "judgement"
    if severities.get("pending"):
        return "⏳", "期限前（未確定）", "pending"
    if examined_count == 0:
        return "－", "対象なし", "none"
    return "✔", "適合", "held"


# -- the month, clause by clause -----------------------------------------------------------------


async def month_page(request: Any, datasette: Any) -> Response:
    await _require(datasette, request, COMPLIANCE_DB, LEDGER_DB)
    runs = await latest_runs(datasette)
    months = [r["month"] for r in runs]
    month = request.url_vars.get("month") or request.args.get("month")
    if not month:
        if not months:
            raise NotFound("検査結果がありません。kansa check を実行してください。")
        return Response.redirect(datasette.urls.path(f"/-/kansa/month/{months[-1]}"))
    run = next((r for r in runs if r["month"] == month), None)
    if run is None:
        raise NotFound(f"{month} の検査結果はありません（kansa check を実行してください）。")
    cdb = datasette.get_database(COMPLIANCE_DB)
    key = {"month": month, "size": run["size"], "root": run["root"], "contract": run["contract"]}
    clauses = [
        dict(r)
        for r in (
            await cdb.execute("SELECT rule, clause, quote FROM clauses WHERE contract = :contract", key)
        ).rows
    ]
    counts: dict[str, dict[str, int]] = {}
    for r in (
        await cdb.execute(
            """SELECT rule, CASE WHEN pending THEN 'pending' ELSE severity END AS sev, count(*) AS n
               FROM findings WHERE month = :month AND size = :size AND root = :root GROUP BY rule, sev""",
            key,
        )
    ).rows:
        counts.setdefault(r["rule"], {})[r["sev"]] = r["n"]
    rules = [c["rule"] for c in clauses]
    # A month at one checkpoint never changes: count once per (month, checkpoint size).
    cache: dict[tuple[str, int, str], Any] = datasette.__dict__.setdefault("_kansa_examined", {})
    key_seen = (month, run["size"], run["root"])
    if key_seen not in cache:
        cache[key_seen] = await datasette.get_database(LEDGER_DB).execute_fn(
            lambda conn: examined(conn, rules, month, run["size"])
        )
    seen = cache[key_seen]
    rows = []
    tally: dict[str, int] = {}
    for c in sorted(clauses, key=lambda c: (_clause_key(c["clause"]), c["rule"])):
        sev = counts.get(c["rule"], {})
        ex = seen[c["rule"]]
        mark, words, css = verdict(sev, ex.count)
        tally[css] = tally.get(css, 0) + 1
        rows.append(
            {
                "rule": c["rule"],
                "clause": clause_ja(c["clause"]),
                "quote": c["quote"],
                "mark": mark,
                "words": words,
                "css": css,
                "examined": ex.text,
                "records": datasette.urls.path("/ledger/entries") + "?" + ex.query if ex.query else "",
                "findings": [
                    f"{SEVERITY_MARK[s].split(' ')[-1]} {n:,} 件"
                    for s in ("violation", "judgement", "pending", "info")
                    if (n := sev.get(s))
                ],
                "findings_url": datasette.urls.path("/-/kansa/findings")
                + "?"
                + urlencode({"month": month, "rule": c["rule"]}),
            }
        )
    kpis = []
    for r in (
        await cdb.execute("SELECT * FROM kpis WHERE month = :month AND size = :size AND root = :root", key)
    ).rows:
        kpis.append(kpi_view(dict(r)))
    return await _render(
        datasette,
        request,
        "kansa_month.html",
        {
            "month": month,
            "months": months,
            "run": run,
            "contract_name": load_profile(run["contract"]).name,
            "as_of": jst(run["as_of"]),
            "rows": rows,
            "tally": tally,
            "kpis": sorted(kpis, key=lambda k: k["kpi"]),
        },
    )


def kpi_view(row: dict[str, Any]) -> dict[str, Any]:
    """A KPI row as people read it: counts as integers, rates as percentages."""
    rate = row["kpi"] in RATE_KPIS
    return {
        "kpi": row["kpi"],
        "month": row["month"],
        "name": KPI_WORDS.get(row["kpi"], row["kpi"]),
        "numerator": count(row["numerator"]),
        "denominator": count(row["denominator"]),
        "value": pct(row["value"]) if rate else count(row["value"]),
        "target": (pct(row["target"]) if rate else count(row["target"]))
        if row["target"] is not None
        else "—",
        "met": row["met"],
    }


async def kpis_page(request: Any, datasette: Any) -> Response:
    await _require(datasette, request, COMPLIANCE_DB)
    db = datasette.get_database(COMPLIANCE_DB)
    runs = await latest_runs(datasette)
    raw: list[dict[str, Any]] = []
    for run in runs:
        raw += [
            dict(r)
            for r in (
                await db.execute(
                    "SELECT * FROM kpis WHERE month = ? AND size = ? AND root = ? ORDER BY kpi",
                    (run["month"], run["size"], run["root"]),
                )
            ).rows
        ]
    return await _render(
        datasette,
        request,
        "kansa_kpis.html",
        {"runs": runs, "kpis": [kpi_view(r) for r in raw], "chart": Markup(kpi_charts(raw))},
    )


# -- a case's whole story ------------------------------------------------------------------------


def day_and_band(at: str, bands: list[tuple[str, str]]) -> str:
    """平日・時間帯2 (17:00〜20:00) for a call's start, in JST as the ledger wrote it."""
    moment = tokyo(datetime.fromisoformat(at))
    clock = f"{moment:%H:%M}"
    kind = "平日" if is_weekday(moment.date()) else "土日祝"
    band = next(
        (f"時間帯{i + 1}（{a}〜{b}）" for i, (a, b) in enumerate(bands) if a <= clock < b), "時間帯外"
    )
    return f"{kind}・{band}"


def describe(event: dict[str, Any], bands: list[tuple[str, str]] | None = None) -> str:
    """One line in words for an entry of a case."""
    t, d = event["type"], event.get("data", {})
    if t == "call.dialed":
        when = f"{day_and_band(event['at'], bands)}、" if bands is not None else ""
        result = word("result", d.get("result"))
        text = f"番号{d.get('number')}へ架電：{result}（{when}呼出し {d.get('ring_s')} 秒）"
        if d.get("message_left"):
            text += "、留守番電話にメッセージ"
        return text
    if t in ("call.outcome", "callback.outcome"):
        on_callback = "折り返し電話の結果：" if t == "callback.outcome" else ""
        parts = [
            f"{on_callback}相手：{word('party', d.get('party'))}",
            f"処理：{word('callback_disposition' if on_callback else 'disposition', d.get('disposition'))}",
        ]
        if d.get("promise"):
            parts.append(f"納付の了承（{day_ja(d['promise']['date'])}、{d['promise']['amount']:,} 円）")
        if d.get("callback_at"):
            parts.append(f"折り返し希望 {jst(d['callback_at'])}")
        if d.get("requests"):
            parts.append("申出：" + "・".join(word("request", r) for r in d["requests"]))
        return "、".join(parts)
    if t == "case.opened":
        numbers = "、".join(
            f"番号{n['ref']}（{word('number_kind', n['kind'])}）" for n in d.get("numbers", [])
        )
        category = word("category", d.get("category"))
        batch = f"{month_ja(str(d.get('month')))}のデータ（バッチ {d.get('batch')}）"
        return f"{batch}で登録：{category}、{numbers}"
    if t == "case.stop":
        return f"市（{d.get('by')}）から架電停止の指示：{d.get('reason')}"
    if t == "case.unsuitable":
        return f"架電不適：{d.get('reason')}"
    if t == "sms.lookup":
        return (
            f"番号{d.get('number')}のキャリア判定：{word('carrier', d.get('carrier'))}、"
            f"{word('reassigned', d.get('reassigned'))}"
        )
    if t == "sms.sent":
        return f"番号{d.get('number')}へSMS送信（{d.get('segments')} 通、送信元 {d.get('sender_id')}）"
    if t == "sms.blocked":
        return f"番号{d.get('number')}へのSMSを見送り：{word('sms_blocked', d.get('reason'))}"
    if t == "escalation.raised":
        return f"市（{d.get('to')}）へ引継ぎ：{word('request', d.get('reason'))}"
    if t == "callback.received":
        call = f"、着信 {d['call']}" if d.get("call") else ""
        handled = word("callback_handled", d.get("handled"))
        return f"折り返し電話（待ち {d.get('queued_s')} 秒、{handled}{call}）"
    if t == "access.viewed":
        return f"{d.get('person')} が個人情報を閲覧（目的：{word('purpose', d.get('purpose'))}）"
    return word("event", t)


CASE_ENTRIES = """
SELECT idx, leaf FROM entries
WHERE idx < :size AND (case_ref = :case OR (
    type = 'sms.result' AND json_extract(leaf, '$.event.data.message') IN (
        SELECT json_extract(leaf, '$.event.data.message') FROM entries
        WHERE type = 'sms.sent' AND case_ref = :case)))
ORDER BY idx
"""


async def case_page(request: Any, datasette: Any) -> Response:
    await _require(datasette, request, COMPLIANCE_DB, LEDGER_DB)
    ref = request.url_vars["ref"]
    runs = await latest_runs(datasette)
    size = max((r["size"] for r in runs), default=0)
    rows = (await datasette.get_database(LEDGER_DB).execute(CASE_ENTRIES, {"size": size, "case": ref})).rows
    if not rows:
        raise NotFound(f"案件 {ref} の記録はありません。")
    findings = await case_findings(datasette, runs, case=ref)
    cited: dict[int, list[dict[str, Any]]] = {}
    for f in findings:
        for i in f["entries"]:
            cited.setdefault(i, []).append(f)
    bands = latest_bands(runs)
    story = []
    for row in rows:
        leaf = json.loads(row["leaf"])
        event = leaf["event"]
        story.append(
            {
                "idx": row["idx"],
                "at": jst(event["at"]),
                "month": jst_month(event["at"]),
                "type": word("event", event["type"]),
                "sort": (event["at"], row["idx"]),
                "text": describe(event, bands)
                if event["type"] != "sms.result"
                else word("sms_status", event["data"].get("status")),
                "actor": actor_words(event["actor"]),
                "cited": cited.get(row["idx"], []),
            }
        )
    story.sort(key=lambda s: (tokyo(datetime.fromisoformat(s["sort"][0])), s["sort"][1]))
    months = sorted({s["month"] for s in story})
    return await _render(
        datasette,
        request,
        "kansa_case.html",
        {"ref": ref, "story": story, "months": months, "findings": findings, "size": size},
    )


def actor_words(actor: str) -> str:
    return "システム（自動）" if actor == "system" else actor


def band_labels(profile: Any) -> list[tuple[str, str]]:
    """The contract's time bands as `HH:MM` pairs."""
    return [(f"{a:%H:%M}", f"{b:%H:%M}") for a, b in profile.time_bands]


def latest_bands(runs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The time bands of the contract of the latest run (none without a run)."""
    return band_labels(load_profile(runs[-1]["contract"])) if runs else []


async def case_findings(
    datasette: Any, runs: list[dict[str, Any]], *, case: str | None = None, entry: int | None = None
) -> list[dict[str, Any]]:
    """The latest run's findings of every month that name this case or cite this entry."""
    db = datasette.get_database(COMPLIANCE_DB)
    out = []
    for run in runs:
        rows = (
            await db.execute(
                """SELECT rule, clause, severity, pending, case_ref, entries, message FROM findings
                   WHERE month = :month AND size = :size AND root = :root
                     AND (case_ref = :case OR (:entry IS NOT NULL AND EXISTS (
                         SELECT 1 FROM json_each(findings.entries) WHERE value = :entry)))
                   ORDER BY rule""",
                {
                    "month": run["month"],
                    "size": run["size"],
                    "root": run["root"],
                    "case": case,
                    "entry": entry,
                },
            )
        ).rows
        for r in rows:
            item = dict(r)
            item["month"] = run["month"]
            item["entries"] = json.loads(item["entries"])
            item["clause"] = clause_ja(item["clause"])
            item["severity_words"] = SEVERITY_MARK["pending" if item["pending"] else item["severity"]]
            out.append(item)
    return out


# -- attempts per number -------------------------------------------------------------------------


def attempts_rows_from(
    conn: sqlite3.Connection, month: str, size: int, bands: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Per case and number, the month's calls: days, bands, weekend/holiday attempts, why it stopped."""
    calls = conn.execute(
        f"""SELECT d.idx, d.case_ref, json_extract(d.leaf, '$.event.data.number') AS number, d.at,
                  json_extract(d.leaf, '$.event.data.result'), json_extract(d.leaf, '$.event.data.call')
           FROM entries d WHERE d.type = 'call.dialed' AND d.idx < :size AND {jst_month_sql("d.at")} = :month
           ORDER BY d.case_ref, number, d.idx""",
        {"size": size, "month": month},
    ).fetchall()
    # Each call's outcome, by call id, for the cases called this month (one query, not one per call).
    outcome = dict(
        conn.execute(
            f"""SELECT json_extract(leaf, '$.event.data.call'), json_extract(leaf, '$.event.data.disposition')
               FROM entries WHERE type = 'call.outcome' AND idx < :size AND case_ref IN (
                   SELECT DISTINCT case_ref FROM entries
                   WHERE type = 'call.dialed' AND idx < :size AND {jst_month_sql("at")} = :month)""",
            {"size": size, "month": month},
        ).fetchall()
    )
    calls = [(*c[:5], outcome.get(c[5])) for c in calls]
    stops = {
        r[0]
        for r in conn.execute("SELECT case_ref FROM entries WHERE type = 'case.stop' AND idx < ?", (size,))
    }
    # Cases a resident's callback completed this month (T §10(4)キ, N §8(4)キ).
    by_callback = {
        r[0]
        for r in conn.execute(
            f"""SELECT case_ref FROM entries WHERE type = 'callback.outcome' AND idx < :size
                AND json_extract(leaf, '$.event.data.disposition') = 'completed'
                AND {jst_month_sql("at")} = :month""",
            {"size": size, "month": month},
        )
    }
    groups: dict[tuple[str, str], list[Any]] = {}
    for c in calls:
        groups.setdefault((c[1], c[2]), []).append(c)
    rows = []
    for (case, number), cs in groups.items():
        moments = [tokyo(datetime.fromisoformat(c[3])) for c in cs]  # any offset, judged in JST
        clock = [m.strftime("%H:%M") for m in moments]
        band_of = {i for t in clock for i, (a, b) in enumerate(bands) if a <= t < b}
        dispositions = [c[5] for c in cs if c[5]]
        last = dispositions[-1] if dispositions else None
        if last in ("completed", "refused", "absent_long", "number_unusable", "stopped"):
            why = word("disposition", last)
        elif case in by_callback:
            why = "折り返し電話で完了"
        elif case in stops:
            why = "市の架電停止指示"
        else:
            why = ""
        rows.append(
            {
                "case": case,
                "number": number,
                "attempts": len(cs),
                "days": len({m.date() for m in moments}),
                "bands": len(band_of),
                "weekend": sum(not is_weekday(m.date()) for m in moments),
                "last": word("disposition", last) if last else word("result", cs[-1][4]),
                "why": why,
                "first": cs[0][0],
            }
        )
    return rows


async def attempts_page(request: Any, datasette: Any) -> Response:
    await _require(datasette, request, COMPLIANCE_DB, LEDGER_DB)
    runs = await latest_runs(datasette)
    months = [r["month"] for r in runs]
    month = request.args.get("month") or (months[-1] if months else None)
    run = next((r for r in runs if r["month"] == month), None)
    if run is None:
        raise NotFound("検査結果がありません。")
    profile = load_profile(run["contract"])
    bands = band_labels(profile)
    rows = await datasette.get_database(LEDGER_DB).execute_fn(
        lambda conn: attempts_rows_from(conn, run["month"], run["size"], bands)
    )
    verdicts: dict[str, list[str]] = {}
    for f in await case_findings(datasette, [run]):
        if f["rule"].startswith(("ATTEMPTS-", "NUMBERS-")) and f["case_ref"]:
            verdicts.setdefault(f["case_ref"], []).append(f"{f['severity_words']} {f['rule']}")
    for r in rows:
        r["verdicts"] = verdicts.get(r["case"], [])
    return await _render(
        datasette,
        request,
        "kansa_attempts.html",
        {"month": month, "months": months, "rows": rows, "profile": profile, "bands": bands, "run": run},
    )


# -- custody per batch ---------------------------------------------------------------------------

STEPS = (
    "custody.received",
    "custody.imported",
    "custody.media_erased",
    "custody.returned",
    "custody.destroyed",
)


async def custody_page(request: Any, datasette: Any) -> Response:
    await _require(datasette, request, COMPLIANCE_DB, LEDGER_DB)
    runs = await latest_runs(datasette)
    size = max((r["size"] for r in runs), default=0)
    rows = (
        await datasette.get_database(LEDGER_DB).execute(
            "SELECT idx, leaf FROM entries WHERE idx < :size AND type IN"
            f" ({','.join(repr(s) for s in STEPS)}) ORDER BY idx",
            {"size": size},
        )
    ).rows
    batches: dict[str, dict[str, Any]] = {}
    for row in rows:
        event = json.loads(row["leaf"])["event"]
        d = event["data"]
        b = batches.setdefault(d["batch"], {"batch": d["batch"], "steps": {}})
        b["steps"][event["type"]] = {
            "idx": row["idx"],
            "at": jst(event["at"]),
            "at_raw": event["at"],
            "actor": event["actor"],
            "text": custody_words(event["type"], d),
        }
    if runs:
        profile = load_profile(runs[-1]["contract"])
        months = dict(
            (
                await datasette.get_database(LEDGER_DB).execute(
                    "SELECT json_extract(leaf, '$.event.data.batch'),"
                    " min(json_extract(leaf, '$.event.data.month'))"
                    " FROM entries WHERE type = 'case.opened' AND idx < :size GROUP BY 1",
                    {"size": size},
                )
            ).rows
        )
        for b in batches.values():
            b["due"] = custody_due(profile, months.get(b["batch"]), b["steps"])
    deadlines: dict[str, list[dict[str, Any]]] = {}
    for f in await case_findings(datasette, runs):
        if f["rule"].startswith("CUSTODY-"):
            deadlines.setdefault(f["month"], []).append(f)
    return await _render(
        datasette,
        request,
        "kansa_custody.html",
        {
            "batches": [batches[k] for k in sorted(batches)],
            "steps": [(s, word("event", s)) for s in STEPS],
            "findings": [f for fs in deadlines.values() for f in fs],
        },
    )


def custody_due(profile: Any, month: str | None, steps: dict[str, Any]) -> dict[str, str]:
    """The contract's deadline of each step, in words (the CUSTODY-* rules judge them)."""
    due = {}
    imported = steps.get("custody.imported")
    if profile.erase_within_business_days and imported is not None:
        day = add_business_days(
            datetime.fromisoformat(imported["at_raw"]).date(), profile.erase_within_business_days
        )
        due["custody.media_erased"] = (
            f"{day_ja(day)}まで（取込から{profile.erase_within_business_days}開庁日）"
        )
    elif not profile.erase_within_business_days:
        due["custody.media_erased"] = "期限の定めなし"
    due["custody.returned"] = "返却が必要" if profile.return_required else "この契約では返却不要"
    if profile.destroy_by == "contract_end":
        due["custody.destroyed"] = f"{day_ja(profile.contract_end)}まで（業務終了後）"
    elif month is not None:
        year, mon = int(month[:4]) + int(month[5:]) // 12, int(month[5:]) % 12 + 1
        due["custody.destroyed"] = f"{day_ja(month_days(f'{year:04d}-{mon:02d}')[-1])}まで（翌月末）"
    return due


ROUTES = [
    (r"^/-/kansa/month$", month_page),
    (r"^/-/kansa/month/(?P<month>\d{4}-\d{2})$", month_page),
    (r"^/-/kansa/case/(?P<ref>[A-Za-z0-9_.-]+)$", case_page),
    (r"^/-/kansa/attempts$", attempts_page),
    (r"^/-/kansa/custody$", custody_page),
    (r"^/-/kansa/kpis$", kpis_page),
]
