"""Who is designated in which role, as the ledger's staff events say (events.md, "Staff")."""

from __future__ import annotations

import json
from collections.abc import Callable

from ledger import Ledger

_STAFF = (b'"type":"staff.designated"', b'"type":"staff.revoked"')


def roles_in(ledger: Ledger, person: str) -> set[str]:
    """The roles `person` holds after the ledger's last entry (designated and not revoked)."""
    held: set[str] = set()
    for _index, leaf, _digest in ledger.leaves():
        if not any(marker in leaf for marker in _STAFF):
            continue
        event = json.loads(leaf)["event"]
        if event["data"].get("person") != person:
            continue
        if event["type"] == "staff.designated":
            held.add(event["data"]["role"])
        else:
            held.discard(event["data"]["role"])
    return held


def designated(role: str) -> Callable[[str, Ledger], bool]:
    """A key policy for the ledger service: people designated (and not revoked) in `role`."""

    def policy(actor: str, ledger: Ledger) -> bool:
        return role in roles_in(ledger, actor)

    return policy
