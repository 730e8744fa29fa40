"""`kansa check`: the contract's rules and KPIs over a ledger."""

from __future__ import annotations

import sys
from typing import Any

import click

from ._common import CouldNotCheck, could_not_check


@click.command("check")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option("--month", required=True, help="YYYY-MM")
@click.option(
    "--format", "fmt", type=click.Choice(["json", "table", "csv"]), default="json", show_default=True
)
@click.option(
    "--checkpoint",
    "checkpoint",
    type=click.File("r", encoding="utf-8"),
    help="Compute from this signed checkpoint (default: the latest stored one).",
)
@click.option("--profile", default=None, help="A contract profile id or .toml file (default: the ledger's).")
@click.option(
    "--results",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write findings and KPIs for Datasette (default: DB.compliance.db beside it).",
)
@click.option(
    "--fail-on",
    "fail_on",
    type=click.Choice(["violation", "judgement"]),
    default=None,
    help="Exit 1 when a finding of this severity (judgement: or worse) is due; for scripts.",
)
def check(
    db: str,
    month: str,
    fmt: str,
    checkpoint: Any,
    profile: str | None,
    results: str | None,
    fail_on: str | None,
) -> None:
    """The contract's findings and KPIs for MONTH, as of a signed checkpoint.

    Findings are results, not errors: exit 0 whatever is found (1 with --fail-on when a
    finding of that severity is due), 2 when the ledger could not be checked.
    """
    from compliance import CheckError, ProfileError, check_ledger, to_json
    from compliance.results import default_results_path, to_csv, to_table, write_results

    with could_not_check():
        try:
            result = check_ledger(
                db, month, checkpoint=checkpoint.read() if checkpoint else None, profile=profile
            )
            write_results(results or default_results_path(db), result)
        except (CheckError, ProfileError) as exc:
            raise CouldNotCheck(str(exc)) from exc
    output = {"json": to_json, "table": to_table, "csv": to_csv}[fmt](result)
    click.echo(output, nl=False)
    if fail_on is not None and result.due_at_least(fail_on):
        sys.exit(1)
