"""Receipts: C2SP tlog-proof files an auditor keeps and checks offline.

    c2sp.org/tlog-proof@v1
    extra <base64 of the entry's leaf>
    index <i>
    <inclusion proof, one base64 hash a line, leaf's sibling first>

    <the cosigned checkpoint, verbatim>

The format leaves the entry itself to the application. A Kansa receipt carries
it in the `extra` line: the leaf bytes, exactly what the leaf hash covers, so
the receipt is checked alone. `extra` is not authenticated by itself; it is
trusted only because its hash is proved to be at `index` in a checkpoint that
the policy's log signed and its quorum of witnesses cosigned. The leaf also
names its own index, which must agree with the `index` line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .checkpoint import CheckpointError, parse_decimal
from .merkle import HASH_SIZE, ProofError, leaf_hash, verify_inclusion
from .note import NoteError, b64decode, b64encode
from .policy import Policy
from .reader import LedgerReader

HEADER = "c2sp.org/tlog-proof@v1"


class ReceiptError(ValueError):
    """A receipt that is malformed or does not verify."""


@dataclass(frozen=True)
class Receipt:
    index: int
    proof: list[bytes]
    note: str
    extra: bytes | None = None

    @property
    def text(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines += [b64encode(h) for h in self.proof]
        return "\n".join(lines) + "\n\n" + self.note


@dataclass(frozen=True)
class Checked:
    index: int
    size: int
    cosigners: tuple[str, ...]
    leaf: bytes


def make_receipt(ledger: LedgerReader, index: int) -> Receipt:
    """A receipt for entry `index` against the ledger's latest checkpoint (with its cosignatures)."""
    latest = ledger.latest_checkpoint()
    if latest is None or index >= latest.size:
        covered = 0 if latest is None else latest.size
        raise ReceiptError(f"entry {index} is not in a checkpoint yet (the latest covers {covered} entries)")
    return Receipt(index, ledger.inclusion_proof(index, latest.size), latest.note, ledger.leaf(index))


def parse_receipt(text: str) -> Receipt:
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise ReceiptError("no blank line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise ReceiptError(f"the first line must be {HEADER}")
    rest = lines[1:]
    extra = None
    try:
        if rest and rest[0].startswith("extra "):
            extra = b64decode(rest[0][len("extra ") :])
            rest = rest[1:]
        if not rest or not rest[0].startswith("index "):
            raise ReceiptError("no index line")
        index_text = rest[0][len("index ") :]
        try:
            index = parse_decimal(index_text)
        except ValueError:
            raise ReceiptError(f"bad index {index_text!r}") from None
        proof = [b64decode(line) for line in rest[1:]]
    except NoteError as exc:
        raise ReceiptError(str(exc)) from exc
    if any(len(h) != HASH_SIZE for h in proof):
        raise ReceiptError("a proof line is one base64 SHA-256 hash")
    return Receipt(index, proof, note, extra)


def verify_receipt(text: str, policy: Policy) -> Checked:
    """Checks a Kansa receipt offline against `policy`; ReceiptError says what does not hold."""
    receipt = parse_receipt(text)
    if receipt.extra is None:
        raise ReceiptError("no extra line: a Kansa receipt carries the entry's leaf there")
    try:
        leaf = json.loads(receipt.extra)
    except (ValueError, RecursionError) as exc:  # a hostile line may nest past the parser's depth
        raise ReceiptError(f"the extra line is not a ledger leaf: {exc}") from exc
    if not isinstance(leaf, dict) or leaf.get("index") != receipt.index:
        raise ReceiptError(f"the leaf in the extra line is not entry {receipt.index}")
    try:
        cosigned = policy.check(receipt.note)
    except (NoteError, CheckpointError) as exc:
        raise ReceiptError(f"checkpoint: {exc}") from exc
    if not cosigned.met:
        who = ", ".join(cosigned.cosigners) or "no witness"
        raise ReceiptError(
            f"checkpoint of size {cosigned.checkpoint.size} is cosigned by {who}:"
            f" not the policy's quorum ({policy.describe_quorum()})"
        )
    checkpoint = cosigned.checkpoint
    try:
        verify_inclusion(
            receipt.index, checkpoint.size, leaf_hash(receipt.extra), receipt.proof, checkpoint.root
        )
    except ProofError as exc:
        raise ReceiptError(f"entry {receipt.index}: {exc}") from exc
    return Checked(receipt.index, checkpoint.size, cosigned.cosigners, receipt.extra)
