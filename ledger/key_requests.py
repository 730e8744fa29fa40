"""Key requests: how a person who may manage keys asks the ledger's host to append a key event.

Key events (`key.registered`, `key.revoked`) must be signed by the ledger's own
key, which never leaves the ledger's host. A manager elsewhere signs a request
with their own registered key instead:

    {"request": {"id", "type", "at", "actor", "data"}, "sig": {"key", "ed25519"}}

where `request` is exactly the envelope of the key event wanted and `ed25519`
signs its RFC 8785 bytes. The service checks the signature against the key
table, asks its policy whether `actor` may manage keys, and appends the event
signed with the ledger's key, adding to `data` the request's key and signature
(`requested_with`, `request_sig`) so anyone can check who asked.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .canonical import CanonicalError, canonicalize
from .keys import KeyRecord
from .leaf import KEY_EVENT_TYPES
from .note import NoteError, Signer, Verifier, b64decode, b64encode
from .reader import LedgerReader

# Whether `actor` may ask for key events, judged on a read-only view of the ledger as it is.
KeyPolicy = Callable[[str, LedgerReader], bool]


class KeyRequestError(Exception):
    def __init__(self, status: int, message: str, field: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def sign_key_request(
    signer: Signer, kind: str, data: dict[str, Any], *, now: datetime, event_id: str | None = None
) -> dict[str, Any]:
    """The body to POST to /v1/keys, signed by `signer` (its holder is the request's actor)."""
    request = {
        "id": event_id or str(uuid.uuid4()),
        "type": kind,
        "at": now.isoformat(),
        "actor": signer.name,
        "data": data,
    }
    signature = signer.sign(canonicalize(request))
    return {"request": request, "sig": {"key": signer.verifier.key_ref, "ed25519": b64encode(signature)}}


def open_key_request(body: Any, keys: dict[str, KeyRecord], size: int) -> dict[str, Any]:
    """The key event to append (unsigned: the ledger signs it), or KeyRequestError."""
    if not isinstance(body, dict) or set(body) != {"request", "sig"}:
        raise KeyRequestError(422, 'a body of exactly {"request": ..., "sig": ...}', "body")
    request, sig = body["request"], body["sig"]
    if not isinstance(request, dict) or request.get("type") not in KEY_EVENT_TYPES:
        raise KeyRequestError(422, "request.type must be key.registered or key.revoked", "request.type")
    if not isinstance(request.get("data"), dict) or not isinstance(request.get("actor"), str):
        raise KeyRequestError(422, "request needs actor and data", "request")
    if (
        not isinstance(sig, dict)
        or not isinstance(sig.get("key"), str)
        or not isinstance(sig.get("ed25519"), str)
    ):
        raise KeyRequestError(422, '"sig" needs "key" and "ed25519" strings', "sig")
    record = keys.get(sig["key"])
    if record is None or not record.valid_at(size):
        raise KeyRequestError(401, f"unknown or revoked key {sig['key']!r}", "sig.key")
    if record.holder != request["actor"]:
        raise KeyRequestError(
            401, "the request's actor is not the holder of the signing key", "request.actor"
        )
    try:
        message = canonicalize(request)
        verifier = Verifier.from_public_key(record.holder, record.public_key)
        ok = verifier.verify(message, b64decode(sig["ed25519"]))
    except (CanonicalError, NoteError) as exc:
        raise KeyRequestError(422, str(exc), "request") from exc
    if not ok:
        raise KeyRequestError(401, "the signature does not verify", "sig.ed25519")
    data = {**request["data"], "requested_with": sig["key"], "request_sig": sig["ed25519"]}
    return {**request, "data": data}
