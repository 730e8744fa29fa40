"""Who is designated in which role, as the ledger's staff events say (events.md, "Staff")."""

from __future__ import annotations

import json
from collections.abc import Callable

from ledger import LedgerReader

_STAFF_TYPES = ("staff.designated", "staff.revoked")


def roles_in(ledger: LedgerReader, person: str) -> set[str]:
    """The roles `person` holds after the ledger's last entry (designated and not revoked)."""
    held: set[str] = set()
    for _index, leaf in ledger.leaves_of_type(_STAFF_TYPES):
        event = json.loads(leaf)["event"]
        if event["data"].get("person") != person:
            continue
        if event["type"] == "staff.designated":
            held.add(event["data"]["role"])
        else:
            held.discard(event["data"]["role"])
    return held


def designated(role: str) -> Callable[[str, LedgerReader], bool]:
    """A key policy for the ledger service: people designated (and not revoked) in `role`."""

    def policy(actor: str, ledger: LedgerReader) -> bool:
        return role in roles_in(ledger, actor)

    return policy
