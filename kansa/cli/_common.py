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
