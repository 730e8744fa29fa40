"""The leaf of an entry: what is hashed, chained and proved (verification.md, "Entries and hashes").

    {"event": <envelope>, "index": i, "prev": "<b64 leaf hash of i-1>",
     "received": "<RFC 3339>", "sig": {"ed25519": "<b64>", "key": "<key id>"}}

in RFC 8785 form. Because canonical JSON sorts keys and the event is already
canonical, the leaf is assembled by concatenation instead of re-encoding the
whole object; tests/test_leaf.py checks the result equals RFC 8785 of the
parsed leaf. For the same reason the event's signed bytes can be cut out of a
canonical leaf without re-encoding it.
"""

from __future__ import annotations

import base64
from typing import Any

from .canonical import CanonicalError, canonicalize_validated, loads_canonical

LEAF_KEYS = frozenset({"event", "index", "prev", "received", "sig"})
KEY_EVENT_TYPES = frozenset({"key.registered", "key.revoked"})
ZERO_HASH = bytes(32)  # the `prev` of entry 0
# A leaf is one entry of a C2SP tlog-tiles entry bundle, whose length is a uint16:
# the store refuses to write a longer one and the tiles refuse to bundle one.
MAX_LEAF_BYTES = 0xFFFF
_HEAD = b'{"event":'
# In canonical JSON a quote inside a string is always escaped, so `,"index":`
# only occurs as structure; the last one is the top-level key that follows the event.
_INDEX_KEY = b',"index":'


def build_leaf(
    event_bytes: bytes, index: int, prev: bytes, received: str, key: str, signature: bytes
) -> bytes:
    return b"".join(
        (
            _HEAD,
            event_bytes,
            _INDEX_KEY,
            str(index).encode(),
            b',"prev":"',
            base64.b64encode(prev),
            b'","received":',
            canonicalize_validated(received),
            b',"sig":{"ed25519":"',
            base64.b64encode(signature),
            b'","key":',
            canonicalize_validated(key),
            b"}}",
        )
    )


def leaf_length_bound(event_bytes: bytes, key: str) -> int:
    """The most bytes the leaf of this event can take at any index (up to 10**16): what a
    writer checks before it records an event it could never deliver."""
    received = "2026-01-01T00:00:00.000Z"  # every `received` has this length
    return len(event_bytes) + len(build_leaf(b"", 10**16, bytes(32), received, key, bytes(64)))


def event_bytes(leaf: bytes) -> bytes:
    """The event's RFC 8785 bytes, cut from a canonical leaf."""
    if not leaf.startswith(_HEAD):
        raise ValueError("not a canonical leaf")
    end = leaf.rfind(_INDEX_KEY)
    if end < 0:
        raise ValueError("not a canonical leaf")
    return leaf[len(_HEAD) : end]


def parse_leaf(leaf: bytes) -> dict[str, Any]:
    """The leaf as JSON, checked to be exactly its own RFC 8785 form with the five leaf keys."""
    try:
        value = loads_canonical(leaf)
    except CanonicalError as exc:
        raise ValueError(f"the leaf is not RFC 8785 JSON: {exc}") from exc
    if type(value) is not dict or value.keys() != LEAF_KEYS:
        raise ValueError("a leaf has exactly the keys event, index, prev, received, sig")
    sig = value["sig"]
    if type(sig) is not dict or set(sig) != {"ed25519", "key"}:
        raise ValueError("a leaf's sig has exactly the keys ed25519 and key")
    return value


def case_of(event: dict[str, Any]) -> str | None:
    """The browsing column `case_ref`: the event's data.case when it names one."""
    data = event.get("data")
    case = data.get("case") if isinstance(data, dict) else None
    return case if isinstance(case, str) else None
