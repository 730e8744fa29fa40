"""月次コンプライアンス・レビュー Monthly compliance review (marimo).

    python notebooks/monthly_review.py --ledger demo-out/ledger.db --month 2026-09 [--checkpoint FILE]
    marimo run notebooks/monthly_review.py -- --ledger demo-out/ledger.db --month 2026-09
    kansa report demo-out/ledger.db --month 2026-09 --out report.html   # this notebook, as one offline file

Opens the databases read-only. Verifies the ledger against the checkpoint first,
then shows the month as of that checkpoint: KPIs against targets, attempts per
number, calls by hour and day type, findings with the contract's words, and the
custody timeline of every batch.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="月次コンプライアンス・レビュー")

with app.setup:
    import argparse
    import sys
    from pathlib import Path

    import altair as alt
    import marimo as mo

    from compliance.review import (
        attempts_rows,
        custody_rows,
        finding_groups,
        hours_rows,
        kpi_rows,
        load_review,
    )
    from kansa.views import html_table


@app.cell
def arguments():
    parser = argparse.ArgumentParser(
        prog="monthly_review.py", description="月次コンプライアンス・レビュー Monthly compliance review"
    )
    parser.add_argument("--ledger", help="台帳 the ledger file (e.g. demo-out/ledger.db)")
    parser.add_argument("--month", help="対象月 YYYY-MM")
    parser.add_argument(
        "--checkpoint", help="署名付きチェックポイントのファイル a kept checkpoint note (default: the latest)"
    )
    args, _unknown = parser.parse_known_args(sys.argv[1:])
    return (args,)


@app.cell
def inputs(args):
    ledger_input = mo.ui.text(value=args.ledger or "", label="台帳 ledger", full_width=True)
    month_input = mo.ui.text(value=args.month or "", label="対象月 month (YYYY-MM)")
    checkpoint_input = mo.ui.text(
        value=args.checkpoint or "",
        label="チェックポイント checkpoint file (空欄=最新 blank = latest)",
        full_width=True,
    )
    mo.vstack(
        [
            mo.md("# 月次コンプライアンス・レビュー Monthly compliance review"),
            ledger_input,
            month_input,
            checkpoint_input,
        ]
    )
    return checkpoint_input, ledger_input, month_input


@app.cell
def chosen(checkpoint_input, ledger_input, month_input):
    # `kansa report` replaces this cell's definitions with app.run(defs=...).
    ledger_path = ledger_input.value.strip()
    month = month_input.value.strip()
    checkpoint_note = (
        Path(checkpoint_input.value).read_text("utf-8") if checkpoint_input.value.strip() else None
    )
    return checkpoint_note, ledger_path, month


@app.cell
def review_cell(checkpoint_note, ledger_path, month):
    mo.stop(
        not ledger_path or not month, mo.md("台帳と対象月を入力してください。 Enter a ledger and a month.")
    )
    review = load_review(ledger_path, month, checkpoint=checkpoint_note)
    return (review,)


@app.cell
def verification(review):
    _cp = review.checkpoint
    _report = review.verification
    if _report is not None and _report.ok:
        _status = (
            f'<div class="ok">✔ 台帳の検証に成功 verified: {_report.size} 件の全記録、ハッシュチェーン・署名・Merkle 木・'
            f"{_report.checkpoints} 件のチェックポイント（このチェックポイントを含む）。 "
            f"all {_report.size} entries, chain, signatures, tree and {_report.checkpoints} checkpoint(s), this one included.</div>"
        )
    else:
        _reason = _report.reason if _report is not None else "not run"
        _status = f'<div class="alarm">✘ 台帳の検証に失敗 VERIFICATION FAILED: {_reason}。以下の数字を信頼しないでください。</div>'
    mo.Html(
        f"<h2>1. 台帳の検証 Verification</h2>{_status}"
        f"<p>対象月 month <b>{review.month}</b>、契約 contract {review.result.contract}、"
        f"チェックポイント checkpoint: {_cp['origin']} 記録数 size {_cp['size']}、根 root <code>{_cp['root']}</code>"
        f"（基準日時 as of {_cp['as_of']}）</p><pre>{review.note}</pre>"
    )
    return


@app.cell
def kpi_table(review):
    mo.Html("<h2>2. KPI と目標 KPIs against targets</h2>" + html_table(kpi_rows(review)))
    return


@app.cell
def kpi_chart(review):
    _rates = [
        r
        for r in kpi_rows(review)
        if r["KPI"] in ("KPI-CONTACT", "KPI-PROMISE") and r["値 value"] is not None
    ]
    _bars = (
        alt.Chart(alt.Data(values=[{"kpi": r["名称 name"], "value": r["値 value"]} for r in _rates]))
        .mark_bar()
        .encode(
            x=alt.X("kpi:N", title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("value:Q", title="率 rate", scale=alt.Scale(domain=[0, 1])),
        )
    )
    _targets = (
        alt.Chart(
            alt.Data(
                values=[
                    {"kpi": r["名称 name"], "target": r["目標 target"]}
                    for r in _rates
                    if r["目標 target"] is not None
                ]
            )
        )
        .mark_tick(color="#e67e22", thickness=3, size=60)
        .encode(x="kpi:N", y="target:Q")
    )
    (_bars + _targets).properties(title="率と目標（橙） rates and targets (orange)", width=320, height=220)
    return


@app.cell
def attempts(review):
    _rows = attempts_rows(review)
    _short = sum(1 for r in _rows if r["架電回数 attempts"] < 3)
    mo.Html(
        "<h2>3. 番号ごとの架電 Attempts per number</h2>"
        f"<p>{len(_rows)} 番号、うち3回未満 {_short}（接触・停止などで終わったものを含む。契約上の判定は所見 ATTEMPTS-MIN を参照）。"
        f" {len(_rows)} numbers, {_short} with fewer than 3 attempts (including ended ones; see ATTEMPTS-MIN).</p>"
        + html_table(_rows)
    )
    return


@app.cell
def hours_chart(review):
    _rows = hours_rows(review)
    alt.Chart(
        alt.Data(
            values=[
                {
                    "type": r["曜日区分 day type"],
                    "hour": r["時 hour"],
                    "calls": r["架電 calls"],
                    "outside": r["時間外 outside hours"] > 0,
                }
                for r in _rows
            ]
        )
    ).mark_bar().encode(
        x=alt.X("hour:O", title="開始時刻 hour"),
        y=alt.Y("calls:Q", title="架電 calls"),
        color=alt.Color(
            "outside:N",
            title="時間外 outside",
            scale=alt.Scale(domain=[False, True], range=["#2b7bb9", "#c0392b"]),
        ),
        column=alt.Column("type:N", title=None),
    ).properties(title="曜日区分・時間帯別の架電 calls by day type and hour", width=260, height=180)
    return


@app.cell
def hours_table(review):
    mo.Html(
        "<h2>4. 時間帯別の架電と架電可能時間 Calls by hour against the calling windows</h2>"
        + html_table(hours_rows(review))
    )
    return


@app.cell
def findings(review):
    _groups = finding_groups(review)
    _parts = ["<h2>5. 所見 Findings</h2>"]
    if not _groups:
        _parts.append("<p>この月の所見はありません。 No findings this month.</p>")
    for _g in _groups:
        _parts.append(
            f'<h3 id="rule-{_g["rule"]}">{_g["rule"]} {_g["clause"]} — {len(_g["rows"])} 件</h3>'
            f"<blockquote>「{_g['quote']}」</blockquote>" + html_table(_g["rows"])
        )
    mo.Html("".join(_parts))
    return


@app.cell
def custody(review):
    mo.Html("<h2>6. 個人情報の管理 Custody timeline of each batch</h2>" + html_table(custody_rows(review)))
    return


if __name__ == "__main__":
    app.run()
