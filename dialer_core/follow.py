"""The loop follows the ledger through the service, so it can run on another host.

`LedgerFollower` reads new entries with the service's `GET /v1/entries?from=&to=`
(JSON Lines: index, leaf, leaf hash), checks each leaf's hash and that it
chains to the one before (`prev`), and hands back the events in order.
`Knowledge` is what the loop learns from them: completions (of calls, and of
residents' callbacks: `callback.outcome`) and callback requests from the
operators' consoles, stop orders and SMS lists from the
city, numbers ended as unusable.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from ledger.leaf import parse_leaf
from ledger.merkle import leaf_hash

ENDING = {"completed", "refused", "absent_long", "stopped"}


class FollowError(Exception):
    """The service answered something that is not the ledger we were following."""


@dataclass
class LedgerFollower:
    url: str
    page: int = 1000
    after: int = 0  # the next index to read
    timeout: float = 10.0
    _prev: bytes | None = None
    _http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self._http = httpx.Client(base_url=self.url.rstrip("/"), timeout=self.timeout)

    def close(self) -> None:
        self._http.close()

    def poll(self) -> list[dict[str, Any]]:
        """Every entry since the last poll: the events, each with its ledger `index`."""
        events = []
        while True:
            response = self._http.get(
                "/v1/entries", params={"from": self.after, "to": self.after + self.page}
            )
            if response.status_code != 200:
                raise FollowError(f"GET /v1/entries: {response.status_code} {response.text[:200]}")
            lines = [line for line in response.text.splitlines() if line]
            for line in lines:
                item = json.loads(line)
                leaf = base64.b64decode(item["leaf"])
                digest = leaf_hash(leaf)
                if item["index"] != self.after or base64.b64decode(item["leaf_hash"]) != digest:
                    raise FollowError(f"entry {item['index']}: not the next entry, or its hash is wrong")
                parsed = parse_leaf(leaf)
                if self._prev is not None and base64.b64decode(parsed["prev"]) != self._prev:
                    raise FollowError(f"entry {self.after} does not chain to the one before")
                self._prev = digest
                self.after += 1
                events.append({**parsed["event"], "index": item["index"]})
            if len(lines) < self.page:
                return events


@dataclass
class Knowledge:
    """What the loop must know before dialling, as the ledger says it."""

    completed: set[str] = field(default_factory=set)
    stopped: dict[str, datetime] = field(default_factory=dict)
    ended_numbers: set[tuple[str, str]] = field(default_factory=set)
    callbacks: dict[str, datetime] = field(default_factory=dict)  # case -> the time asked for
    sms_lists: list[dict[str, Any]] = field(default_factory=list)
    calls: dict[str, tuple[str, str]] = field(default_factory=dict)  # call id -> (case, number)

    def apply(self, event: dict[str, Any]) -> None:
        kind, data = event.get("type"), event.get("data") or {}
        if kind == "case.stop":
            self.stopped.setdefault(data["case"], datetime.fromisoformat(event["at"]))
        elif kind == "call.dialed":
            self.calls[data["call"]] = (data["case"], data["number"])
        elif kind == "call.outcome":
            case = data["case"]
            if data.get("disposition") in ENDING:
                self.completed.add(case)
                self.callbacks.pop(case, None)
            elif data.get("disposition") == "number_unusable" and data.get("call") in self.calls:
                self.ended_numbers.add(self.calls[data["call"]])
            if data.get("callback_at") and case not in self.completed:
                self.callbacks[case] = datetime.fromisoformat(data["callback_at"])
        elif kind == "callback.outcome":
            # A resident's callback completed the case (T §10(4)キ, N §8(4)キ): no more calls.
            # Its other dispositions (absent_now, no_contact) leave the case as it was.
            if data.get("disposition") == "completed":
                self.completed.add(data["case"])
                self.callbacks.pop(data["case"], None)
        elif kind == "sms.designated":
            self.sms_lists.append(data)

    def apply_all(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.apply(event)
