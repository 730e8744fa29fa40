"""What the rules read: ledger entries, parsed once, with times in Asia/Tokyo."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contract.calendar import tokyo

SEVERITIES = ("violation", "judgement", "info")


@dataclass(slots=True)
class Entry:
    """Treat as read-only. (Not frozen: a frozen dataclass is markedly slower to build,
    and a check builds one per ledger entry.)"""

    index: int
    type: str
    at: datetime
    actor: str
    data: dict[str, Any]
    received: str  # RFC 3339 as the ledger wrote it; parsed only where needed (received_at)
    key: str

    @classmethod
    def from_event(cls, index: int, event: dict[str, Any], received: str, key: str) -> Entry:
        at = tokyo(datetime.fromisoformat(event["at"]))
        return cls(index, event["type"], at, event["actor"], event["data"], received, key)

    @property
    def received_at(self) -> datetime:
        return tokyo(datetime.fromisoformat(self.received))

    def time(self, name: str) -> datetime | None:
        value = self.data.get(name)
        return tokyo(datetime.fromisoformat(value)) if isinstance(value, str) else None


@dataclass(frozen=True, order=True)
class Finding:
    rule: str
    case: str
    entries: tuple[int, ...]
    severity: str
    clause: str
    message: str
    message_en: str
    pending: bool = field(default=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "clause": self.clause,
            "severity": self.severity,
            "case": self.case or None,
            "entries": list(self.entries),
            "message": self.message,
            "message_en": self.message_en,
            "pending": self.pending,
        }
