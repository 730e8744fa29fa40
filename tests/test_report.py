"""The monthly review notebook, `kansa report` and the contract's deliverables (issue 7)."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from auditor_site import MONTH, build_site
from click.testing import CliRunner
from openpyxl import load_workbook

from compliance.present import KPI_WORDS, RATE_KPIS, count, pct
from compliance.review import attempts_rows, custody_rows, load_review
from kansa.cli import main
from kansa.report import NUMBER_FORMATS, load_notebook_app, text_value
from ledger import Ledger, Submission
from ledger.commands import default_key_path

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_site(tmp_path_factory.mktemp("report"))


def run(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def report(site: dict[str, Any], out: Path, *extra: str) -> str:
    run("report", str(site["db"]), "--month", MONTH, "--out", str(out), *extra)
    return out.read_text("utf-8")


def kpis_in(html: str) -> dict[str, list[str]]:
    """The KPI table of the report: KPI name in words -> [numerator, denominator, value, target]."""
    section = html.split("2. KPI と目標</h2>", 1)[1].split("</table>", 1)[0]
    rows = {}
    for tr in re.findall(r"<tr>(.*?)</tr>", section)[1:]:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", tr)
        rows[cells[0]] = cells[1:5]
    return rows


def findings_in(html: str) -> dict[str, int]:
    return {rule: int(n) for rule, n in re.findall(r'<h3 id="rule-([A-Z0-9-]+)">[^<]* — (\d+) 件</h3>', html)}


def fmt(name: str, value: Any) -> str:
    return (pct if name in RATE_KPIS else count)(value)


def test_report_figures_equal_kansa_check(site: dict[str, Any], tmp_path: Path) -> None:
    html = report(site, tmp_path / "r.html")
    check = json.loads(run("check", str(site["db"]), "--month", MONTH, "--format", "json").output)
    assert kpis_in(html) == {
        KPI_WORDS[name]: [
            count(k["numerator"]),
            count(k["denominator"]),
            fmt(name, k["value"]),
            "—" if k["target"] is None else fmt(name, k["target"]),
        ]
        for name, k in check["kpis"].items()
    }
    counts: dict[str, int] = {}
    for f in check["findings"]:
        counts[f["rule"]] = counts.get(f["rule"], 0) + 1
    assert findings_in(html) == counts and counts["CALL-HOURS"] == 1
    cp = check["checkpoint"]
    footer = html.split("<footer>", 1)[1]
    assert cp["origin"] in footer and f"<b>{cp['size']}</b>" in footer and cp["root"] in footer
    notebook = (ROOT / "notebooks" / "monthly_review.py").read_bytes()
    import hashlib

    assert hashlib.sha256(notebook).hexdigest() in footer
    assert "marimo " in footer and "python " in footer


def test_report_is_self_contained_and_complete(site: dict[str, Any], tmp_path: Path) -> None:
    html = report(site, tmp_path / "r.html")
    # Nothing fetched from anywhere: no http(s) in any src/href/url()/@import, no external script.
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not re.search(r"""url\(\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "@import" not in html and "<script" not in html and "<link" not in html
    assert html.count("<svg") >= 2  # the charts, drawn statically
    # Every row of every table.
    review = load_review(site["db"], MONTH, verify=False)
    attempts = html.split("3. 番号ごとの架電</h2>", 1)[1].split("</table>", 1)[0]
    assert attempts.count("<tr>") - 1 == len(attempts_rows(review)) > 10
    custody = html.split("6. 個人情報の管理（バッチごとの経過）</h2>", 1)[1].split("</table>", 1)[0]
    assert custody.count("<tr>") - 1 == len(custody_rows(review)) >= 3
    findings = html.split("5. 所見</h2>", 1)[1].split("<h2>", 1)[0]
    assert findings.count("<tr>") - findings.count("<thead>") == len(review.result.findings)
    quote = review.result.profile.quotes["CALL-HOURS"]  # type: ignore[union-attr]
    assert f"「{quote}」" in html


def test_two_runs_from_one_checkpoint_agree_and_later_entries_change_nothing(
    site: dict[str, Any], tmp_path: Path
) -> None:
    shutil.copytree(site["db"].parent, tmp_path / "w")  # with its WAL and key
    db = tmp_path / "w" / "ledger.db"
    kept = tmp_path / "kept.txt"
    kept.write_text(run("ledger", "checkpoint", str(db)).output)
    first = report({"db": db}, tmp_path / "a.html", "--checkpoint", str(kept))
    second = report({"db": db}, tmp_path / "b.html", "--checkpoint", str(kept))
    assert first == second  # byte for byte: no wall clock in the report
    # More entries arrive (a contact with a promise for a called case) and a new checkpoint.
    conn = sqlite3.connect(db)
    (call_leaf,) = conn.execute(
        "SELECT leaf FROM entries WHERE type = 'call.dialed'"
        " AND json_extract(leaf, '$.event.data.result') = 'no_answer' LIMIT 1"
    ).fetchone()
    conn.close()
    dialed = json.loads(call_leaf)["event"]["data"]
    with Ledger.open(db, key_path=default_key_path(db)) as ledger:
        ledger.append(
            [
                Submission(
                    {
                        "id": str(uuid.uuid4()),
                        "type": "call.outcome",
                        "at": "2026-09-30T10:00:00+09:00",
                        "actor": "op01",
                        "data": {
                            "case": dialed["case"],
                            "call": dialed["call"],
                            "party": "self",
                            "proxy_consent": False,
                            "script": "completed",
                            "disposition": "completed",
                            "promise": {"date": "2026-10-10", "amount": 1000},
                            "callback_at": None,
                            "mobile_asked": True,
                            "requests": [],
                        },
                    }
                )
            ],
            now=datetime(2026, 10, 3, tzinfo=UTC),
        )
        ledger.sign_checkpoint(now=datetime(2026, 10, 3, tzinfo=UTC))
    old = report({"db": db}, tmp_path / "old.html", "--checkpoint", str(kept))
    new = report({"db": db}, tmp_path / "new.html")
    assert kpis_in(old) == kpis_in(first) and findings_in(old) == findings_in(first)
    assert kpis_in(new)["納付了承率"] != kpis_in(first)["納付了承率"]


FORMAT_KINDS = {fmt: kind for kind, fmt in NUMBER_FORMATS.items()}


def cell_text(cell: Any) -> str:
    """An Excel cell as the CSV writes it (openpyxl reads a date cell back as a datetime)."""
    kind = FORMAT_KINDS.get(cell.number_format, "text")
    value = cell.value.date() if kind == "date" and isinstance(cell.value, datetime) else cell.value
    return text_value(value, kind)


def test_deliverables_excel_and_csv_hold_the_same_totals(site: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "deliverables"
    report(site, tmp_path / "r.html", "--deliverables", str(out))
    check = json.loads(run("check", str(site["db"]), "--month", MONTH, "--format", "json").output)
    names = sorted(p.name for p in out.iterdir())
    assert f"monthly-{MONTH}.xlsx" in names and f"final-{MONTH}.xlsx" in names
    assert f"sms_candidates-{MONTH}.xlsx" in names and f"monthly-report-{MONTH}.html" in names
    assert any(n.startswith("daily-") for n in names) and any(n.startswith("sms-") for n in names)
    for xlsx in out.glob("*.xlsx"):
        book = load_workbook(xlsx)
        for ws in book.worksheets:
            # Excel as the city files it: frozen header, A4, the header printed on every page.
            assert ws.freeze_panes == "A2" and str(ws.page_setup.paperSize) == ws.PAPERSIZE_A4
            assert ws.print_title_rows == "$1:$1", ws.print_title_rows
            header = [c.value for c in ws[1]]
            (csv_path,) = [p for p in out.glob(f"{xlsx.stem}-*.csv") if _sheet_matches(p, header)]
            raw = csv_path.read_bytes()
            assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM
            from_csv = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
            shown = [header] + [[cell_text(c) for c in row] for row in ws.iter_rows(min_row=2)]
            assert shown == from_csv, xlsx.name
            # Every count, rate, date is a number or date with a format, never text or a bare float.
            for row in ws.iter_rows(min_row=2):
                for c in row:
                    if isinstance(c.value, bool) or c.value is None:
                        continue
                    if isinstance(c.value, int | float | datetime | date):
                        assert c.number_format in FORMAT_KINDS, (xlsx.name, c.coordinate, c.number_format)
                    else:
                        assert not re.fullmatch(r"[0-9.]+%?", str(c.value)), (xlsx.name, c.coordinate)
                        assert str(c.value) not in ("True", "False", "None")
    monthly = load_workbook(out / f"monthly-{MONTH}.xlsx")
    totals = {r[0]: r[1:] for r in monthly.worksheets[0].iter_rows(values_only=True)}
    assert totals["架電対象件数（架電した案件）"][0] == check["kpis"]["KPI-VOLUME"]["value"]
    assert totals["接触率"][1] == check["kpis"]["KPI-CONTACT"]["value"]
    assert totals["納付了承件数"][0] == check["kpis"]["KPI-PROMISE"]["numerator"]
    # The monthly breakdown by result kind is the sum of the daily files, one per calling day.
    daily = [load_workbook(p).worksheets[0] for p in sorted(out.glob("daily-*.xlsx"))]
    header = [c.value for c in daily[0][1]]
    summed = [sum(ws.cell(row=2, column=i).value for ws in daily) for i in range(2, len(header) + 1)]
    assert summed[0] == check["kpis"]["KPI-VOLUME"]["attempts"]
    for i, kind in enumerate(header[2:8], start=1):
        assert totals[f"　うち{kind}"][0] == summed[i], kind
    days = monthly.worksheets[1]
    assert [c.value for c in days[days.max_row]][1:] == summed  # the 合計 row
    review = load_review(site["db"], MONTH, verify=False)
    scheduled, excluded = review.ctx.state.campaign_days(MONTH)
    assert {ws.cell(row=2, column=1).value.date() for ws in daily} >= scheduled - excluded
    numbers = monthly.worksheets[2]
    assert numbers.max_row - 1 == len(attempts_rows(review))
    assert {r[1] for r in numbers.iter_rows(min_row=2, values_only=True)} == {"未取得"}


def _sheet_matches(path: Path, header: list[Any]) -> bool:
    first = next(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))
    return first == [str(h) for h in header]


def test_submit_records_each_file_and_store_adds_logged_case_numbers(
    site: dict[str, Any], tmp_path: Path
) -> None:
    src = site["db"].parent
    work = tmp_path / "w"
    shutil.copytree(src, work)
    db = work / "ledger.db"
    out = tmp_path / "deliverables"
    before = Ledger.open(db, readonly=True).size
    result = run(
        "report",
        str(db),
        "--month",
        MONTH,
        "--out",
        str(tmp_path / "r.html"),
        "--deliverables",
        str(out),
        "--store",
        str(work / "targets.db"),
        "--by",
        "mgr01",
        "--submit",
        "--to",
        "city01",
    )
    conn = sqlite3.connect(db)
    viewed = conn.execute(
        "SELECT count(DISTINCT case_ref) FROM entries WHERE idx >= ? AND type = 'access.viewed'", (before,)
    ).fetchone()[0]
    submitted = [
        json.loads(leaf)["event"]["data"]
        for (leaf,) in conn.execute(
            "SELECT leaf FROM entries WHERE idx >= ? AND type = 'report.submitted'", (before,)
        )
    ]
    files = sorted(out.iterdir())
    assert len(submitted) == len(files) and viewed > 0
    import hashlib

    assert sorted(s["sha256"] for s in submitted) == sorted(
        hashlib.sha256(p.read_bytes()).hexdigest() for p in files
    )
    assert {s["to"] for s in submitted} == {"city01"} and {"monthly", "daily", "final"} <= {
        s["kind"] for s in submitted
    }
    numbers = list(
        csv.reader(io.StringIO((out / f"monthly-{MONTH}-numbers.csv").read_bytes().decode("utf-8-sig")))
    )
    assert all(re.fullmatch(r"\d{6}-\d{5}", row[1]) for row in numbers[1:])  # the city's 案件番号
    assert "report.submitted" in result.output


def pdf_pages(path: Path) -> list[str]:
    """Each page's text (poppler's pdftotext)."""
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    )
    return text.stdout.split("\f")[:-1]


