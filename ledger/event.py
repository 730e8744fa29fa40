"""The event envelope (docs/events.md): the one place that builds one and chooses its id.

    {"id": <UUIDv7>, "type": "call.dialed", "at": <RFC 3339>, "actor": "system", "data": {...}}

Every writer (the operators' client, the CLI, target import, the dialling
core, the access log, the demo) builds its events here, so there is one id
scheme: UUIDv7 (RFC 9562), 48 bits of Unix milliseconds then 74 random bits,
so that ids sort by the time they were written. The id is the idempotency key
(a retry of the same event returns the existing entry).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

_RAND_BITS = 74


def uuid7(now: datetime, bits: int | None = None) -> str:
    """A UUIDv7 of `now`; its random part is the low 74 bits of `bits` (default: the OS's CSPRNG).

    A simulation passes its own seeded bits so that the same seed writes the same ids.
    """
    millis = int(now.timestamp() * 1000)
    rand = (secrets.randbits(_RAND_BITS) if bits is None else bits) & ((1 << _RAND_BITS) - 1)
    value = (millis << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def envelope(
    kind: str,
    actor: str,
    data: dict[str, Any],
    at: datetime | str,
    *,
    event_id: str | None = None,
    written: datetime | None = None,
) -> dict[str, Any]:
    """An event of type `kind` by `actor`, which happened `at` (a datetime, or RFC 3339 text).

    The id is `event_id` when given (a writer that keeps its own), else a fresh
    UUIDv7 of `written`, the moment it is written down (default: `at`).
    """
    moment = at if isinstance(at, datetime) else datetime.fromisoformat(at)
    return {
        "id": event_id or uuid7(written or moment),
        "type": kind,
        "at": at.isoformat() if isinstance(at, datetime) else at,
        "actor": actor,
        "data": data,
    }


__all__ = ["envelope", "uuid7"]
