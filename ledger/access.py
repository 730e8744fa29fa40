"""Failed sign-ins within a window: when a name, or a client address, is locked out.

Both sign-in doors count the same `access.login` events (``success: false``): the operators'
console (its device key signs each failure into the contract's ledger) and the auditors'
Datasette (its own access log). Each keeps one `Failures` in memory, fed as attempts fail and
rebuilt at start-up from the recent `access.login` events it recorded, so a restart does not
reset the counts. Pure counting on a clock of seconds: no I/O, nothing of either door.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from typing import Any

MAX_FAILURES = 5  # failures of one name within the window lock that name out
MAX_ADDRESS_FAILURES = 20  # ... and these from one client address lock the address out
LOCKOUT_SECONDS = 15 * 60  # the window, and so the longest a lock-out lasts after its last failure


class Failures:
    """Failed sign-ins per name and per client address within the lock-out window."""

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        max_address_failures: int = MAX_ADDRESS_FAILURES,
        window: float = LOCKOUT_SECONDS,
    ) -> None:
        self.max_failures = max_failures
        self.max_address_failures = max_address_failures
        self.window = window
        self._times: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    def _live(self, key: tuple[str, str], now: float) -> deque[float]:
        """The key's failures within the window; a key with none is not kept (every id a guesser
        tries is looked up, even from a locked-out address: it must not stay in memory)."""
        times = self._times.get(key)
        if times is None:
            return deque()
        while times and now - times[0] > self.window:
            times.popleft()
        if not times:
            del self._times[key]
        return times

    def tracked(self) -> int:
        """How many names and addresses are held (each with a failure in the window, or one
        whose failures have not been looked at since the window passed)."""
        return len(self._times)

    def _limits(self, name: str, address: str | None) -> list[tuple[tuple[str, str], int]]:
        keys = [(("name", name), self.max_failures)]
        if address is not None:
            keys.append((("address", address), self.max_address_failures))
        return keys

    def locked(self, name: str, address: str | None, now: float) -> bool:
        return self.seconds_left(name, address, now) > 0

    def seconds_left(self, name: str, address: str | None, now: float) -> float:
        """How long until an attempt for `name` from `address` is taken again (0: now)."""
        left = 0.0
        for key, limit in self._limits(name, address):
            times = self._live(key, now)
            if len(times) >= limit:  # it opens when the limit-th latest failure leaves the window
                left = max(left, times[-limit] + self.window - now)
        return left

    def locked_keys(self, name: str, address: str | None, now: float) -> list[tuple[str, str]]:
        """Which of ("name", name) and ("address", address) are locked out now."""
        return [key for key, limit in self._limits(name, address) if len(self._live(key, now)) >= limit]

    def add(self, name: str, address: str | None, now: float) -> None:
        self._times[("name", name)].append(now)
        if address is not None:
            self._times[("address", address)].append(now)

    def withdraw(self, name: str, address: str | None, at: float) -> None:
        """Takes back a failure `add`ed at `at` (an attempt counted while it ran, then let in)."""
        for key, _ in self._limits(name, address):
            times = self._times.get(key)
            if times is not None and at in times:
                times.remove(at)

    def clear(self, name: str) -> None:
        self._times.pop(("name", name), None)

    @classmethod
    def from_log(
        cls, logins: Iterable[tuple[float, Mapping[str, Any]]], *, addresses: bool = True, **limits: Any
    ) -> Failures:
        """Rebuilt from sign-in records in time order: a failure with no `reason` (a wrong
        password, not a refusal before it was checked) counts, by `person` and, when
        `addresses`, by `terminal` (the client address); a success clears its name."""
        failures = cls(**limits)
        for at, data in logins:
            if data.get("success"):
                failures.clear(str(data.get("person")))
            elif "reason" not in data:
                address = str(data.get("terminal")) if addresses else None
                failures.add(str(data.get("person")), address, at)
        return failures
