"""C2SP tlog-cosignature `cosignature/v1` (Ed25519): a witness's timestamped signature on a checkpoint.

A cosignature is one more signed-note signature line on the checkpoint,
`— <witness name> base64(key id || timestamp || signature)`, where the key id
is SHA-256(name || "\\n" || 0x04 || public key)[:4] (0x04, not the 0x01 of a
log's own Ed25519 key, so the two kinds of signature can never be confused),
the timestamp is 8 bytes big-endian (POSIX seconds), and the Ed25519 signature
covers `cosignature/v1\\ntime <T>\\n` followed by the checkpoint body.

A witness's verifier key is a C2SP vkey with type 0x04:
`<name>+<hex key id>+base64(0x04 || public key)`; its secret key file uses the
same Go-style layout as the ledger's, `PRIVATE+KEY+<name>+<hex id>+base64(0x04 || seed)`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property

import nacl.exceptions
import nacl.signing

from .note import (
    NoteError,
    b64decode,
    b64encode,
    format_key,
    key_hash,
    split_skey,
    split_vkey,
    valid_key_name,
)

ALG_COSIGNATURE_V1 = 0x04
_SIG_PREFIX = "\u2014 "
_MAX_TIMESTAMP = 2**63 - 1


def cosigner_key_id(name: str, public_key: bytes) -> int:
    return key_hash(name, public_key, ALG_COSIGNATURE_V1)


def signed_message(body: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: a header line, a time line, then the checkpoint body."""
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode("utf-8")


@dataclass(frozen=True)
class SignatureLine:
    """One parsed signed-note signature line."""

    name: str
    key_id: int
    signature: bytes  # what follows the key id

    @property
    def text(self) -> str:
        return f"{_SIG_PREFIX}{self.name} {b64encode(struct.pack('>I', self.key_id) + self.signature)}\n"


def parse_signature_line(line: str) -> SignatureLine:
    line = line.removesuffix("\n")
    if not line.startswith(_SIG_PREFIX):
        raise NoteError(f"malformed signature line {line!r}")
    name, sep, sig_b64 = line[len(_SIG_PREFIX) :].rpartition(" ")
    if not sep or not valid_key_name(name):
        raise NoteError(f"malformed signature line {line!r}")
    raw = b64decode(sig_b64)
    if len(raw) < 5:
        raise NoteError(f"malformed signature line {line!r}")
    return SignatureLine(name, int(struct.unpack(">I", raw[:4])[0]), raw[4:])


def split_note(note: str) -> tuple[str, list[SignatureLine]]:
    """A signed note's text (with its final newline) and its signature lines."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("malformed note: no blank line before the signatures")
    return note[: split + 1], [parse_signature_line(line) for line in note[split + 2 :].splitlines()]


def add_signatures(note: str, lines: list[SignatureLine]) -> str:
    """The note with `lines` added; a line by a key that already signed replaces that key's line
    (a witness's newer cosignature supersedes its older one), so each key signs once."""
    text, merged = split_note(note)
    for line in lines:
        same = [i for i, old in enumerate(merged) if (old.name, old.key_id) == (line.name, line.key_id)]
        if same:
            merged[same[0]] = line
        else:
            merged.append(line)
    return text + "\n" + "".join(line.text for line in merged)


@dataclass(frozen=True)
class CosignerKey:
    """A witness's public key, as a verifier of cosignature/v1 lines."""

    name: str
    key_id: int
    public_key: bytes

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> CosignerKey:
        if not valid_key_name(name):
            raise NoteError(f"invalid key name {name!r}")
        if len(public_key) != 32:
            raise NoteError("an Ed25519 public key has 32 bytes")
        return cls(name, cosigner_key_id(name, public_key), public_key)

    @classmethod
    def parse(cls, vkey: str) -> CosignerKey:
        """A C2SP vkey of type 0x04 (a log's 0x01 key is refused: it is not a witness's)."""
        name, key_id, public_key = split_vkey(vkey.strip(), ALG_COSIGNATURE_V1)
        parsed = cls.from_public_key(name, public_key)
        if parsed.key_id != key_id:
            raise NoteError("witness verifier key id does not match its name and key")
        return parsed

    @property
    def vkey(self) -> str:
        return format_key(self.name, self.key_id, ALG_COSIGNATURE_V1, self.public_key)

    def matches(self, line: SignatureLine) -> bool:
        return line.name == self.name and line.key_id == self.key_id

    def verify(self, body: str, line: SignatureLine) -> int:
        """The cosignature's timestamp; NoteError unless it is this key's and verifies on `body`."""
        if not self.matches(line):
            raise NoteError(f"not a cosignature by {self.name}")
        if len(line.signature) != 8 + 64:
            raise NoteError(f"cosignature by {self.name} has the wrong length")
        (timestamp,) = struct.unpack(">Q", line.signature[:8])
        if timestamp > _MAX_TIMESTAMP:
            raise NoteError(f"cosignature by {self.name} has an impossible timestamp")
        try:
            nacl.signing.VerifyKey(self.public_key).verify(
                signed_message(body, timestamp), line.signature[8:]
            )
        except (nacl.exceptions.BadSignatureError, ValueError) as exc:
            raise NoteError(f"invalid cosignature by {self.name}") from exc
        return int(timestamp)


def cosignatures(note: str, keys: list[CosignerKey]) -> dict[str, int]:
    """Witness name -> timestamp of each known witness whose cosignature on the note verifies.

    Unknown signature lines (the log's own, other witnesses') are ignored; a line
    that claims to be a known witness's and does not verify raises NoteError,
    as signed-note says a known key's bad signature must.
    """
    text, lines = split_note(note)
    found: dict[str, int] = {}
    for line in lines:
        for key in keys:
            if key.matches(line):
                found[key.name] = key.verify(text, line)
    return found


@dataclass(frozen=True)
class Cosigner:
    """A witness's signing key."""

    name: str
    key_id: int
    seed: bytes

    @classmethod
    def generate(cls, name: str) -> Cosigner:
        return cls.from_seed(name, bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Cosigner:
        if len(seed) != 32:
            raise NoteError("an Ed25519 seed has 32 bytes")
        public = bytes(nacl.signing.SigningKey(seed).verify_key)
        return cls(name, CosignerKey.from_public_key(name, public).key_id, seed)

    @classmethod
    def parse(cls, skey: str) -> Cosigner:
        name, key_id, seed = split_skey(skey.strip(), ALG_COSIGNATURE_V1, "witness signer key")
        signer = cls.from_seed(name, seed)
        if signer.key_id != key_id:
            raise NoteError("witness signer key id does not match its name and key")
        return signer

    @property
    def skey(self) -> str:
        return format_key(self.name, self.key_id, ALG_COSIGNATURE_V1, self.seed, private=True)

    @cached_property
    def _signing_key(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(self.seed)

    @property
    def key(self) -> CosignerKey:
        return CosignerKey(self.name, self.key_id, bytes(self._signing_key.verify_key))

    def cosign(self, body: str, timestamp: int) -> SignatureLine:
        if not 0 < timestamp <= _MAX_TIMESTAMP:
            raise NoteError("a cosignature needs a positive timestamp")
        signature = bytes(self._signing_key.sign(signed_message(body, timestamp)).signature)
        return SignatureLine(self.name, self.key_id, struct.pack(">Q", timestamp) + signature)
