"""`kansa report`: the monthly review and the contract's deliverables."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import click

from ledger import Submission
from ledger.event import envelope
from ledger.policy import load_policy

from ._common import key_option, now, open_ledger, user_errors


@click.command("report")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option("--month", required=True, help="YYYY-MM")
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False), help="The HTML report to write."
)
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A kept signed checkpoint note (default: the latest stored).",
)
@click.option(
    "--deliverables",
    "deliverables_dir",
    type=click.Path(file_okay=False),
    help="Also write the contract's deliverables here (Excel and CSV with BOM).",
)
@click.option(
    "--pdf", "pdf", type=click.Path(dir_okay=False), help="Also print the report to PDF (chromium)."
)
@click.option(
    "--store",
    "store_path",
    type=click.Path(exists=True, dir_okay=False),
    help="The encrypted data store: adds the city's case numbers to the deliverables (each read is logged).",
)
@click.option("--by", help="Who makes the report (a staff id): needed with --store and --submit.")
@click.option("--submit", is_flag=True, help="Record each deliverable file's SHA-256 as report.submitted.")
@click.option("--to", default="city", show_default=True, help="Recipient named in report.submitted.")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A C2SP tlog-policy file: the footer names the witnesses that cosigned the checkpoint.",
)
@click.option("--addressee", help="The monthly report's addressee (default: the profile's).")
@click.option("--contractor", help="The contractor's name on the monthly report (default: the profile's).")
@key_option
def report(
    db: str,
    month: str,
    out: str,
    checkpoint_file: str | None,
    deliverables_dir: str | None,
    pdf: str | None,
    store_path: str | None,
    by: str | None,
    submit: bool,
    to: str,
    policy_file: str | None,
    addressee: str | None,
    contractor: str | None,
    key: str | None,
) -> None:
    """The monthly review notebook as one offline HTML file, and the city's deliverables."""
    from compliance import CheckError
    from compliance.deliverables import all_deliverables
    from kansa.report import (
        ReportError,
        WrittenFile,
        fill_case_numbers,
        html_to_pdf,
        render_report,
        write_city_report,
        write_deliverables,
    )

    if (store_path or submit) and not by:
        raise click.UsageError("--store and --submit need --by (who makes the report)")
    if submit and not deliverables_dir:
        raise click.UsageError("--submit needs --deliverables DIR")
    note = Path(checkpoint_file).read_text("utf-8") if checkpoint_file else None
    with user_errors():
        try:
            click.echo(f"{month}: 台帳を検証して月次レビューを作成中 verifying and reviewing …", err=True)
            policy = load_policy(policy_file) if policy_file else None
            rendered = render_report(db, month, checkpoint=note, policy=policy)
        except (CheckError, ReportError) as exc:
            raise click.ClickException(str(exc)) from exc
        Path(out).write_text(rendered.html, encoding="utf-8")
        cp = rendered.review.checkpoint
        verified = rendered.review.verification
        click.echo(
            f"report: {out}  (checkpoint {cp['origin']} size {cp['size']},"
            f" notebook sha256 {rendered.notebook_sha256[:16]}…)"
        )
        if verified is not None and not verified.ok:
            raise click.ClickException(
                f"the ledger does NOT verify: {verified.summary()} (the report says so too)"
            )
        if pdf:
            try:
                html_to_pdf(Path(out), Path(pdf))
            except ReportError as exc:
                raise click.ClickException(f"PDF: {exc}") from exc
            click.echo(f"pdf: {pdf}")
        if not deliverables_dir:
            return
        deliverables = all_deliverables(rendered.review)
        target = open_ledger(db, key, signing=True) if (store_path or submit) else None
        if store_path:
            from dialer_core.datastore import DataStore, DataStoreError

            assert target is not None and by is not None

            def log_view(data: dict[str, Any]) -> None:
                moment = now()
                target.append([Submission(envelope("access.viewed", by, data, moment))], now=moment)

            with DataStore(store_path) as store:

                def lookup(ref: str) -> str:
                    try:
                        return store.read_case(ref, person=by, purpose="report", log=log_view).case_number
                    except DataStoreError:
                        return "（削除済み destroyed）"

                fill_case_numbers(deliverables, lookup)
        else:
            click.echo(
                "注意: 案件番号は「未取得」のままです（--store と --by で市の案件番号を記入します）"
                " case numbers not filled: pass --store and --by",
                err=True,
            )
        written = write_deliverables(deliverables, Path(deliverables_dir))
        for f in written:
            click.echo(f"  {f.path}  sha256 {f.sha256}")
        profile = rendered.review.result.profile
        try:
            city = write_city_report(
                rendered.review,
                deliverables,
                Path(deliverables_dir),
                addressee=addressee or (profile.addressee if profile else "") or "長岡市長 様",
                contractor=contractor or (profile.contractor if profile else ""),
                pdf=bool(pdf),
            )
        except ReportError as exc:
            raise click.ClickException(f"PDF: {exc}") from exc
        for path in city:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            written.append(WrittenFile(path, "monthly", month, digest))
            click.echo(f"  {path}  月次業務報告書 monthly report to the city  sha256 {digest}")
        if submit:
            assert target is not None and by is not None
            moment = now()
            events = [
                envelope(
                    "report.submitted",
                    by,
                    {"kind": f.kind, "covers": f.covers, "sha256": f.sha256, "to": to},
                    moment,
                )
                for f in written
            ]
            appended = target.append([Submission(e) for e in events], now=moment)
            click.echo(f"report.submitted: entries {appended[0].index}..{appended[-1].index}")
