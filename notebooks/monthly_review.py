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
    from html import escape
    from pathlib import Path

    import marimo as mo

    from compliance.present import (
        JST_NOTE,
        KPI_WORDS,
        RATE_KPIS,
        STYLE,
        bar_chart,
        count,
        html_table,
        jst,
        month_ja,
        pct,
        stacked_bars,
        word,
    )
    from compliance.review import (
        attempts_rows,
        custody_rows,
        finding_groups,
        hours_rows,
        kpi_rows,
        load_review,
    )

    CARD_STYLE = """<style>
    .cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 0.5em 0 1em; }
    .card { border: 1px solid #ccd; border-radius: 8px; padding: 10px 14px; min-width: 150px; background: #fff; }
    .card .label { font-size: 0.85em; color: #555; }
    .card .value { font-size: 1.6em; font-weight: bold; }
    .card .target { font-size: 0.8em; color: #555; }
    .card.met { border-left: 6px solid #27ae60; } .card.not-met { border-left: 6px solid #c0392b; }
    .wrap { white-space: pre-wrap; word-break: break-all; font-size: 0.8em; }
    table.kansa td, table.kansa th { padding: 4px 8px; }
    </style>"""


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
    ledger_input = mo.ui.text(value=args.ledger or "", label="台帳のファイル", full_width=True)
    month_input = mo.ui.text(value=args.month or "", label="対象月（YYYY-MM）")
    checkpoint_input = mo.ui.text(
        value=args.checkpoint or "",
        label="チェックポイントのファイル（空欄＝最新）",
        full_width=True,
    )
    mo.vstack(
        [
            mo.md("# 月次コンプライアンス・レビュー（社内用）"),
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
def mode():
    # `kansa report` sets static=True: plain HTML only (no widgets), every section in order.
    static = False
    return (static,)


@app.cell
def review_cell(checkpoint_note, ledger_path, month):
    mo.stop(not ledger_path or not month, mo.md("台帳と対象月を入力してください。"))
    review = load_review(ledger_path, month, checkpoint=checkpoint_note)
    return (review,)


@app.cell
def verification(review, static):
    _cp = review.checkpoint
    _report = review.verification
    if _report is not None and _report.ok:
        _status = (
            f'<div class="ok">✔ 台帳の検証に成功：{_report.size:,} 件の全記録について、ハッシュチェーン・署名・Merkle 木と'
            f" {_report.checkpoints} 件のチェックポイント（このチェックポイントを含む）を確かめました。</div>"
        )
    else:
        _reason = _report.reason if _report is not None else "未実施"
        _status = (
            f'<div class="alarm">✘ 台帳の検証に失敗：{_reason}。以下の数字を信頼しないでください。</div>'
        )
    verification_html = (
        f"<h2>1. 台帳の検証</h2>{_status}"
        f"<p>対象月 <b>{month_ja(review.month)}</b>。判定の基準：台帳の記録 {_cp['size']:,} 件目まで"
        f"（最後の記録の受付 {jst(_cp['as_of'])}）。{JST_NOTE}</p>"
        f"<details{' open' if static else ''}><summary>署名付きチェックポイント</summary>"
        f'<pre class="wrap">{escape(review.note)}</pre></details>'
    )
    return (verification_html,)


@app.cell
def cards(review):
    _cards = []
    for _name, _k in sorted(review.result.kpis.items()):
        _rate = _name in RATE_KPIS
        _show = pct if _rate else count
        _met = "" if _k.get("met") is None else ("met" if _k["met"] else "not-met")
        _target = f"目標 {_show(_k['target'])}" if _k.get("target") is not None else "目標なし"
        _done = "" if _k.get("met") is None else ("　✔ 達成" if _k["met"] else "　✘ 未達")
        _cards.append(
            f'<div class="card {_met}"><div class="label">{KPI_WORDS.get(_name, _name)}</div>'
            f'<div class="value">{_show(_k.get("value"))}</div><div class="target">{_target}{_done}</div></div>'
        )
    _counts = {}
    for _f in review.result.findings:
        _key = word("severity", "pending" if _f.pending else _f.severity)
        _counts[_key] = _counts.get(_key, 0) + 1
    _cards.append(
        '<div class="card"><div class="label">所見</div>'
        f'<div class="value">{len(review.result.findings):,} 件</div><div class="target">'
        + ("、".join(f"{k} {v}" for k, v in _counts.items()) or "なし")
        + "</div></div>"
    )
    cards_html = CARD_STYLE + '<div class="cards">' + "".join(_cards) + "</div>"
    return (cards_html,)


@app.cell
def kpis(review):
    _rates = [
        (KPI_WORDS[n], k.get("value"), k.get("target"))
        for n, k in sorted(review.result.kpis.items())
        if n in RATE_KPIS and k.get("value") is not None
    ]
    _charts = "".join(
        bar_chart(name, [(month_ja(review.month), v)], target=t, rate=True) for name, v, t in _rates
    )
    kpis_html = (
        "<h2>2. KPI と目標</h2><p>棒が目標（点線）に届かないときは赤で示します。</p>"
        + _charts
        + html_table(kpi_rows(review))
    )
    return (kpis_html,)


@app.cell
def attempts(review):
    attempt_rows = attempts_rows(review)
    _short = sum(1 for r in attempt_rows if r["架電回数"] < 3)
    attempts_intro = (
        "<h2>3. 番号ごとの架電</h2>"
        f"<p>{len(attempt_rows):,} 番号、うち3回未満 {_short:,} 番号（完了・番号使用不可・市の停止指示などで終わったものを含みます。"
        "契約上の判定は所見の 仕様書8(4)カ を見てください）。</p>"
    )
    return attempt_rows, attempts_intro


@app.cell
def hours(review):
    _rows = hours_rows(review)
    _hours = sorted({int(r["開始時刻"].removesuffix("時台")) for r in _rows})
    _series = []
    for _kind, _colour in (("平日", "#2b7bb9"), ("土日祝", "#7fb3d5")):
        _series.append(
            (
                f"{_kind}（時間内）",
                _colour,
                [
                    sum(
                        r["架電件数"] - r["うち時間外"]
                        for r in _rows
                        if r["曜日の区分"] == _kind and r["開始時刻"] == f"{h}時台"
                    )
                    for h in _hours
                ],
            )
        )
    _series.append(
        (
            "時間外",
            "#c0392b",
            [sum(r["うち時間外"] for r in _rows if r["開始時刻"] == f"{h}時台") for h in _hours],
        )
    )
    hours_html = (
        "<h2>4. 時間帯ごとの架電と架電できる時間</h2>"
        + stacked_bars("開始時刻ごとの架電件数", [f"{h}時" for h in _hours], _series)
        + html_table(_rows)
    )
    return (hours_html,)


@app.cell
def findings(review):
    _groups = finding_groups(review)
    _parts = ["<h2>5. 所見</h2>"]
    if not _groups:
        _parts.append("<p>この月の所見はありません。</p>")
    for _g in _groups:
        _parts.append(
            f'<h3 id="rule-{_g["rule"]}">{_g["clause"]}（規則 {_g["rule"]}） — {len(_g["rows"])} 件</h3>'
            f"<blockquote>「{_g['quote']}」</blockquote>" + html_table(_g["rows"])
        )
    findings_html = "".join(_parts)
    return (findings_html,)


@app.cell
def custody(review):
    custody_list = custody_rows(review)
    custody_intro = "<h2>6. 個人情報の管理（バッチごとの経過）</h2>"
    return custody_intro, custody_list


@app.cell
def layout(
    attempt_rows,
    attempts_intro,
    cards_html,
    custody_intro,
    custody_list,
    findings_html,
    hours_html,
    kpis_html,
    review,
    static,
    verification_html,
):
    _title = f"<h1>月次コンプライアンス・レビュー（社内用） — {month_ja(review.month)}分</h1>"
    if static:
        _items = [
            mo.Html(
                cards_html
                + verification_html
                + kpis_html
                + attempts_intro
                + html_table(attempt_rows)
                + hours_html
                + findings_html
                + custody_intro
                + html_table(custody_list)
            )
        ]
    else:

        def _tab(html):
            return mo.Html(f"<style>{STYLE}</style>{CARD_STYLE}{html}")

        def _paged(rows):
            return mo.ui.table(rows, page_size=20, selection=None) if rows else mo.md("（なし）")

        _items = [
            mo.Html(f"<style>{STYLE}</style>" + _title + cards_html),
            mo.ui.tabs(
                {
                    "KPI": _tab(kpis_html),
                    "番号ごとの架電": mo.vstack([_tab(attempts_intro), _paged(attempt_rows)]),
                    "時間帯": _tab(hours_html),
                    "所見": _tab(findings_html),
                    "個人情報の管理": mo.vstack([_tab(custody_intro), _paged(custody_list)]),
                    "台帳の検証": _tab(verification_html),
                }
            ),
        ]
    mo.vstack(_items)
    return


if __name__ == "__main__":
    app.run()
