"""`kansa report`: the monthly notebook run headless into one offline HTML file, and the
contract's deliverables as Excel and CSV.

The HTML is built from the notebook's own outputs (`app.run()`): HTML outputs as they
are, altair charts as inline SVG, interactive widgets dropped. Nothing is fetched from
anywhere when it opens. No wall-clock time is written into it, so two runs from the
same checkpoint give the same bytes.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import io
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from compliance.deliverables import CASE_NUMBER, Deliverable, Sheet
from compliance.present import JST_NOTE, STYLE, date_ja, jst, month_ja, pct, wareki
from compliance.review import MonthlyReview
from ledger.policy import Policy
from ledger.witnessed import witness_status

NOTEBOOK = "monthly_review.py"
PACKAGES = ("kansa", "marimo", "openpyxl", "rfc8785", "pynacl")

# Printed on A4 with page numbers (Chromium draws @page margin boxes); long tables may go on
# landscape pages (class="wide"), table headers repeat on every page.
PRINT_STYLE = """
@page { size: A4; margin: 15mm 12mm 18mm 12mm;
  @bottom-center { content: counter(page) " / " counter(pages) " ページ"; font-size: 9pt; color: #444; } }
@page wide { size: A4 landscape; }
section.wide { page: wide; }
@media print {
  body { margin: 0; font-size: 10pt; }
  thead { display: table-header-group; }
  tr, .kpi-chart, blockquote { break-inside: avoid; }
  h2 { break-after: avoid; }
}
"""


class ReportError(Exception):
    pass


@dataclass(frozen=True)
class RenderedReport:
    html: str
    review: MonthlyReview
    notebook_sha256: str


def notebook_path() -> Path:
    return Path(str(resources.files("notebooks").joinpath(NOTEBOOK)))


def load_notebook_app(path: Path) -> Any:
    """A marimo notebook's `app`, loaded from its file (notebooks are scripts, not modules)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"kansa_notebook_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ReportError(f"cannot load the notebook {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def _output_html(output: Any) -> str:
    """One cell's output as static HTML ("" for nothing to show)."""
    if output is None:
        return ""
    text = getattr(output, "text", None)
    if isinstance(text, str):
        return "" if "<marimo-" in text else text  # widgets need marimo's frontend: not in a static file
    return f"<pre>{escape(str(output))}</pre>"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "-"
    return found


def render_report(
    db: Path | str, month: str, *, checkpoint: str | None = None, policy: Policy | None = None
) -> RenderedReport:
    path = notebook_path()
    source = path.read_bytes()
    app = load_notebook_app(path)
    outputs, defs = app.run(
        defs={"ledger_path": str(db), "month": month, "checkpoint_note": checkpoint, "static": True}
    )
    review: MonthlyReview | None = defs.get("review")
    if review is None:
        raise ReportError("the notebook did not produce a review")
    body = "\n".join(part for part in map(_output_html, outputs) if part)
    cp = review.checkpoint
    sha = hashlib.sha256(source).hexdigest()
    version_items = ", ".join(f"{k} {v}" for k, v in versions().items())
    cosigned = "" if policy is None else _cosigners_html(witness_status(db, policy, size=int(cp["size"])))
    html = f"""<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8">
<title>月次コンプライアンス・レビュー（社内用） {escape(month_ja(month))}</title>
<style>{STYLE}{PRINT_STYLE}</style></head>
<body>
<h1>月次コンプライアンス・レビュー（社内用） — {escape(month_ja(month))}分</h1>
<p>契約：{escape(review.result.profile.name if review.result.profile else review.result.contract)}。
市へ提出する月次業務報告書は別の文書です（<code>kansa report --deliverables</code> が書き出します）。
{JST_NOTE}</p>
{body}
<footer>
<p>この報告はチェックポイント <b>{escape(cp["origin"])}</b> 記録数 size <b>{cp["size"]}</b>
根 root <code>{escape(cp["root"])}</code>（基準日時 as of {escape(str(cp["as_of"]))}）から作成しました。
同じチェックポイントからは同じ数字になります。
Computed from this checkpoint; the same checkpoint gives the same figures.</p>
{cosigned}<p>ノートブック notebook: notebooks/{NOTEBOOK} SHA-256 <code>{sha}</code></p>
<p>版 versions: {escape(version_items)}</p>
</footer>
</body></html>
"""
    return RenderedReport(html, review, sha)


def _cosigners_html(status: dict[str, Any]) -> str:
    """The footer line naming who cosigned the report's checkpoint, and whether the policy is met."""
    who = "、".join(escape(name) for name in status["cosigners"]) or "なし none"
    met = "定足数を満たしています quorum met" if status["met"] else "定足数に達していません quorum NOT met"
    quorum = escape(status["quorum"])
    return f'<p id="cosigners">証人の連署 cosigned by: {who}（ポリシー policy: {quorum}、{met}）</p>\n'


# -- deliverables --------------------------------------------------------------------------------


def text_value(value: Any, kind: str) -> str:
    """A cell as the CSV shows it: Japanese dates, percentages, integer counts."""
    if value is None:
        return ""
    if kind == "pct" and isinstance(value, int | float):
        return pct(value)
    if kind == "int" and isinstance(value, int | float):
        return str(int(round(value)))
    if isinstance(value, datetime):
        return f"{wareki(value.date())} {value:%H:%M}" if kind == "wdatetime" else jst(value)
    if isinstance(value, date):
        return wareki(value) if kind == "wdate" else date_ja(value)
    return str(value)


def csv_bytes(sheet: Sheet) -> bytes:
    """UTF-8 with BOM, as Japanese Excel expects; CRLF line ends."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(sheet.headers)
    writer.writerows([text_value(v, sheet.kind(i)) for i, v in enumerate(row)] for row in sheet.rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


NUMBER_FORMATS = {
    "int": "#,##0",
    "pct": "0.0%",
    "date": 'yyyy"年"m"月"d"日"',
    "datetime": 'yyyy"年"m"月"d"日" hh:mm',
    "wdate": '[$-ja-JP]ggge"年"m"月"d"日"',
    "wdatetime": '[$-ja-JP]ggge"年"m"月"d"日" hh:mm',
}
WIDTHS = {"int": 10, "pct": 9, "date": 16, "datetime": 20, "wdate": 16, "wdatetime": 20}


def _width(text: str) -> float:
    """Excel column width for text: a full-width character takes two."""
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def write_xlsx(deliverable: Deliverable, path: Path) -> None:
    """Excel as the city files it: bold frozen header row, number and date formats, column
    widths, A4 page setup (landscape for wide sheets), the header row printed on every page."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)
    for sheet in deliverable.sheets:
        ws = book.create_sheet(sheet.name[:31])
        ws.append(sheet.headers)
        for cell in ws[1]:
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor="EEF2F5")
            cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        for row in sheet.rows:
            ws.append(row)
        for i, header in enumerate(sheet.headers, start=1):
            kind = sheet.kind(i - 1)
            letter = get_column_letter(i)
            if kind in NUMBER_FORMATS:
                for (cell,) in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                    cell.number_format = NUMBER_FORMATS[kind]
            texts = [text_value(r[i - 1], kind) for r in sheet.rows]
            width = max([_width(header), WIDTHS.get(kind, 0)] + [_width(t) for t in texts])
            ws.column_dimensions[letter].width = min(60, width + 2)
        ws.freeze_panes = "A2"
        ws.print_title_rows = "1:1"
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.page_setup.orientation = "landscape" if len(sheet.headers) > 6 else "portrait"
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.oddFooter.center.text = "&P / &N ページ"
        ws.oddHeader.center.text = deliverable.title
    book.properties.title = deliverable.title
    book.save(path)


def fill_case_numbers(deliverables: list[Deliverable], lookup: Callable[[str], str]) -> None:
    """Put the city's case number beside each case reference (column after the reference)."""
    cache: dict[str, str] = {}
    for deliverable in deliverables:
        for sheet in deliverable.sheets:
            if CASE_NUMBER not in sheet.headers:
                continue
            col = sheet.headers.index(CASE_NUMBER)
            for row in sheet.rows:
                ref = str(row[col - 1])
                if ref not in cache:
                    cache[ref] = lookup(ref)
                row[col] = cache[ref]


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    kind: str
    covers: str
    sha256: str


def write_deliverables(deliverables: list[Deliverable], out_dir: Path) -> list[WrittenFile]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for d in deliverables:
        xlsx = out_dir / f"{d.stem}.xlsx"
        write_xlsx(d, xlsx)
        written.append(WrittenFile(xlsx, d.kind, d.covers, hashlib.sha256(xlsx.read_bytes()).hexdigest()))
        for sheet in d.sheets:
            path = out_dir / f"{d.stem}-{sheet.slug}.csv"
            data = csv_bytes(sheet)
            path.write_bytes(data)
            written.append(WrittenFile(path, d.kind, d.covers, hashlib.sha256(data).hexdigest()))
    return written


# -- the monthly report to the city ----------------------------------------------------------


def _sheet_html(sheet: Sheet) -> str:
    """A sheet as a printed table: the CSV's words, numbers right-aligned."""
    if not sheet.rows:
        return "<p>（該当なし）</p>"
    nums = [sheet.kind(i) in ("int", "pct") for i in range(len(sheet.headers))]
    head = "".join(
        f'<th class="num">{escape(h)}</th>' if n else f"<th>{escape(h)}</th>"
        for h, n in zip(sheet.headers, nums, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{escape(text_value(v, sheet.kind(i)))}</td>'
            if nums[i]
            else f"<td>{escape(text_value(v, sheet.kind(i)))}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in sheet.rows
    )
    return f'<table class="kansa"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_city_report(
    review: MonthlyReview, monthly: Deliverable, *, addressee: str, contractor: str
) -> str:
    """月次業務報告書: the monthly report the contract asks for (N §10(2), T §12(2)), for the
    city as it is: (ア) the month's figures and the daily figures, (イ) per-number results."""
    cp = review.checkpoint
    profile = review.result.profile
    as_of = cp["as_of"]
    dated = jst(as_of).split(" ")[0] if as_of else ""
    if as_of and profile is not None and profile.wareki:
        dated = wareki(datetime.fromisoformat(str(as_of)).date())
    totals, days, numbers = monthly.sheets
    verified = review.verification
    check = (
        "台帳の全記録の検証（ハッシュチェーン・署名・Merkle 木）に成功しています。"
        if verified is not None and verified.ok
        else "注意：台帳の検証に成功していません。この報告の数字を確定値として扱わないでください。"
    )
    return f"""<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8">
<title>月次業務報告書 {escape(month_ja(review.month))}分</title>
<style>{STYLE}{PRINT_STYLE}
.letterhead {{ display: flex; justify-content: space-between; margin-bottom: 1.5em; }}
.letterhead .to {{ font-size: 1.2em; }}
.letterhead .from {{ text-align: right; }}
h1 {{ text-align: center; font-size: 1.6em; letter-spacing: 0.2em; }}
th.num {{ text-align: right; }}
</style></head>
<body>
<div class="letterhead"><div class="to">{escape(addressee)}</div>
<div class="from">{escape(dated)}<br>受託者　{escape(contractor)}</div></div>
<h1>月次業務報告書</h1>
<p style="text-align:center">{escape(profile.name if profile else review.result.contract)}
（{escape(month_ja(review.month))}分）</p>
<p>仕様書に基づき、{escape(month_ja(review.month))}の業務の実施状況を次のとおり報告します。{JST_NOTE}
接触は、本人、または伝言を了承した同一世帯の方と話せたことをいいます。率は百分率です。</p>
<section><h2>1. 月間の集計（ア）</h2>{_sheet_html(totals)}</section>
<section><h2>2. 日別の集計（ア）</h2>
<p>予定した架電日ごとの件数です（架電のない日は 0）。合計は上の月間の集計と一致します。</p>
{_sheet_html(days)}</section>
<section class="wide"><h2>3. 番号ごとの架電結果（イ）</h2>
<p>案件は台帳の参照番号で示します。案件番号の欄が「未取得」のものは、市の案件番号を記入していない写しです。</p>
{_sheet_html(numbers)}</section>
<footer><p>この報告は、改ざんを検知できる業務記録（台帳）の {cp["size"]:,} 件目までの記録（チェックポイント、
{escape(jst(as_of))} 時点、署名付き）から作成しました。{check}
同じチェックポイントからは同じ数字になります。根ハッシュ <code>{escape(cp["root"])}</code></p></footer>
</body></html>
"""


def write_city_report(
    review: MonthlyReview,
    deliverables: list[Deliverable],
    out_dir: Path,
    *,
    addressee: str,
    contractor: str,
    pdf: bool,
) -> list[Path]:
    """The monthly report as HTML (and PDF, A4 with page numbers) beside the spreadsheets."""
    monthly = next(d for d in deliverables if d.kind == "monthly")
    html_path = out_dir / f"monthly-report-{review.month}.html"
    html_path.write_text(
        render_city_report(review, monthly, addressee=addressee, contractor=contractor), encoding="utf-8"
    )
    written = [html_path]
    if pdf:
        pdf_path = html_path.with_suffix(".pdf")
        html_to_pdf(html_path, pdf_path)
        written.append(pdf_path)
    return written


# -- PDF -----------------------------------------------------------------------------------------


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def html_to_pdf(html_path: Path, pdf_path: Path) -> None:
    """Print the report with Debian's chromium (headless, no network, a throwaway profile)."""
    browser = chromium()
    if browser is None:
        raise ReportError("no chromium to print the PDF with: `apt-get install chromium` (make install does)")
    with tempfile.TemporaryDirectory() as profile:
        try:
            subprocess.run(
                [
                    browser,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    f"--user-data-dir={profile}",
                    "--no-pdf-header-footer",
                    f"--print-to-pdf={pdf_path}",
                    html_path.resolve().as_uri(),
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            raise ReportError(f"chromium failed: {exc}") from exc
    if not pdf_path.exists() or not pdf_path.read_bytes().startswith(b"%PDF"):
        raise ReportError("chromium did not write the PDF")


# -- `kansa report`, end to end --------------------------------------------------------------------


@dataclass(frozen=True)
class ReportRequest:
    """What `kansa report` is asked for (docs/cli.md)."""

    db: Path
    month: str
    out: Path
    checkpoint: str | None = None  # a kept signed checkpoint note (default: the latest stored)
    policy: Policy | None = None
    pdf: Path | None = None
    deliverables: Path | None = None  # also write the deliverables and the city's monthly report here
    store: Path | None = None  # the encrypted data store: fills in the city's case numbers (logged)
    by: str | None = None  # who makes the report: needed with `store` and `submit`
    submit: bool = False  # record each deliverable file's SHA-256 as report.submitted
    to: str = "city"
    addressee: str | None = None
    contractor: str | None = None
    key: Path | None = None  # the ledger's signing key (default: beside it)


def make_report(
    request: ReportRequest,
    *,
    now: Callable[[], datetime],
    echo: Callable[[str], None],
    note: Callable[[str], None],
) -> list[WrittenFile]:
    """Verifies, renders the review (HTML, PDF), writes the deliverables and the city's report,
    logs each case-number read and records report.submitted; returns the deliverable files.

    `echo` gets the results, `note` the progress and warnings. Raises ReportError (or
    compliance.CheckError) with one line for the user; a ledger that does not verify is an
    error after the report (which says so) has been written.
    """
    from compliance.deliverables import all_deliverables
    from dialer_core.datastore import DataStore, DataStoreError
    from ledger import Ledger, Submission
    from ledger.commands import default_key_path
    from ledger.event import envelope

    r = request
    if (r.store or r.submit) and not r.by:
        raise ReportError("--store and --submit need --by (who makes the report)")
    if r.submit and not r.deliverables:
        raise ReportError("--submit needs --deliverables DIR")
    note(f"{r.month}: 台帳を検証して月次レビューを作成中 verifying and reviewing …")
    rendered = render_report(r.db, r.month, checkpoint=r.checkpoint, policy=r.policy)
    r.out.write_text(rendered.html, encoding="utf-8")
    cp = rendered.review.checkpoint
    echo(
        f"report: {r.out}  (checkpoint {cp['origin']} size {cp['size']},"
        f" notebook sha256 {rendered.notebook_sha256[:16]}…)"
    )
    verified = rendered.review.verification
    if verified is not None and not verified.ok:
        raise ReportError(f"the ledger does NOT verify: {verified.summary()} (the report says so too)")
    if r.pdf:
        try:
            html_to_pdf(r.out, r.pdf)
        except ReportError as exc:
            raise ReportError(f"PDF: {exc}") from exc
        echo(f"pdf: {r.pdf}")
    if not r.deliverables:
        return []
    deliverables = all_deliverables(rendered.review)
    by = r.by or ""
    target = Ledger.open(r.db, key_path=r.key or default_key_path(r.db)) if (r.store or r.submit) else None
    try:
        if r.store:
            assert target is not None

            def log_view(data: dict[str, Any]) -> None:
                moment = now()
                target.append([Submission(envelope("access.viewed", by, data, moment))], now=moment)

            with DataStore(r.store) as store:

                def lookup(ref: str) -> str:
                    try:
                        return store.read_case(ref, person=by, purpose="report", log=log_view).case_number
                    except DataStoreError:
                        return "（削除済み）"

                fill_case_numbers(deliverables, lookup)
        else:
            note(
                "注意: 案件番号は「未取得」のままです（--store と --by で市の案件番号を記入します）"
                " case numbers not filled: pass --store and --by"
            )
        written = write_deliverables(deliverables, r.deliverables)
        for f in written:
            echo(f"  {f.path}  sha256 {f.sha256}")
        profile = rendered.review.result.profile
        try:
            city = write_city_report(
                rendered.review,
                deliverables,
                r.deliverables,
                addressee=r.addressee or (profile.addressee if profile else "") or "長岡市長 様",
                contractor=r.contractor or (profile.contractor if profile else ""),
                pdf=bool(r.pdf),
            )
        except ReportError as exc:
            raise ReportError(f"PDF: {exc}") from exc
        for path in city:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            written.append(WrittenFile(path, "monthly", r.month, digest))
            echo(f"  {path}  月次業務報告書 monthly report to the city  sha256 {digest}")
        if r.submit:
            assert target is not None
            moment = now()
            events = [
                envelope(
                    "report.submitted",
                    by,
                    {"kind": f.kind, "covers": f.covers, "sha256": f.sha256, "to": r.to},
                    moment,
                )
                for f in written
            ]
            appended = target.append([Submission(e) for e in events], now=moment)
            echo(f"report.submitted: entries {appended[0].index}..{appended[-1].index}")
    finally:
        if target is not None:
            target.close()
    return written
