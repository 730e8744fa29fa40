"""`kansa demo`: simulated months of a contract through the product."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ._common import now, user_errors


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False), default="demo-out", show_default=True)
@click.option(
    "--contract",
    default="nagaoka-nhi-2026",
    show_default=True,
    type=click.Choice(["nagaoka-nhi-2026", "nagaoka-tax-2023"]),
    help="The contract simulated.",
)
@click.option(
    "--months",
    default=None,
    help="YYYY-MM..YYYY-MM or a list (default: the contract's first three calling months).",
)
@click.option("--seed", default=1, show_default=True, type=int, help="The simulator's seed.")
@click.option("--scale", default=1.0, show_default=True, type=float, help="Share of the contract's volumes.")
def demo(out: str, contract: str, months: str | None, seed: int, scale: float) -> None:
    """Simulate months of a contract into a ledger, check them, and print a summary."""
    from compliance import load_profile
    from kansa.demo import DEFAULT_MONTHS, parse_months, run_demo

    chosen = parse_months(months or DEFAULT_MONTHS[contract])
    days = len(chosen) * load_profile(contract).campaign_days
    with user_errors(), click.progressbar(length=days, label="simulating", file=sys.stderr) as bar:

        def progress(label: str) -> None:  # called once per calling day
            bar.label = label
            bar.update(1)

        summary: list[str] = []
        try:
            run_demo(
                Path(out),
                now=now(),
                echo=summary.append,
                months=chosen,
                seed=seed,
                scale=scale,
                progress=progress,
                contract=contract,
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    for line in summary:  # after the progress bar has closed its line
        click.echo(line)
