"""`kansa campaign`: a month's calling days and outgoing lines (docs/setup.md, step 5)."""

from __future__ import annotations

import re
from datetime import date

import click

from ledger.event import envelope

from ._common import at_option, ledger_or_print, moment_of, read_ledger, record, user_errors

by_option = click.option(
    "--by",
    default="system",
    show_default=True,
    help="Who records it (the event's actor): `system` (the ledger's key) or the manager's id.",
)
month_option = click.option("--month", required=True, help="The campaign month, YYYY-MM.")


def _month(month: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise click.BadParameter(f"{month!r} is not a month (YYYY-MM)", param_hint="--month")
    return month


def _days(values: tuple[str, ...], param: str) -> tuple[date, ...]:
    try:
        return tuple(date.fromisoformat(v) for v in values)
    except ValueError as exc:
        raise click.BadParameter(f"{exc} (days are YYYY-MM-DD)", param_hint=param) from exc


def _plan(
    contract: str, month: str, days: tuple[date, ...], excluded: tuple[date, ...]
) -> tuple[list[date], tuple[date, ...]]:
    """The month's calling days: `days` as given, else the profile's plan (plan_days); refused
    with the reasons when the contract's attempts cannot fit (check_feasible)."""
    from contract.profile import ProfileError, load_profile
    from dialer_core.campaign import Campaign, CampaignError, check_feasible, plan_days

    outside = [d for d in days + excluded if d.strftime("%Y-%m") != month]
    if outside:
        raise click.ClickException(f"{outside[0].isoformat()} is not in {month}")
    try:
        profile = load_profile(contract)
        if days:
            campaign = Campaign(month, tuple(sorted(set(days))), excluded)
            check_feasible(profile, campaign)
        else:
            campaign = plan_days(profile, month, excluded=excluded)
    except ProfileError as exc:
        raise click.ClickException(str(exc)) from exc
    except (CampaignError, IndexError) as exc:
        raise click.ClickException(f"no calling days for {month}: {exc}") from exc
    return campaign.calling_days(), excluded


@click.group()
def campaign() -> None:
    """A month's calling days (campaign.scheduled) and outgoing lines (callerid.registered)."""


@campaign.command("plan")
@click.option("--contract", required=True, help="The contract profile id (or a .toml path).")
@month_option
@click.option("--exclude", multiple=True, help="A day the city said not to call (repeatable), YYYY-MM-DD.")
def campaign_plan(contract: str, month: str, exclude: tuple[str, ...]) -> None:
    """Print the month's calling days from the contract's profile, one a line."""
    days, _ = _plan(contract, _month(month), (), _days(exclude, "--exclude"))
    for day in days:
        click.echo(day.isoformat())


@campaign.command("schedule")
@month_option
@click.option("--day", "day_list", multiple=True, help="A calling day (repeatable; default: the plan).")
@click.option("--exclude", multiple=True, help="A day the city said not to call (repeatable), YYYY-MM-DD.")
@click.option("--contract", default=None, help="The contract profile (default: the ledger's).")
@by_option
@at_option("the schedule was made")
@ledger_or_print()
def campaign_schedule(
    month: str,
    day_list: tuple[str, ...],
    exclude: tuple[str, ...],
    contract: str | None,
    by: str,
    at: str | None,
    db: str | None,
    print_only: bool,
    key: str | None,
) -> None:
    """Append campaign.scheduled: the month's calling days (`kansa campaign plan`'s, or --day's)."""
    if contract is None:
        if db is None:
            raise click.UsageError("give --contract (or --ledger: its contract)")
        with user_errors(), read_ledger(db) as reader:
            contract = reader.contract
    excluded = _days(exclude, "--exclude")
    days, _ = _plan(contract, _month(month), _days(day_list, "--day"), excluded)
    data = {
        "month": month,
        "days": [d.isoformat() for d in days],
        "excluded": [d.isoformat() for d in excluded],
    }
    record([envelope("campaign.scheduled", by, data, moment_of(at))], db, key, print_only)


@campaign.command("line")
@click.argument("numbers", nargs=-1, required=True)
@click.option(
    "--kind",
    type=click.Choice(("landline", "tollfree", "mobile", "ip")),
    default="landline",
    show_default=True,
    help="The line's kind.",
)
@by_option
@at_option("the line was registered")
@ledger_or_print()
def campaign_line(
    numbers: tuple[str, ...],
    kind: str,
    by: str,
    at: str | None,
    db: str | None,
    print_only: bool,
    key: str | None,
) -> None:
    """Append callerid.registered for each of the centre's outgoing NUMBERS (shown to residents)."""
    for number in numbers:
        if not re.fullmatch(r"\+?[0-9][0-9-]{5,19}", number):
            raise click.BadParameter(
                f"{number!r} is not a phone number (digits and hyphens)", param_hint="NUMBERS"
            )
    moment = moment_of(at)
    events = [envelope("callerid.registered", by, {"number": n, "kind": kind}, moment) for n in numbers]
    record(events, db, key, print_only)
