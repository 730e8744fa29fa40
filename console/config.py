"""The console's configuration: one TOML file, paths relative to it."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class ConsoleConfig:
    ledger_url: str  # the ledger service (events are delivered there from the outboxes)
    ledger_copy: Path  # a read-only copy of the ledger on this host (or the live file)
    loop_url: str  # the dialling loop's seats API (`kansa dialer run`)
    store: Path  # the encrypted data store of residents' personal data
    keys: Path  # sealed signing keys, one `<person>.sealed` per person
    outboxes: Path  # one outbox per person who signed in here, and the device's own
    documents: Path  # talk scripts, manuals and FAQs as loaded by the manager
    device_key: Path  # the console's own key (signs failed sign-ins), registered to `device`
    device: str = "console01"  # the holder of device_key, as registered in the ledger
    terminal: str = "console01"
    profile: str = "nagaoka-nhi-2026"
    results: Path | None = None  # the compliance results database (kansa check --results)
    loop_token_file: Path | None = None  # the seats API's bearer token (else $KANSA_LOOP_TOKEN)
    escalate_to: str = "city01"  # who `escalation.raised` names in `to`
    session_minutes: int = 9 * 60
    host: str = "127.0.0.1"
    port: int = 8740
    secure_cookies: bool = False  # true behind TLS

    @classmethod
    def load(cls, path: Path | str) -> ConsoleConfig:
        path = Path(path)
        try:
            raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        section = raw.get("console", raw)
        return cls.from_mapping(section, base=path.parent)

    @classmethod
    def from_mapping(cls, values: dict[str, Any], *, base: Path) -> ConsoleConfig:
        paths = ("ledger_copy", "store", "keys", "outboxes", "documents", "device_key")
        missing = [name for name in ("ledger_url", "loop_url", *paths) if name not in values]
        if missing:
            raise ConfigError(f"the console's configuration lacks {', '.join(missing)}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(unknown)}")
        fixed = dict(values)
        for name in (*paths, "results", "loop_token_file"):
            if fixed.get(name) is not None:
                fixed[name] = (base / str(fixed[name])).resolve()
        return cls(**fixed)
