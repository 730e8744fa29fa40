"""Writers' keys as the ledger itself records them (docs/verification.md, "Keys").

A writer's key becomes valid after the `key.registered` entry that names it
and stops at its `key.revoked` entry. Both are signed by the ledger's own key.
The writer (store.py) and the verifier (verify.py) replay the same events
through the same function here, so they cannot disagree on which key was
valid at an index.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .leaf import KEY_EVENT_TYPES
from .note import NoteError, Verifier, b64decode


@dataclass(frozen=True)
class KeyRecord:
    key: str
    public_key: bytes
    holder: str
    registered_at: int
    revoked_at: int | None = None

    def valid_at(self, index: int) -> bool:
        return self.registered_at < index and (self.revoked_at is None or index < self.revoked_at)


class KeyEventError(ValueError):
    """A stored key event that cannot be replayed, at `index`."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def parse_key_event(leaf_event: dict[str, Any], index: int, keys: dict[str, KeyRecord]) -> KeyRecord:
    """The key table change a key.registered / key.revoked event makes, or ValueError saying why not."""
    data = leaf_event["data"]
    if leaf_event["type"] == "key.registered":
        ref = data["key"]
        if ref in keys:
            raise ValueError(f"key {ref} is already registered")
        public = b64decode(data["public_key"])
        try:
            expected = Verifier.from_public_key(data["holder"], public).key_ref
        except NoteError as exc:
            raise ValueError(f"holder cannot name a key: {exc}") from exc
        if ref != expected:
            raise ValueError(f"key id must be {expected} (holder + key hash of the public key)")
        return KeyRecord(ref, public, data["holder"], index)
    record = keys.get(data["key"])
    if record is None:
        raise ValueError(f"key {data['key']} is not registered")
    if record.revoked_at is not None:
        raise ValueError(f"key {data['key']} is already revoked")
    return KeyRecord(record.key, record.public_key, record.holder, record.registered_at, index)


def replay(rows: Iterable[tuple[int, str | bytes]], keys: dict[str, KeyRecord]) -> dict[str, KeyRecord]:
    """Applies stored key-event leaves `(index, leaf)` in index order to `keys` (changed in place).

    A row whose leaf is not a key event (its type column was tampered with) is
    skipped: the verifier reports it where it checks that entry's columns.
    """
    for index, leaf in rows:
        try:
            event = json.loads(leaf)["event"]
            if event["type"] not in KEY_EVENT_TYPES:
                continue
            record = parse_key_event(event, index, keys)
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyEventError(index, f"bad key event: {exc}") from exc
        except RecursionError as exc:  # the JSON parser's own limit, as loads_canonical says
            raise KeyEventError(index, "bad key event: nested too deeply to parse") from exc
        keys[record.key] = record
    return keys


__all__ = ["KEY_EVENT_TYPES", "KeyEventError", "KeyRecord", "parse_key_event", "replay"]
