"""A person's Ed25519 signing key, stored encrypted under their passphrase.

The key line (`PRIVATE+KEY+...`, as ledger.keyfile writes it) is sealed with
NaCl SecretBox under a key derived from the passphrase by Argon2id
(libsodium's pwhash). The file holds the salt, the Argon2id limits and the
box, never the key in clear; it is opened only into the memory of the
person's console session.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from ledger import NoteError, Signer

FORMAT = "kansa-sealed-key-v1"


class SealedKeyError(Exception):
    """The file is not a sealed key, or the passphrase does not open it."""


def _derive(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return bytes(
        nacl.pwhash.argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE,
            passphrase.encode("utf-8"),
            salt,
            opslimit=opslimit,
            memlimit=memlimit,
        )
    )


def seal(
    signer: Signer,
    passphrase: str,
    *,
    opslimit: int = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
    memlimit: int = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE,
) -> bytes:
    """The sealed file's content (JSON)."""
    if len(passphrase) < 8:
        raise SealedKeyError("a passphrase needs at least 8 characters")
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    box = nacl.secret.SecretBox(_derive(passphrase, salt, opslimit, memlimit))
    sealed = {
        "format": FORMAT,
        "holder": signer.name,
        "key": signer.verifier.key_ref,
        "public_key": base64.b64encode(signer.verifier.public_key).decode(),
        "kdf": "argon2id",
        "opslimit": opslimit,
        "memlimit": memlimit,
        "salt": base64.b64encode(salt).decode(),
        "box": base64.b64encode(bytes(box.encrypt(signer.skey.encode()))).decode(),
    }
    return (json.dumps(sealed, indent=1) + "\n").encode()


def unseal(raw: bytes, passphrase: str) -> Signer:
    try:
        sealed = json.loads(raw)
        if sealed.get("format") != FORMAT or sealed.get("kdf") != "argon2id":
            raise SealedKeyError("not a sealed Kansa key")
        opslimit, memlimit = int(sealed["opslimit"]), int(sealed["memlimit"])
        if (
            opslimit > nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE
            or memlimit > nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE
        ):
            # read from the file: never more than libsodium's "sensitive" (1 GiB) at a sign-in
            raise SealedKeyError(f"Argon2id limits beyond the sensitive ones ({opslimit}, {memlimit} bytes)")
        key = _derive(passphrase, base64.b64decode(sealed["salt"]), opslimit, memlimit)
        line = nacl.secret.SecretBox(key).decrypt(base64.b64decode(sealed["box"])).decode()
        return Signer.parse(line)
    except nacl.exceptions.CryptoError as exc:
        raise SealedKeyError("the passphrase does not open this key") from exc
    except (ValueError, KeyError, TypeError, NoteError) as exc:
        raise SealedKeyError(f"not a sealed Kansa key: {exc}") from exc


def write_sealed(path: Path | str, signer: Signer, passphrase: str, **limits: int) -> None:
    """Creates the sealed key file (mode 0600); refuses to overwrite one."""
    content = seal(signer, passphrase, **limits)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise SealedKeyError(f"{path} already exists; not overwriting a key") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())


def read_sealed(path: Path | str, passphrase: str) -> Signer:
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise SealedKeyError(f"no sealed key at {path}") from exc
    return unseal(raw, passphrase)
