"""An event as it travels to the ledger, and the ledger's answers (docs/service.md).

A writer that is not the ledger's host sends `{"event": <envelope>, "sig":
{"key": <key id>, "ed25519": <base64>}}`: as the body of `POST /v1/events`,
as an item of `POST /v1/events:batch`, or as a line of `kansa ledger append`.
This module is the one place that builds and reads that shape, and the one
place that says which HTTP status each refusal of an append answers with.
"""

from __future__ import annotations

from typing import Any

from .canonical import canonicalize
from .note import Signer, b64encode
from .store import Appended, AppendError, Signature, Submission

# The HTTP status each kind of AppendError answers with. A client must not retry
# the 4xx ones (FINAL_STATUSES): the same event would be refused again. A 500 is
# this request's own failure in the ledger and may be retried, as may the 503 and
# 507 the service answers while its file cannot be written (ledger/service.py).
STATUS: dict[str, int] = {
    "invalid": 422,
    "conflict": 409,
    "signature": 401,
    "too_large": 413,
    "server": 500,  # the ledger failed on this request alone (a bug): retry, tell us
}
FINAL_STATUSES = frozenset(status for status in STATUS.values() if status < 500)
# The largest request body the service reads (a submission, or a batch of them), and the
# most submissions in one batch. An entry's own limit is leaf.MAX_LEAF_BYTES.
MAX_BODY_BYTES = 1 << 20
MAX_BATCH = 1000
TOO_LARGE = STATUS["too_large"]
# A body that is not a submission at all (not JSON, wrong shape) is refused as invalid.
MALFORMED = STATUS["invalid"]


class WireError(ValueError):
    """A body that is not a submission; `field` names the place in it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def signed(event: dict[str, Any], signer: Signer) -> dict[str, Any]:
    """The submission of `event` signed by `signer` (over its RFC 8785 bytes)."""
    signature = signer.sign(canonicalize(event))
    return {"event": event, "sig": {"key": signer.verifier.key_ref, "ed25519": b64encode(signature)}}


def is_signed(value: Any) -> bool:
    """Whether `value` claims to be a submission (has "event"), as opposed to a bare envelope."""
    return isinstance(value, dict) and "event" in value


def parse_signed(value: Any, where: str = "") -> Submission:
    """Reads `{"event", "sig"}`; raises WireError naming the field (prefixed with `where`)."""
    if not isinstance(value, dict) or set(value) != {"event", "sig"}:
        raise WireError(f'{where}a submission is exactly {{"event": ..., "sig": ...}}', f"{where}body")
    sig = value["sig"]
    if (
        not isinstance(sig, dict)
        or not isinstance(sig.get("key"), str)
        or not isinstance(sig.get("ed25519"), str)
    ):
        raise WireError('"sig" needs "key" and "ed25519" strings', f"{where}sig")
    return Submission(value["event"], Signature(sig["key"], sig["ed25519"]))


def status_of(error: AppendError) -> int:
    return STATUS[error.kind]


def error_field(error: AppendError, where: str = "") -> str:
    """The refused field as a place in the posted body: the event's fields are under `event.`."""
    name = error.field
    return where + (name if name.startswith("sig") or name == "event" else f"event.{name}")


def error_body(error: AppendError, where: str = "") -> dict[str, Any]:
    """The JSON answer to a refused append; in a batch, `where` is `events[i].` and it names the position."""
    body: dict[str, Any] = {"error": error.message, "field": error_field(error, where)}
    if where:
        body["position"] = error.position
    return body


def appended_body(appended: Appended) -> dict[str, Any]:
    return {"index": appended.index, "leaf_hash": b64encode(appended.leaf_hash)}


def appended_status(*appended: Appended) -> int:
    """201 when something new was written, 200 when every event was already there (a retry)."""
    return 201 if any(a.created for a in appended) else 200


__all__ = [
    "FINAL_STATUSES",
    "MAX_BATCH",
    "MAX_BODY_BYTES",
    "TOO_LARGE",
    "MALFORMED",
    "STATUS",
    "WireError",
    "appended_body",
    "appended_status",
    "error_body",
    "error_field",
    "is_signed",
    "parse_signed",
    "signed",
    "status_of",
]
