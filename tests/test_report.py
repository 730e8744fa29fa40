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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from auditor_site import MONTH, build_site
from click.testing import CliRunner
from openpyxl import load_workbook

from compliance.review import attempts_rows, custody_rows, load_review
from kansa.cli import main
from kansa.report import load_notebook_app
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
    """The KPI table of the report: KPI -> [numerator, denominator, value, target]."""
    section = html.split("KPIs against targets</h2>", 1)[1].split("</table>", 1)[0]
    rows = {}
    for tr in re.findall(r"<tr>(.*?)</tr>", section)[1:]:
        cells = re.findall(r"<td>(.*?)</td>", tr)
        rows[cells[0]] = cells[2:6]
    return rows


def findings_in(html: str) -> dict[str, int]:
    return {rule: int(n) for rule, n in re.findall(r'<h3 id="rule-([A-Z0-9-]+)">[^<]* — (\d+) 件</h3>', html)}


def fmt(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def test_report_figures_equal_kansa_check(site: dict[str, Any], tmp_path: Path) -> None:
    html = report(site, tmp_path / "r.html")
    check = json.loads(run("check", str(site["db"]), "--month", MONTH, "--format", "json").output)
    assert kpis_in(html) == {
        name: [fmt(k["numerator"]), fmt(k["denominator"]), fmt(k["value"]), fmt(k["target"])]
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
    assert "marimo " in footer and "altair " in footer and "python " in footer


def test_report_is_self_contained_and_complete(site: dict[str, Any], tmp_path: Path) -> None:
    html = report(site, tmp_path / "r.html")
    # Nothing fetched from anywhere: no http(s) in any src/href/url()/@import, no external script.
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not re.search(r"""url\(\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "@import" not in html and "<script" not in html and "<link" not in html
    assert html.count("<svg") >= 2  # the charts, drawn statically
    # Every row of every table.
    review = load_review(site["db"], MONTH, verify=False)
    attempts = html.split("Attempts per number</h2>", 1)[1].split("</table>", 1)[0]
    assert attempts.count("<tr>") - 1 == len(attempts_rows(review)) > 10
    custody = html.split("Custody timeline of each batch</h2>", 1)[1].split("</table>", 1)[0]
    assert custody.count("<tr>") - 1 == len(custody_rows(review)) >= 3
    findings = html.split("5. 所見 Findings</h2>", 1)[1].split("<h2>", 1)[0]
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
    assert kpis_in(new)["KPI-PROMISE"] != kpis_in(first)["KPI-PROMISE"]


def test_deliverables_excel_and_csv_hold_the_same_totals(site: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "deliverables"
    report(site, tmp_path / "r.html", "--deliverables", str(out))
    check = json.loads(run("check", str(site["db"]), "--month", MONTH, "--format", "json").output)
    names = sorted(p.name for p in out.iterdir())
    assert f"monthly-{MONTH}.xlsx" in names and f"final-{MONTH}.xlsx" in names
    assert f"sms_candidates-{MONTH}.xlsx" in names
    assert any(n.startswith("daily-") for n in names) and any(n.startswith("sms-") for n in names)
    for xlsx in out.glob("*.xlsx"):
        book = load_workbook(xlsx)
        for ws in book.worksheets:
            rows = [[("" if v is None else v) for v in row] for row in ws.iter_rows(values_only=True)]
            stem = xlsx.stem
            (csv_path,) = [p for p in out.glob(f"{stem}-*.csv") if _sheet_matches(p, rows[0])]
            raw = csv_path.read_bytes()
            assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM
            from_csv = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
            assert [[str(v) for v in row] for row in rows] == from_csv
    totals = {
        r[0]: r[1]
        for r in load_workbook(out / f"monthly-{MONTH}.xlsx").worksheets[0].iter_rows(values_only=True)
    }
    assert totals["架電対象件数 cases called"] == check["kpis"]["KPI-VOLUME"]["value"]
    assert totals["接触率 contact rate"] == check["kpis"]["KPI-CONTACT"]["value"]
    assert totals["納付約束件数 promises"] == check["kpis"]["KPI-PROMISE"]["numerator"]
    daily_calls = sum(
        load_workbook(p).worksheets[0].cell(row=2, column=2).value for p in out.glob("daily-*.xlsx")
    )
    assert daily_calls == check["kpis"]["KPI-VOLUME"]["attempts"]
    numbers = load_workbook(out / f"monthly-{MONTH}.xlsx").worksheets[1]
    assert numbers.max_row - 1 == len(attempts_rows(load_review(site["db"], MONTH, verify=False)))


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


def test_pdf_is_printed_with_debian_chromium(site: dict[str, Any], tmp_path: Path) -> None:
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed")
    report(site, tmp_path / "r.html", "--pdf", str(tmp_path / "r.pdf"))
    pdf = (tmp_path / "r.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 20_000


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
        defs={"ledger_path": str(site["db"]), "month": MONTH, "checkpoint_note": None}
    )
    assert defs["review"].verification.ok
    texts = [getattr(o, "text", "") for o in outputs if o is not None]
    first = next(i for i, t in enumerate(texts) if "Verification</h2>" in t)
    assert "✔ 台帳の検証に成功" in texts[first]
    assert first < next(i for i, t in enumerate(texts) if "KPIs against targets" in t)


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
