"""What every `kansa` command shares: the clock at the edge, one-line errors, key options."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from ledger import (
    CheckpointError,
    KeyFileError,
    Ledger,
    LedgerError,
    LedgerReader,
    NoteError,
    ProofError,
)
from ledger.commands import (
    LineError,
    default_key_path,
)
from ledger.policy import PolicyError
from ledger.receipt import ReceiptError
from ledger.tiles import TileError
from ledger.witness import WitnessError

EXPECTED = (
    LedgerError,
    KeyFileError,
    NoteError,
    CheckpointError,
    ProofError,
    LineError,
    WitnessError,
    PolicyError,
    TileError,
    ReceiptError,
    OSError,
    sqlite3.Error,
    UnicodeError,  # a file that is not text where text was expected
)

# Exit codes of the commands that check something (docs/verification.md): 0 all holds,
# 1 it does not hold, 2 it could not be checked (the reports' exit_code says which).
EXIT_COULD_NOT_CHECK = 2


class CouldNotCheck(click.ClickException):
    """A checking command could not check at all (missing, unreadable, not a ledger): exit 2."""

    exit_code = EXIT_COULD_NOT_CHECK

    def format_message(self) -> str:
        return f"could not check: {self.message}"


def now() -> datetime:
    """The wall clock, read here at the edge and passed inward."""
    return datetime.now(UTC)


start_at_option = click.option(
    "--start-at",
    default=None,
    help="Rehearsal: the clock starts at this RFC 3339 time (with its offset) and runs at the wall's pace.",
)


def clock_from(start_at: str | None) -> Callable[[], datetime]:
    """The wall clock, or a rehearsal's clock from `--start-at` (one clear line if it is not a time)."""
    from contract.calendar import running_clock

    if start_at is None:
        return now
    try:
        return running_clock(datetime.fromisoformat(start_at))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--start-at") from exc


@contextmanager
def user_errors() -> Iterator[None]:
    """Expected failures reach the user as one clear line, never a traceback."""
    try:
        yield
    except EXPECTED as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def could_not_check() -> Iterator[None]:
    """For checking commands: expected failures are one line and exit 2."""
    try:
        yield
    except EXPECTED as exc:
        raise CouldNotCheck(str(exc)) from exc


def read_ledger(db: str) -> LedgerReader:
    """The ledger for a command that only reads (no key, no writer state)."""
    return LedgerReader.open(db)


def open_ledger(db: str, key: str | None = None, *, signing: bool = False) -> Ledger:
    key_path = key if key is not None else (str(default_key_path(db)) if signing else None)
    return Ledger.open(db, key_path=key_path)


key_option = click.option(
    "--key",
    "key",
    type=click.Path(dir_okay=False),
    envvar="KANSA_LEDGER_KEY",
    help="The ledger's signing key file (default: DB.key beside the database).",
)


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr when it is a terminal; nothing in scripts."""
    if not sys.stderr.isatty():
        yield None
        return
    bar: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label=label, file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        yield update
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


def at_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--at",
        default=None,
        help=f"When {what}: an RFC 3339 time with its offset (default: now). A rehearsal gives a time"
        " before its --start-at.",
    )


def moment_of(at: str | None) -> datetime:
    """`--at` as a time with an offset, or the wall clock; anything else is one usage line."""
    if at is None:
        return now()
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise click.BadParameter(f"{at!r} is not an RFC 3339 time with its offset", param_hint="--at")
    return moment


def ledger_or_print() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--ledger DB` (append there, signed with its key) or `--print` (the event lines, for
    `kansa ledger append` or a service); one of the two."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        f = key_option(f)
        f = click.option(
            "--print", "print_only", is_flag=True, help="Print the event lines instead of appending them."
        )(f)
        return click.option(
            "--ledger",
            "db",
            default=None,
            type=click.Path(exists=True, dir_okay=False),
            help="The ledger to append to, signed with its key.",
        )(f)

    return decorate


def record(events: list[dict[str, Any]], db: str | None, key: str | None, print_only: bool) -> None:
    """Appends the events to the ledger (one line each: type and entry index), or prints them.

    Printed events are checked against the ledger's vocabulary too, so a bad line is refused here."""
    import json

    from ledger import AppendError, EventError, Submission, load_vocabulary

    if print_only == (db is not None):
        raise click.UsageError("give either --ledger DB or --print")
    with user_errors():
        if db is None:
            vocabulary = load_vocabulary()
            for event in events:
                try:
                    vocabulary.validate(event)
                except EventError as exc:
                    raise click.ClickException(f"{event['type']}: {exc}") from exc
                click.echo(json.dumps(event, ensure_ascii=False))
            return
        target = open_ledger(db, key, signing=True)
        try:
            appended = target.append([Submission(e) for e in events], now=now())
        except AppendError as exc:
            raise click.ClickException(f"{exc}; nothing was appended") from exc
        finally:
            target.close()
        for event, entry in zip(events, appended, strict=True):
            click.echo(
                f"{event['type']} {event['data'].get('person', '')}".rstrip() + f": entry {entry.index}"
            )
