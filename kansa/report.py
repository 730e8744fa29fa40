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
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from compliance.deliverables import CASE_NUMBER, Deliverable, Sheet
from compliance.review import MonthlyReview
from ledger.policy import Policy
from ledger.witnessed import witness_status

from .views import STYLE, chart_svg

NOTEBOOK = "monthly_review.py"
PACKAGES = ("kansa", "marimo", "altair", "vl-convert-python", "openpyxl", "rfc8785", "pynacl")


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
    if hasattr(output, "to_dict") and type(output).__module__.startswith("altair"):
        return f'<div class="chart">{chart_svg(output)}</div>'
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
    outputs, defs = app.run(defs={"ledger_path": str(db), "month": month, "checkpoint_note": checkpoint})
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
<title>月次コンプライアンス・レビュー {escape(month)} — {escape(review.result.contract)}</title>
<style>{STYLE}</style></head>
<body>
<h1>月次コンプライアンス・レビュー Monthly compliance review — {escape(month)}</h1>
<p>契約 contract: {escape(review.result.contract)}</p>
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


def csv_bytes(sheet: Sheet) -> bytes:
    """UTF-8 with BOM, as Japanese Excel expects; CRLF line ends."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(sheet.headers)
    writer.writerows(["" if v is None else v for v in row] for row in sheet.rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def write_xlsx(deliverable: Deliverable, path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    for sheet in deliverable.sheets:
        ws = book.create_sheet(sheet.name[:31])
        ws.append(sheet.headers)
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in sheet.rows:
            ws.append(row)
        for i, header in enumerate(sheet.headers, start=1):
            width = max([len(str(header))] + [len(str(r[i - 1])) for r in sheet.rows if r[i - 1] is not None])
            ws.column_dimensions[ws.cell(row=1, column=i).column_letter].width = min(60, width + 2)
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
