"""The auditors who may sign in: a JSON file beside the ledger holding password hashes only.

Hashes are datasette-auth-passwords' PBKDF2 format, so the plugin verifies them
itself; this module only reads and writes the file (mode 0600, replaced whole).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from datasette_auth_passwords.utils import hash_password

NAME = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
ROLES = ("auditor", "sql")  # "sql" also allows ad-hoc SQL (execute-sql) in configuration


class AuditorError(Exception):
    pass


@dataclass(frozen=True)
class Auditor:
    name: str
    password_hash: str
    roles: tuple[str, ...]


def default_auditors_path(ledger: Path | str) -> Path:
    return Path(f"{Path(ledger).with_suffix('')}.auditors.json")


def read_auditors(path: Path) -> dict[str, Auditor]:
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text("utf-8"))
        return {
            name: Auditor(name, entry["password_hash"], tuple(entry["roles"])) for name, entry in raw.items()
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditorError(f"{path}: not an auditors file ({exc})") from exc


def add_auditor(path: Path, name: str, password: str, *, roles: tuple[str, ...] = ("auditor",)) -> Auditor:
    """Add or replace an auditor; the password itself is never stored."""
    if not NAME.fullmatch(name):
        raise AuditorError("a name is 1-32 of a-z 0-9 _ . - starting with a letter")
    if len(password) < 12:
        raise AuditorError("a password needs at least 12 characters")
    unknown = set(roles) - set(ROLES)
    if unknown or "auditor" not in roles:
        raise AuditorError(f"roles are {', '.join(ROLES)} and must include auditor")
    auditors = read_auditors(path)
    auditors[name] = Auditor(name, hash_password(password), tuple(sorted(set(roles))))
    _write(path, auditors)
    return auditors[name]


def remove_auditor(path: Path, name: str) -> None:
    auditors = read_auditors(path)
    if name not in auditors:
        raise AuditorError(f"no auditor named {name!r} in {path}")
    del auditors[name]
    _write(path, auditors)


def _write(path: Path, auditors: dict[str, Auditor]) -> None:
    data = {a.name: {"password_hash": a.password_hash, "roles": list(a.roles)} for a in auditors.values()}
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


class LiveAuditors:
    """The auditors file as it is now: re-read whenever it changes on disk, so that
    `kansa auditor add/remove` and role changes reach a running server on its next request.

    A file that cannot be read counts as no auditors (nobody signs in) until it is fixed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._auditors: dict[str, Auditor] = {}

    def current(self) -> tuple[dict[str, Auditor], bool]:
        """The auditors, and whether they changed since the last call."""
        try:
            st = self.path.stat()
            stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if stamp == self._stamp and self._stamp is not None:
            return self._auditors, False
        self._stamp = stamp
        try:
            self._auditors = read_auditors(self.path)
        except (AuditorError, OSError):
            self._auditors = {}
        return self._auditors, True


def plugin_config(auditors: dict[str, Auditor]) -> dict[str, object]:
    """datasette-auth-passwords' configuration: `NAME_password_hash` keys and the actors they become."""
    config: dict[str, object] = {f"{a.name}_password_hash": a.password_hash for a in auditors.values()}
    config["actors"] = {a.name: {"id": a.name, "roles": list(a.roles)} for a in auditors.values()}
    return config
