"""`kansa demo`: real months of a contract, simulated into a ledger, then checked.

Creates a ledger for the contract (nagaoka-nhi-2026 by default, or
nagaoka-tax-2023), generates and imports each month's
targets at the contract's volumes (the target files stay in DIR, as the city
would hand them over), schedules the calling days, simulates calls, SMS,
callbacks, the manager's reports and the custody events, signs checkpoints,
runs `kansa check` on every month, and prints a summary.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from compliance import CheckResult, check_ledger, load_profile
from compliance.results import default_results_path, write_results
from contract.calendar import month_days, next_month
from dialer_core.campaign import IsWeekday, national_is_weekday
from dialer_core.datastore import DataStore
from ledger import Ledger, verify_ledger
from ledger.commands import init_ledger

from .world import MonthReport, World

PROFILE = "nagaoka-nhi-2026"
# Each contract's own default months: the first three of its calling period.
DEFAULT_MONTHS = {
    "nagaoka-nhi-2026": "2026-09..2026-11",
    "nagaoka-tax-2023": "2023-08..2023-10",
}


def origin(contract: str) -> str:
    return f"kansa.demo/{contract}"


@dataclass
class DemoResult:
    ledger: Path
    months: list[MonthReport]
    checks: list[CheckResult]


def parse_months(spec: str) -> list[str]:
    """'2026-09..2026-11' or '2026-09,2026-10' or '2026-09'."""
    if ".." in spec:
        first, last = spec.split("..")
        months, current = [], first
        while current <= last:
            months.append(current)
            current = next_month(current)
        return months
    return [m.strip() for m in spec.split(",") if m.strip()]


def run_demo(
    out: Path,
    *,
    now: datetime,
    echo: Callable[[str], None],
    months: list[str] | None = None,
    seed: int = 1,
    scale: float = 1.0,
    clock_offset: timedelta = timedelta(0),
    is_weekday: IsWeekday = national_is_weekday,
    progress: Callable[[str], None] | None = None,
    contract: str = PROFILE,
) -> DemoResult:
    if contract not in DEFAULT_MONTHS:
        raise ValueError(f"no demo for contract {contract!r}: one of {', '.join(DEFAULT_MONTHS)}")
    months = months or parse_months(DEFAULT_MONTHS[contract])
    profile = load_profile(contract)
    unknown = [m for m in months if m not in profile.calling_months]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} is not a calling month of {contract}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    db = out / "ledger.db"
    ledger, key_path = init_ledger(db, origin=origin(contract), contract=contract, key_path=None, now=now)
    store = DataStore(out / "targets.db")
    world = World(
        ledger, store, profile, out, seed=seed, scale=scale, clock_offset=clock_offset, is_weekday=is_weekday
    )
    try:
        world.set_up(month_days(months[0])[0], out)
        reports = [world.run_month(month, progress) for month in months]
    finally:
        world.close()
    store.close()
    checks = []
    for month in months:
        result = check_ledger(db, month)
        write_results(default_results_path(db), result)
        checks.append(result)
    report = verify_ledger(db)
    _summary(echo, db, key_path, ledger, reports, checks, report.summary())
    ledger.close()
    return DemoResult(db, reports, checks)


def _summary(
    echo: Callable[[str], None],
    db: Path,
    key_path: Path,
    ledger: Ledger,
    reports: list[MonthReport],
    checks: list[CheckResult],
    verified: str,
) -> None:
    latest = ledger.latest_checkpoint()
    echo(f"台帳 ledger: {db}  {ledger.size:,} 件 entries  (署名鍵 key: {key_path})")
    if latest is not None:
        echo(f"チェックポイント checkpoint: size {latest.size:,}, root {latest.note.splitlines()[2]}")
    echo(f"検証 verify: {verified}")
    echo("")
    echo(f"契約 contract: {checks[0].contract}")
    echo(
        "月 month   対象 cases (再掲 re-listed)  架電 calls  SMS送信 sent/停止 blocked  "
        "接触率 contact (目標 target)  所見 findings"
    )
    for month, check in zip(reports, checks, strict=True):
        contact = check.kpis["KPI-CONTACT"]
        met = "達成 met" if contact["met"] else "未達 NOT met" if contact["met"] is False else "-"
        value = "-" if contact["value"] is None else f"{contact['value']:.1%}"
        counts: dict[str, int] = {}
        for f in check.findings:
            counts[f.severity] = counts.get(f.severity, 0) + 1
        findings = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "なし none"
        echo(
            f"{month.month}   {month.cases:>10,} ({month.relisted:>6,})      {month.calls:>10,}"
            f"  {month.sms_sent:>8,}/{month.sms_blocked:<8,}"
            f"     {value} ({contact['target']:.0%}, {contact['scope']}) {met}      {findings}"
        )
        if month.unsuitable:
            echo(f"          架電不適 unsuitable in the data check: {month.unsuitable}")
        if month.refused:
            # The dialler's guard held these calls back (not residents refusing): count by reason.
            reasons: dict[str, int] = {}
            for _, reason in month.refused:
                reasons[reason] = reasons.get(reason, 0) + 1
            why = "、".join(f"{r} {n}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
            held = len(month.refused)
            echo(f"          架電を見送り held back by the dialler: {held}（理由 reasons: {why}）")
    echo("")
    kansa = _command()
    echo("次に next:")
    echo(f"  {kansa} check {db} --month {checks[0].month} --format table   # 所見とKPI findings and KPIs")
    echo(f"  {kansa} ledger verify {db}   # 台帳の検証 verify the ledger")
    echo(f"  {kansa} ledger export {db} | head   # 公開形式 the public format")
    first = checks[0].month
    echo(
        f"  {kansa} report {db} --month {first} --out {db.parent}/report-{first}.html"
        f" --deliverables {db.parent}/deliverables --pdf {db.parent}/report-{first}.pdf"
        f" --store {db.parent}/targets.db --by mgr01   # 月次レビューと市への月次業務報告書（案件番号つき）"
    )
    echo(
        f"  {kansa} auditor add NAME --ledger {db}   # 監査員の登録 add a city auditor (asks for a password)"
    )
    echo(f"  {kansa} serve {db}   # 監査員用 Datasette the auditors' Datasette on http://127.0.0.1:8001/")


def _command() -> str:
    """How to run `kansa` from here: `make demo` installs it into .venv/bin, not onto the PATH."""
    exe = Path(sys.argv[0])
    if exe.name != "kansa" or shutil.which("kansa") == str(exe.resolve()):
        return "kansa"
    try:
        return str(exe.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(exe)
