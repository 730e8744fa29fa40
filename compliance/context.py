"""The month being judged: profile, derived ledger state, and "now" (a checkpoint's time).

Every rule takes a `Context`; it is the one place a rule asks which days and
hours count, and how a finding is made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, TypeVar

from contract.calendar import end_of_day, is_weekday, month_days, month_of

from .model import Entry, Finding
from .profiles import Profile
from .rules import RULES
from .state import LedgerState

T = TypeVar("T")


def _seconds(span: tuple[time, time]) -> tuple[int, int]:
    return tuple(t.hour * 3600 + t.minute * 60 + t.second for t in span)  # type: ignore[return-value]


@dataclass
class Context:
    profile: Profile
    state: LedgerState
    month: str
    as_of: datetime

    # -- time helpers shared by the rules ------------------------------------

    def hours(self, day: date) -> tuple[time, time]:
        return self.profile.weekday_hours if is_weekday(day) else self.profile.weekend_hours

    def in_hours(self, moment: datetime) -> bool:
        """Half-open: a call may start at 09:00:00 and up to, not at, the closing time."""
        start, end = self._seconds_weekday if is_weekday(moment.date()) else self._seconds_weekend
        return start <= moment.hour * 3600 + moment.minute * 60 + moment.second < end

    def in_calling_period(self, moment: datetime) -> bool:
        """On a scheduled, not excluded calling day of its month, and within that day's hours."""
        days, excluded = self.state.campaign_days(month_of(moment.date()))
        return moment.date() in days and moment.date() not in excluded and self.in_hours(moment)

    def band(self, moment: datetime) -> int | None:
        clock = moment.hour * 3600 + moment.minute * 60 + moment.second
        for i, (start, end) in enumerate(self._seconds_bands):
            if start <= clock < end:
                return i
        return None

    def __post_init__(self) -> None:
        self._year_month = (int(self.month[:4]), int(self.month[5:7]))
        self._memo: dict[str, Any] = {}
        self._seconds_weekday = _seconds(self.profile.weekday_hours)
        self._seconds_weekend = _seconds(self.profile.weekend_hours)
        self._seconds_bands = [_seconds(band) for band in self.profile.time_bands]

    def in_month(self, moment: datetime | date) -> bool:
        return (moment.year, moment.month) == self._year_month

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """Something derived once per check and shared by the rules that need it."""
        if key not in self._memo:
            self._memo[key] = compute()
        found: T = self._memo[key]  # a key is computed by one function, so one type
        return found

    @property
    def month_end(self) -> datetime:
        return end_of_day(month_days(self.month)[-1])

    @property
    def month_over(self) -> bool:
        return self.as_of >= self.month_end

    def finding(
        self,
        rule: str,
        *,
        case: str | None,
        entries: list[int] | tuple[int, ...],
        ja: str,
        en: str,
        severity: str | None = None,
        pending: bool = False,
    ) -> Finding:
        return Finding(
            rule=rule,
            case=case or "",
            entries=tuple(sorted(set(entries))),
            severity="info" if pending else (severity or RULES[rule].severity),
            clause=f"{self.profile.short} {self.profile.clauses[rule]}",
            message=("【期限前】" if pending else "") + ja,
            message_en=("(pending) " if pending else "") + en,
            pending=pending,
        )

    def deadline(
        self,
        rule: str,
        *,
        due: datetime,
        done: Entry | None,
        case: str | None,
        entries: list[int],
        ja: str,
        en: str,
    ) -> Iterator[Finding]:
        """A thing due by `due`: late or missing once due has passed; pending before."""
        if done is not None and done.at <= due:
            return
        if done is not None:
            yield self.finding(
                rule, case=case, entries=[*entries, done.index], ja=f"{ja}（期限超過）", en=f"{en} (late)"
            )
        elif self.as_of >= due:
            yield self.finding(rule, case=case, entries=entries, ja=f"{ja}（未実施）", en=f"{en} (missing)")
        else:
            yield self.finding(rule, case=case, entries=entries, ja=ja, en=en, pending=True)
