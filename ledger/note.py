"""C2SP signed notes with Ed25519 keys, as Go's golang.org/x/mod/sumdb/note reads them.

A verifier key is `<name>+<hex key id>+<base64(0x01 || public key)>`, a signer
key `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`. The key id is the
first four bytes of SHA-256(name || "\\n" || 0x01 || public key): it ties the
name to the key, so a key line whose parts disagree is rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from functools import cached_property

import nacl.exceptions
import nacl.signing

ALG_ED25519 = 0x01
_SIG_PREFIX = "\u2014 "  # an em dash and a space start every signature line


class NoteError(ValueError):
    """A malformed key or note, or a signature that does not verify."""


def b64decode(text: str) -> bytes:
    """Strict standard base64 (padding required, no stray characters)."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise NoteError(f"bad base64: {text!r}") from exc


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def valid_key_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_hash(name: str, public_key: bytes, alg: int = ALG_ED25519) -> int:
    """The key id: the first four bytes of SHA-256(name || "\\n" || alg || public key)."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()
    return int(struct.unpack(">I", digest[:4])[0])


def format_key(name: str, key_id: int, alg: int, key: bytes, *, private: bool = False) -> str:
    """A vkey `<name>+<hex key id>+base64(alg || key)`, or with `private` the skey of a seed."""
    text = f"{name}+{key_id:08x}+{b64encode(bytes([alg]) + key)}"
    return f"PRIVATE+KEY+{text}" if private else text


def split_vkey(vkey: str, alg: int) -> tuple[str, int, bytes]:
    """`<name>+<hex key id>+base64(alg || 32-byte key)`: name, key id and key (id not yet checked)."""
    name, sep, rest = vkey.partition("+")
    hash_hex, sep2, key_b64 = rest.partition("+")
    if not sep or not sep2 or not valid_key_name(name):
        raise NoteError("malformed verifier key")
    if len(hash_hex) != 8 or not all(c in "0123456789abcdef" for c in hash_hex):
        raise NoteError("malformed verifier key id")
    key = b64decode(key_b64)
    if len(key) != 33:
        raise NoteError("verifier key has the wrong length")
    if key[0] != alg:
        raise NoteError(f"verifier key algorithm {key[0]} is not {alg}")
    return name, int(hash_hex, 16), key[1:]


def split_skey(skey: str, alg: int, what: str = "signer key") -> tuple[str, int, bytes]:
    """`PRIVATE+KEY+<name>+<hex key id>+base64(alg || 32-byte seed)`: name, key id and seed
    (id not yet checked)."""
    parts = skey.split("+", 4)
    if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
        raise NoteError(f"malformed {what}")
    name, hash_hex, key_b64 = parts[2:]
    if len(hash_hex) != 8 or not all(c in "0123456789abcdef" for c in hash_hex):
        raise NoteError(f"malformed {what} id")
    key = b64decode(key_b64)
    if len(key) != 33 or key[0] != alg:
        raise NoteError(f"{what} has the wrong length or algorithm (type 0x{alg:02x} with a 32-byte seed)")
    return name, int(hash_hex, 16), key[1:]


@dataclass(frozen=True)
class Verifier:
    name: str
    key_id: int
    public_key: bytes

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> Verifier:
        if not valid_key_name(name):
            raise NoteError(f"invalid key name {name!r}")
        if len(public_key) != 32:
            raise NoteError("an Ed25519 public key has 32 bytes")
        return cls(name, key_hash(name, public_key), public_key)

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        name, key_id, public_key = split_vkey(vkey, ALG_ED25519)
        verifier = cls.from_public_key(name, public_key)
        if verifier.key_id != key_id:
            raise NoteError("verifier key id does not match its name and key")
        return verifier

    @property
    def vkey(self) -> str:
        return format_key(self.name, self.key_id, ALG_ED25519, self.public_key)

    @property
    def key_ref(self) -> str:
        """`<name>+<hex id>`: how events name the key that signed them."""
        return f"{self.name}+{self.key_id:08x}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            nacl.signing.VerifyKey(self.public_key).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, ValueError):
            return False
        return True


@dataclass(frozen=True)
class Signer:
    name: str
    key_id: int
    seed: bytes

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls.from_seed(name, bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        if len(seed) != 32:
            raise NoteError("an Ed25519 seed has 32 bytes")
        public = bytes(nacl.signing.SigningKey(seed).verify_key)
        verifier = Verifier.from_public_key(name, public)
        return cls(name, verifier.key_id, seed)

    @classmethod
    def parse(cls, skey: str) -> Signer:
        name, key_id, seed = split_skey(skey, ALG_ED25519)
        signer = cls.from_seed(name, seed)
        if signer.key_id != key_id:
            raise NoteError("signer key id does not match its name and key")
        return signer

    @property
    def skey(self) -> str:
        return format_key(self.name, self.key_id, ALG_ED25519, self.seed, private=True)

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.key_id, bytes(self._signing_key.verify_key))

    @cached_property
    def _signing_key(self) -> nacl.signing.SigningKey:
        # Deriving the key pair from the seed costs as much as a signature: do it once.
        return nacl.signing.SigningKey(self.seed)

    def sign(self, message: bytes) -> bytes:
        return bytes(self._signing_key.sign(message).signature)


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if any((ord(c) < 0x20 and c != "\n") or c == "\x7f" for c in text):
        raise NoteError("note text has a control character")


def sign_note(text: str, *signers: Signer) -> str:
    """The signed note: text, a blank line, then one signature line per signer."""
    _check_text(text)
    message = text.encode("utf-8")
    lines = []
    for signer in signers:
        sig = struct.pack(">I", signer.key_id) + signer.sign(message)
        lines.append(f"{_SIG_PREFIX}{signer.name} {b64encode(sig)}\n")
    return text + "\n" + "".join(lines)


@dataclass(frozen=True)
class Note:
    text: str
    verified_by: tuple[str, ...]  # names of the known keys whose signatures held


def open_note(note: str, *verifiers: Verifier) -> Note:
    """Checks a signed note; unknown keys' signatures are ignored, a known key's bad one is not.

    At least one signature must come from a known key and verify.
    """
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("malformed note: no blank line before the signatures")
    text = note[: split + 1]
    _check_text(text)
    known = {(v.name, v.key_id): v for v in verifiers}
    good = []
    for line in note[split + 2 :].splitlines():
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(f"malformed signature line {line!r}")
        name, sep, sig_b64 = line[len(_SIG_PREFIX) :].rpartition(" ")
        if not sep or not valid_key_name(name):
            raise NoteError(f"malformed signature line {line!r}")
        sig = b64decode(sig_b64)
        if len(sig) < 5:
            raise NoteError(f"malformed signature line {line!r}")
        (key_id,) = struct.unpack(">I", sig[:4])
        verifier = known.get((name, key_id))
        if verifier is None:
            continue
        if not verifier.verify(text.encode("utf-8"), sig[4:]):
            raise NoteError(f"invalid signature by {name}")
        good.append(name)
    if not good:
        raise NoteError("no signature by a known key")
    return Note(text, tuple(good))
