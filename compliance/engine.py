"""`kansa check`: the contract's rules and KPIs over a ledger, as of a signed checkpoint.

Compliance is a pure function of (entries up to a checkpoint, profile, month).
It never reads the wall clock: "now" is the time the ledger received the
checkpoint's last entry, and a deadline not yet passed then is pending.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from contract.calendar import TOKYO, tokyo
from ledger import Checkpoint, CheckpointError, LedgerError, LedgerReader, ReadError, open_checkpoint

from .context import Context
from .kpis import compute_kpis
from .model import SEVERITIES, Entry, Finding
from .profiles import Profile, load_profile
from .rules import RULES
from .state import derive


class CheckError(Exception):
    """A ledger or checkpoint that cannot be checked (one clear line for the user)."""


def evaluate(
    entries: list[Entry], profile: Profile, month: str, as_of: datetime
) -> tuple[list[Finding], dict[str, Any]]:
    """Findings and KPIs of `month`: the pure core, used directly by tests."""
    return evaluate_in(Context(profile, derive(entries), month, tokyo(as_of)))


def evaluate_in(ctx: Context) -> tuple[list[Finding], dict[str, Any]]:
    findings: list[Finding] = []
    for rule_id in sorted(ctx.profile.clauses):
        findings.extend(RULES[rule_id].check(ctx))
    return sorted(set(findings)), compute_kpis(ctx)


# -- reading a ledger up to a checkpoint ------------------------------------------


def read_checkpointed(db: Path, note: str | None) -> tuple[Checkpoint, str, list[Entry], dict[str, str]]:
    """The checkpoint (latest stored, or `note`), its signed note, and its entries, checked against its root."""
    entries: list[Entry] = []
    try:
        with LedgerReader.open(db) as reader:
            if note is None:
                latest = reader.latest_checkpoint()
                if latest is None:
                    raise CheckError(
                        "the ledger has no signed checkpoint yet: sign one with `kansa ledger checkpoint`"
                    )
                note = latest.note
            try:
                checkpoint = open_checkpoint(note, reader.verifier)
            except CheckpointError as exc:
                raise CheckError(f"checkpoint: {exc}") from exc
            for idx, leaf in reader.checked_leaves(checkpoint.size, checkpoint.root):
                value = orjson.loads(leaf)
                entries.append(Entry.from_event(idx, value["event"], value["received"], value["sig"]["key"]))
            meta = dict(reader.meta)
    except ReadError as exc:
        raise CheckError(f"{exc}: run `kansa ledger verify`") from exc
    except LedgerError as exc:
        raise CheckError(str(exc)) from exc
    return checkpoint, note, entries, meta


@dataclass(frozen=True)
class CheckResult:
    contract: str
    month: str
    checkpoint: Checkpoint
    as_of: datetime | None
    findings: list[Finding]
    kpis: dict[str, Any]
    profile: Profile | None = None  # the profile judged by (not part of the JSON)

    def due_at_least(self, severity: str) -> bool:
        """Whether a finding of `severity` or worse (SEVERITIES, worst first) is due, not pending:
        what `kansa check --fail-on` exits 1 on."""
        worse = SEVERITIES[: SEVERITIES.index(severity) + 1]
        return any(f.severity in worse and not f.pending for f in self.findings)

    def as_json(self) -> dict[str, Any]:
        cp = self.checkpoint
        return {
            "contract": self.contract,
            "month": self.month,
            "checkpoint": {
                "origin": cp.origin,
                "size": cp.size,
                "root": _b64(cp.root),
                "as_of": self.as_of.isoformat() if self.as_of else None,
            },
            "findings": [f.as_json() for f in self.findings],
            "kpis": self.kpis,
        }


def _b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode()


def check_ledger(
    db: Path | str, month: str, *, checkpoint: str | None = None, profile: str | None = None
) -> CheckResult:
    result, _ctx, _note = check_with_context(db, month, checkpoint=checkpoint, profile=profile)
    return result


def check_with_context(
    db: Path | str, month: str, *, checkpoint: str | None = None, profile: str | None = None
) -> tuple[CheckResult, Context, str]:
    """`check_ledger`, also handing back what it judged (the derived state, the profile)
    and the checkpoint's signed note: the monthly review and the reports read these."""
    db = Path(db)
    if (
        len(month) != 7
        or month[4] != "-"
        or not (month[:4] + month[5:]).isdigit()
        or not 1 <= int(month[5:]) <= 12
    ):
        raise CheckError(f"--month must be YYYY-MM, got {month!r}")
    with _gc_paused():
        return _check(db, month, checkpoint, profile)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The check builds hundreds of thousands of long-lived objects and frees none of
    them until it ends; the cyclic collector would rescan them all again and again
    (time grew faster than the ledger). Reference counting still frees what dies."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check(
    db: Path, month: str, checkpoint: str | None, profile: str | None
) -> tuple[CheckResult, Context, str]:
    cp, note, entries, meta = read_checkpointed(db, checkpoint)
    prof = load_profile(profile or meta.get("contract") or "")
    # "Now" is when the ledger received the checkpoint's last entry: never the wall clock.
    as_of = entries[-1].received_at if entries else datetime(1970, 1, 1, tzinfo=TOKYO)
    ctx = Context(prof, derive(entries), month, tokyo(as_of))
    findings, kpis = evaluate_in(ctx)
    result = CheckResult(
        prof.id, month, cp, entries[-1].received_at if entries else None, findings, kpis, prof
    )
    return result, ctx, note


def to_json(result: CheckResult) -> str:
    return json.dumps(result.as_json(), ensure_ascii=False, indent=1, sort_keys=True) + "\n"