def test_pdfs_are_a4_with_page_numbers(site: dict[str, Any], tmp_path: Path) -> None:
    if shutil.which("chromium") is None or shutil.which("pdftotext") is None:
        pytest.skip("Debian's chromium and poppler-utils are not installed")
    out = tmp_path / "deliverables"
    report(site, tmp_path / "r.html", "--pdf", str(tmp_path / "r.pdf"), "--deliverables", str(out))
    for pdf in (tmp_path / "r.pdf", out / f"monthly-report-{MONTH}.pdf"):
        raw = pdf.read_bytes()
        assert raw.startswith(b"%PDF")
        info = subprocess.run(
            ["pdfinfo", "-f", "1", "-l", "99", str(pdf)], capture_output=True, text=True
        ).stdout
        sizes = re.findall(r"size:\s+([\d.]+) x ([\d.]+) pts", info)
        assert sizes and all(sorted((round(float(w)), round(float(h)))) == [595, 842] for w, h in sizes), (
            sizes
        )
        pages = pdf_pages(pdf)
        for n, page in enumerate(pages, start=1):
            assert f"{n} / {len(pages)} ページ" in page, (pdf.name, n)
        whole = "".join(pages)
        for python in ("True", "False", "None", "encrypted="):
            assert python not in whole, (pdf.name, python)
    city = "".join(pdf_pages(out / f"monthly-report-{MONTH}.pdf"))
    assert "月次業務報告書" in city and "長岡市長 様" in city and "受託者" in city
    assert "月間の集計（ア）" in city and "番号ごとの架電結果（イ）" in city


