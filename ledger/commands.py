"""The public functions behind `kansa ledger ...`: each command is one call here.

The output formats are a stable interface (docs/verification.md):
outside tools script against them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .keyfile import write_key
from .note import Signer, b64encode
from .reader import LedgerReader
from .store import Appended, AppendError, Ledger, LedgerError, Submission
from .wire import MAX_BODY_BYTES, is_signed, parse_signed


def default_key_path(db: Path | str) -> Path:
    """The ledger's signing key lives beside the database file, never inside it."""
    return Path(f"{db}.key")


def backup_ledger(db: Path | str, dest: Path | str) -> Path:
    """A consistent copy of a ledger, even while it is being written, as one file (no -wal):
    SQLite's online backup API, then the copy's journal switched off WAL. Verify it after."""
    import sqlite3

    db, dest = Path(db), Path(dest)
    if dest.exists():
        raise LedgerError(f"{dest} already exists")
    LedgerReader.open(db).close()  # a ledger, not just any SQLite file
    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    target = sqlite3.connect(str(dest))
    try:
        source.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")
    except BaseException:
        target.close()
        dest.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    target.close()
    return dest


def init_ledger(
    db: Path | str, *, origin: str, contract: str, key_path: Path | str | None, now: datetime
) -> tuple[Ledger, Path]:
    db = Path(db)
    key = Path(key_path) if key_path is not None else default_key_path(db)
    if db.exists():
        raise LedgerError(f"{db} already exists")
    signer = Signer.generate(origin)
    write_key(key, signer)
    ledger = Ledger.create(db, origin=origin, signer=signer, contract=contract, now=now)
    return ledger, key


@dataclass(frozen=True)
class LineError(Exception):
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def parse_submission(value: Any) -> Submission:
    """A line is an envelope (signed here with the ledger's key) or a ledger.wire submission."""
    return parse_signed(value) if is_signed(value) else Submission(value)


def read_submissions(lines: Iterable[str]) -> tuple[list[Submission], list[int]]:
    """Parses JSON Lines; blank lines are skipped. Returns submissions and their line numbers."""
    submissions, numbers = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        size = len(line.encode("utf-8", "surrogatepass"))  # bytes, as the service counts a body
        if size > MAX_BODY_BYTES:
            raise LineError(
                number, f"the line is {size:,} bytes; a submission holds at most {MAX_BODY_BYTES:,} bytes"
            )
        try:
            submissions.append(parse_submission(json.loads(line)))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise LineError(number, f"not a valid event line: {exc}") from exc
        except RecursionError as exc:  # as the service answers such a body (422)
            raise LineError(number, "the line is nested too deeply to parse") from exc
        numbers.append(number)
    return submissions, numbers


def append_lines(ledger: Ledger, lines: Iterable[str], *, now: datetime) -> list[Appended]:
    """All or nothing: a bad line raises LineError and nothing of the file is appended."""
    submissions, numbers = read_submissions(lines)
    try:
        return ledger.append(submissions, now=now)
    except AppendError as exc:
        raise LineError(numbers[exc.position], str(exc)) from exc


def export_lines(ledger: LedgerReader, start: int = 0, stop: int | None = None) -> Iterator[str]:
    for index, leaf, digest in ledger.leaves(start, stop):
        yield json.dumps(
            {"index": index, "leaf": b64encode(leaf), "leaf_hash": b64encode(digest)},
            separators=(",", ":"),
        )


def inclusion_json(ledger: LedgerReader, index: int, size: int) -> dict[str, Any]:
    proof = ledger.inclusion_proof(index, size)
    return {"index": index, "size": size, "hashes": [b64encode(h) for h in proof]}


def consistency_json(ledger: LedgerReader, old: int, new: int) -> dict[str, Any]:
    proof = ledger.consistency_proof(old, new)
    return {"old": old, "new": new, "hashes": [b64encode(h) for h in proof]}
