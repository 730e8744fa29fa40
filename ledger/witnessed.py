"""Verification by policy: is the ledger's history the one its witnesses cosigned?

Two questions, after `verify` has checked the file itself:
1. Trust: which stored checkpoints carry the policy's quorum of cosignatures
   (the newest row per size is read; it carries every cosignature received).
   The largest such checkpoint is *trusted*; larger ones without the quorum are
   *waiting* for cosignatures, which is not a failure; no trusted checkpoint at
   all (under a quorum other than `none`) is.
2. Memory: each policy witness with a URL is asked for the latest checkpoint it
   cosigned for this origin (GET <url>/<hex SHA-256 of the origin>/checkpoint).
   The ledger must contain it: same root at that size. A witness that
   remembers a size the ledger no longer has, or another root at that size,
   proves entries were lost or rewritten after it cosigned: a failure naming
   the witness, the size and both roots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .checkpoint import CheckpointError
from .merkle import ProofError
from .note import NoteError, b64encode
from .policy import Policy
from .reader import LedgerError, LedgerReader
from .witness import origin_hash

Fetch = Callable[[str], str | None]  # URL -> body, None for 404; raises OSError/httpx.HTTPError


def fetch_text(url: str) -> str | None:
    answer = httpx.get(url, timeout=10)
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    return answer.text


@dataclass
class PolicyReport:
    exit_code: int = 0  # 0 holds, 1 fails verification, 2 could not check
    trusted_size: int | None = None
    trusted_cosigners: tuple[str, ...] = ()
    waiting: list[int] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def fail(self, code: int, line: str) -> None:
        self.exit_code = 1 if 1 in (code, self.exit_code) else 2
        self.lines.append(("FAILED: " if code == 1 else "COULD NOT CHECK: ") + line)


def verify_policy(path: Path | str, policy: Policy, *, fetch: Fetch | None = fetch_text) -> PolicyReport:
    """Checks the ledger at `path` against `policy`; `fetch=None` skips asking the witnesses."""
    report = PolicyReport()
    try:
        ledger = LedgerReader.open(path)
    except LedgerError as exc:
        report.fail(2, str(exc))
        return report
    with ledger:
        log = policy.log_for(ledger.origin)
        if log is None or log.key != ledger.verifier:
            report.fail(1, f"the policy has no log key for {ledger.origin} matching the ledger's")
            return report
        _trust(ledger, policy, report)
        if fetch is not None:
            for witness in policy.witnesses.values():
                if witness.url is not None:
                    _ask(ledger, policy, witness.name, witness.url, fetch, report)
    return report


def _trust(ledger: LedgerReader, policy: Policy, report: PolicyReport) -> None:
    newest = {c.size: c for c in ledger.checkpoints()}  # later rows win
    for size in sorted(newest):
        try:
            cosigned = policy.check(newest[size].note)
        except (NoteError, CheckpointError) as exc:
            report.fail(1, f"stored checkpoint of size {size}: {exc}")
            return
        if cosigned.met:
            report.trusted_size, report.trusted_cosigners = size, cosigned.cosigners
            report.waiting = []
        else:
            report.waiting.append(size)
    quorum = policy.describe_quorum()
    if report.trusted_size is None:
        report.fail(1, f"no checkpoint carries the policy's quorum of cosignatures ({quorum})")
        return
    who = ", ".join(report.trusted_cosigners) or "no witness needed"
    report.lines.append(
        f"trusted: checkpoint of size {report.trusted_size}, cosigned by {who} (quorum {quorum})"
    )
    if report.waiting:
        sizes = ", ".join(str(s) for s in report.waiting)
        report.lines.append(f"waiting for cosignatures: checkpoint(s) of size {sizes}")


def _ask(
    ledger: LedgerReader, policy: Policy, name: str, url: str, fetch: Fetch, report: PolicyReport
) -> None:
    where = f"{url.rstrip('/')}/{origin_hash(ledger.origin)}/checkpoint"
    try:
        note = fetch(where)
    except (OSError, httpx.HTTPError) as exc:
        # Only reachable witnesses can be held to their word; say who could not be asked.
        report.lines.append(f"witness {name} could not be asked ({where}): {exc}")
        return
    if note is None:
        report.lines.append(f"witness {name} has cosigned no checkpoint of this ledger yet")
        return
    try:
        cosigned = policy.check(note)
    except (NoteError, CheckpointError) as exc:
        report.fail(2, f"witness {name} sent a checkpoint that does not verify: {exc}")
        return
    if name not in cosigned.cosigners:
        report.fail(2, f"witness {name} sent a checkpoint without its own cosignature")
        return
    remembered = cosigned.checkpoint
    root = b64encode(remembered.root)
    if remembered.size > ledger.size:
        report.fail(
            1,
            f"witness {name} cosigned size {remembered.size} with root {root}, but the ledger has only"
            f" {ledger.size} entries: entries acknowledged before that checkpoint are gone",
        )
        return
    try:
        ours = ledger.root(remembered.size)
    except ProofError as exc:
        report.fail(1, f"witness {name} cosigned size {remembered.size}; the ledger cannot compute it: {exc}")
        return
    if ours != remembered.root:
        report.fail(
            1,
            f"witness {name} cosigned size {remembered.size} with root {root}, but the ledger's root at"
            f" that size is {b64encode(ours)}: its history was rewritten",
        )
        return
    report.lines.append(
        f"witness {name}: its latest cosigned checkpoint (size {remembered.size}) is in the ledger"
    )


def witness_status(path: Path | str, policy: Policy, *, size: int | None = None) -> dict[str, Any]:
    """What the status page and the report footer say about cosignatures, as plain data.

    For the checkpoint of `size` (default: the latest), in its newest row: who
    cosigned it (policy names) and whether that meets the quorum; and, over all
    stored checkpoints, the largest trusted size and those still waiting. The
    witnesses themselves are not asked (that is `verify --policy`).
    """
    report = verify_policy(path, policy, fetch=None)
    status: dict[str, Any] = {
        "quorum": policy.describe_quorum(),
        "size": None,
        "cosigners": [],
        "met": False,
        "trusted_size": report.trusted_size,
        "waiting": report.waiting,
        "problem": next((line for line in report.lines if line.startswith(("FAILED", "COULD NOT"))), None),
    }
    with LedgerReader.open(path) as ledger:
        chosen = ledger.latest_checkpoint(max_size=size)
    if chosen is not None and size is not None and chosen.size != size:
        chosen = None
    if chosen is not None:
        status["size"] = chosen.size
        try:
            cosigned = policy.check(chosen.note)
        except (NoteError, CheckpointError) as exc:
            status["problem"] = status["problem"] or f"checkpoint of size {chosen.size}: {exc}"
        else:
            status["cosigners"], status["met"] = list(cosigned.cosigners), cosigned.met
    return status
