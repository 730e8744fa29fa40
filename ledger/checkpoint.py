"""C2SP tlog-checkpoint bodies: origin, tree size and root hash, one per line."""

from __future__ import annotations

from dataclasses import dataclass

from .merkle import HASH_SIZE
from .note import NoteError, Signer, Verifier, b64decode, b64encode, open_note, sign_note


class CheckpointError(ValueError):
    """A checkpoint that is malformed or whose signature does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    @property
    def body(self) -> str:
        lines = [self.origin, str(self.size), b64encode(self.root), *self.extensions]
        return "\n".join(lines) + "\n"

    def sign(self, signer: Signer) -> str:
        return sign_note(self.body, signer)


def parse_decimal(text: str) -> int:
    """A size or index as C2SP texts write it: ASCII digits, no sign, no leading zero.
    ValueError otherwise (`str.isdigit` alone also takes digits such as '²' that int() refuses)."""
    if not text.isascii() or not text.isdigit() or (text != "0" and text[0] == "0"):
        raise ValueError(f"bad decimal {text!r}")
    return int(text)


def parse_body(text: str) -> Checkpoint:
    lines = text.split("\n")
    if lines[-1] != "" or len(lines) < 4:
        raise CheckpointError("a checkpoint has at least three lines, each ending in a newline")
    origin, size_text, root_text, *extensions = lines[:-1]
    if not origin:
        raise CheckpointError("empty origin line")
    try:
        size = parse_decimal(size_text)
    except ValueError:
        raise CheckpointError(f"bad tree size {size_text!r}") from None
    try:
        root = b64decode(root_text)
    except NoteError as exc:
        raise CheckpointError(f"bad root hash: {exc}") from exc
    if len(root) != HASH_SIZE:
        raise CheckpointError("the root hash must be 32 bytes")
    if any(not line for line in extensions):
        raise CheckpointError("empty extension line")
    return Checkpoint(origin, size, root, tuple(extensions))


def open_checkpoint(note: str, verifier: Verifier) -> Checkpoint:
    """Verifies a signed checkpoint note with `verifier`, whose name must be the origin."""
    try:
        opened = open_note(note, verifier)
    except NoteError as exc:
        raise CheckpointError(str(exc)) from exc
    checkpoint = parse_body(opened.text)
    if checkpoint.origin != verifier.name:
        raise CheckpointError(
            f"checkpoint origin {checkpoint.origin!r} is not the key's name {verifier.name!r}"
        )
    return checkpoint
