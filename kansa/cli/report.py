"""`kansa report`: the monthly review and the contract's deliverables."""

from __future__ import annotations

from pathlib import Path

import click

from ledger.policy import load_policy

from ._common import key_option, now, user_errors


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
    from kansa.report import ReportError, ReportRequest, make_report

    if (store_path or submit) and not by:
        raise click.UsageError("--store and --submit need --by (who makes the report)")
    if submit and not deliverables_dir:
        raise click.UsageError("--submit needs --deliverables DIR")
    request = ReportRequest(
        Path(db),
        month,
        Path(out),
        checkpoint=Path(checkpoint_file).read_text("utf-8") if checkpoint_file else None,
        policy=load_policy(policy_file) if policy_file else None,
        pdf=Path(pdf) if pdf else None,
        deliverables=Path(deliverables_dir) if deliverables_dir else None,
        store=Path(store_path) if store_path else None,
        by=by,
        submit=submit,
        to=to,
        addressee=addressee,
        contractor=contractor,
        key=Path(key) if key else None,
    )
    with user_errors():
        try:
            make_report(request, now=now, echo=click.echo, note=lambda line: click.echo(line, err=True))
        except (CheckError, ReportError) as exc:
            raise click.ClickException(str(exc)) from exc
