"""`kansa staff`: the staff list's events (docs/setup.md, step 4; later ones come from the desk)."""

from __future__ import annotations

import hashlib

import click

from contract.profile import ROLES
from ledger.event import envelope

from ._common import at_option, ledger_or_print, moment_of, record, user_errors

actor_option = click.option(
    "--actor",
    default="system",
    show_default=True,
    help="Who writes the event: `system` (the ledger's key) for the bootstrap, else the manager's id.",
)


@click.group()
def staff() -> None:
    """The staff list: designations, training and pledges (staff.* events)."""


@staff.command("designate")
@click.argument("person")
@click.option("--role", required=True, type=click.Choice(ROLES), help="The role designated.")
@click.option("--by", required=True, help="The city's person who designated them, e.g. city01.")
@actor_option
@at_option("they were designated")
@ledger_or_print()
def staff_designate(
    person: str,
    role: str,
    by: str,
    actor: str,
    at: str | None,
    db: str | None,
    print_only: bool,
    key: str | None,
) -> None:
    """Append staff.designated: PERSON is designated in ROLE by the city's BY."""
    event = envelope("staff.designated", actor, {"person": person, "role": role, "by": by}, moment_of(at))
    record([event], db, key, print_only)


@staff.command("trained")
@click.argument("person")
@click.option(
    "--course",
    "courses",
    required=True,
    multiple=True,
    help="A course completed (repeatable): laws_manual, privacy, phone (N §13(1)).",
)
@click.option("--by", default="system", show_default=True, help="Who gave or confirmed the training.")
@actor_option
@at_option("the training was completed")
@ledger_or_print()
def staff_trained(
    person: str,
    courses: tuple[str, ...],
    by: str,
    actor: str,
    at: str | None,
    db: str | None,
    print_only: bool,
    key: str | None,
) -> None:
    """Append one staff.trained per --course for PERSON."""
    moment = moment_of(at)
    events = [
        envelope("staff.trained", actor, {"person": person, "course": c, "by": by}, moment) for c in courses
    ]
    record(events, db, key, print_only)


@staff.command("pledged")
@click.argument("person")
@click.option(
    "--scan",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The signed pledge's scan (誓約書); its SHA-256 is recorded, not the file.",
)
@click.option("--to", "to", required=True, help="The city's person the pledge was handed to.")
@actor_option
@at_option("the pledge was handed over")
@ledger_or_print()
def staff_pledged(
    person: str,
    scan: str,
    to: str,
    actor: str,
    at: str | None,
    db: str | None,
    print_only: bool,
    key: str | None,
) -> None:
    """Append staff.pledged for PERSON with the SHA-256 of the pledge's scan."""
    with user_errors(), open(scan, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    event = envelope("staff.pledged", actor, {"person": person, "sha256": digest, "to": to}, moment_of(at))
    record([event], db, key, print_only)