def test_report_errors_are_one_line(site: dict[str, Any], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["report", str(site["db"]), "--month", "2026-13", "--out", str(tmp_path / "x.html")]
    )
    assert result.exit_code != 0 and "YYYY-MM" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(
        main, ["report", str(site["db"]), "--month", MONTH, "--out", str(tmp_path / "x.html"), "--submit"]
    )
    assert result.exit_code != 0 and "--by" in result.output


# -- the notebooks themselves ------------------------------------------------------------------


def load_notebook(name: str) -> Any:
    return load_notebook_app(ROOT / "notebooks" / f"{name}.py")


def test_monthly_review_runs_as_a_script_with_help(site: dict[str, Any]) -> None:
    script = str(ROOT / "notebooks" / "monthly_review.py")
    helped = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "--month" in helped.stdout and "--checkpoint" in helped.stdout
    ran = subprocess.run(
        [sys.executable, script, "--ledger", str(site["db"]), "--month", MONTH],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]


def test_monthly_review_app_run_shows_verification_then_the_month(site: dict[str, Any]) -> None:
    outputs, defs = load_notebook("monthly_review").run(
        defs={"ledger_path": str(site["db"]), "month": MONTH, "checkpoint_note": None, "static": True}
    )
    assert defs["review"].verification.ok
    (text,) = [t for o in outputs if 'class="cards"' in (t := getattr(o, "text", "") or "")]
    assert "✔ 台帳の検証に成功" in text
    assert text.index("1. 台帳の検証</h2>") < text.index("2. KPI と目標</h2>")
    assert 'class="cards"' in text and "<marimo-" not in text  # static: no widgets
    # As an app (marimo run): summary cards, tabs, paged tables.
    outputs, _ = load_notebook("monthly_review").run(
        defs={"ledger_path": str(site["db"]), "month": MONTH, "checkpoint_note": None, "static": False}
    )
    app_text = "".join(getattr(o, "text", "") for o in outputs if o is not None)
    assert "<marimo-tabs" in app_text and "<marimo-table" in app_text and 'class="cards"' in app_text


