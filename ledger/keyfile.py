"""Signing keys on disk: one Go-style `PRIVATE+KEY+...` line in a file only its owner can read."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .note import NoteError, Signer


class KeyFileError(ValueError):
    pass


def write_key(path: Path, signer: Signer) -> None:
    """Creates the key file with mode 0600; refuses to overwrite an existing key."""
    write_secret(path, signer.skey)


def write_secret(path: Path, line: str) -> None:
    """Writes one secret key line to a new file only its owner can read (0600)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{path} already exists; not overwriting a key") from exc
    with os.fdopen(fd, "w") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_key(path: Path) -> Signer:
    try:
        return Signer.parse(read_secret(path))
    except NoteError as exc:
        raise KeyFileError(f"{path}: {exc}") from exc


def read_secret(path: Path) -> str:
    """The key line of a file only its owner can read; KeyFileError if others can."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise KeyFileError(f"no key file at {path}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path} can be read by others (mode {stat.filemode(mode)}); chmod 600 it")
    return path.read_text().strip()