def verify_script(*args: str) -> subprocess.CompletedProcess[str]:
    """The verification notebook in script mode, run by a Python that does not see Kansa."""
    return subprocess.run(
        [sys.executable, "-I", str(ROOT / "notebooks" / "verify_ledger.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
    )


def test_verify_notebook_imports_nothing_of_kansa() -> None:
    source = (ROOT / "notebooks" / "verify_ledger.py").read_text("utf-8")
    imported = set(re.findall(r"^\s*(?:from|import) ([A-Za-z_0-9]+)", source, re.M))
    assert imported <= {
        "marimo",
        "nacl",
        "argparse",
        "base64",
        "binascii",
        "hashlib",
        "json",
        "sqlite3",
        "sys",
        "dataclasses",
        "pathlib",
    }, imported


def test_verify_notebook_checks_independently_and_catches_tampering(
    site: dict[str, Any], tmp_path: Path
) -> None:
    app = load_notebook("verify_ledger")
    with Ledger.open(site["db"], readonly=True) as ledger:
        vkey = ledger.verifier.vkey
    _, defs = app.run(defs={"ledger_path": str(site["db"]), "trusted_vkey": vkey, "checkpoint_file": None})
    assert defs["signature_ok"] and defs["all_ok"]
    assert all(ok for _, ok, _ in defs["inclusion"]) and len(defs["inclusion"]) == 3
    # Script mode: the verdict on one line at the end, exit 0; `-I` keeps Kansa off the path.
    good = verify_script("--ledger", str(site["db"]), "--vkey", vkey)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.splitlines()[-1].startswith("OK")
    # A rewritten leaf no longer matches the signed root: exit 1.
    shutil.copytree(site["db"].parent, tmp_path / "w")
    copy = tmp_path / "w" / "ledger.db"
    conn = sqlite3.connect(copy)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute('UPDATE entries SET leaf = replace(leaf, \'"actor":"\', \'"actor":"x\') WHERE idx = 0')
    conn.commit()
    conn.close()
    _, bad = app.run(defs={"ledger_path": str(copy), "trusted_vkey": vkey, "checkpoint_file": None})
    assert not bad["all_ok"]
    rewritten = verify_script("--ledger", str(copy), "--vkey", vkey)
    assert rewritten.returncode == 1 and rewritten.stdout.splitlines()[-1].startswith("FAILED")
    # A foreign key: the signature does not verify with it (not "an inconsistent tree").
    from ledger import Signer

    foreign_vkey = Signer.generate("kansa.demo/nagaoka-nhi-2026").verifier.vkey
    _, foreign = app.run(
        defs={"ledger_path": str(site["db"]), "trusted_vkey": foreign_vkey, "checkpoint_file": None}
    )
    assert not foreign["signature_ok"] and not foreign["all_ok"]
    other = verify_script("--ledger", str(site["db"]), "--vkey", foreign_vkey)
    assert other.returncode == 1 and "the signature does not verify with this key" in other.stdout
    # Could not check at all: one line, exit 2, no traceback.
    for args in (
        ["--ledger", str(tmp_path / "missing.db")],
        ["--ledger", str(site["db"]), "--vkey", "garbage"],
    ):
        ran = verify_script(*args)
        assert ran.returncode == 2 and ran.stdout == "" and len(ran.stderr.strip().splitlines()) == 1, (
            ran.stderr
        )
        assert "Traceback" not in ran.stderr


def test_marimo_check_strict_passes() -> None:
    marimo = Path(sys.executable).parent / "marimo"
    result = subprocess.run(
        [str(marimo), "check", "--strict", "notebooks/monthly_review.py", "notebooks/verify_ledger.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_wareki_dates_where_the_profile_asks(site: dict[str, Any], tmp_path: Path) -> None:
    from compliance.deliverables import in_wareki, monthly_report
    from kansa.report import csv_bytes, write_xlsx

    monthly = in_wareki(monthly_report(load_review(site["db"], MONTH, verify=False)))
    days = csv_bytes(monthly.sheets[1]).decode("utf-8-sig")
    assert "令和8年9月" in days and "2026年" not in days
    write_xlsx(monthly, tmp_path / "m.xlsx")
    cell = load_workbook(tmp_path / "m.xlsx").worksheets[1]["A2"]
    assert cell.number_format == NUMBER_FORMATS["wdate"] and cell.is_date
