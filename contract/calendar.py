"""Days as the contract counts them, in Asia/Tokyo.

A weekday is Mon-Fri that is not a national holiday (jpholiday: substitute and
citizens' holidays included, e.g. 2026-09-22); every other day is a
weekend/holiday. A business day (開庁日) is a weekday outside the city's
year-end closure, 29 Dec - 3 Jan.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache

import jpholiday

# Asia/Tokyo has been UTC+9 all year since 1951 (no daylight saving), so a fixed
# offset is exact for every contract, and much cheaper than a zoneinfo lookup
# on each of hundreds of thousands of entries.
TOKYO = timezone(timedelta(hours=9), "JST")
_NINE_HOURS = timedelta(hours=9)


def tokyo(moment: datetime) -> datetime:
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("times must be timezone-aware")
    return moment if offset == _NINE_HOURS else moment.astimezone(TOKYO)


@lru_cache(maxsize=4096)
def is_holiday(day: date) -> bool:
    return bool(jpholiday.is_holiday(day))


def is_weekday(day: date) -> bool:
    return day.weekday() < 5 and not is_holiday(day)


def is_year_end_closure(day: date) -> bool:
    return (day.month == 12 and day.day >= 29) or (day.month == 1 and day.day <= 3)


def is_business_day(day: date) -> bool:
    return is_weekday(day) and not is_year_end_closure(day)


def add_business_days(day: date, n: int) -> date:
    """The n-th business day after `day` (n >= 1)."""
    current = day
    while n > 0:
        current += timedelta(days=1)
        if is_business_day(current):
            n -= 1
    return current


def end_of_day(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), TOKYO)


def at_time(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock, TOKYO)


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_days(month: str) -> list[date]:
    year, mon = int(month[:4]), int(month[5:])
    first = date(year, mon, 1)
    nxt = date(year + (mon == 12), mon % 12 + 1, 1)
    return [first + timedelta(days=i) for i in range((nxt - first).days)]


def next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:])
    return f"{year + (mon == 12):04d}-{mon % 12 + 1:02d}"


def previous_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year - 1:04d}-12" if mon == 1 else f"{year:04d}-{mon - 1:02d}"


def running_clock(start: datetime | None) -> Callable[[], datetime]:
    """The wall clock in Asia/Tokyo; from `start` (a rehearsal), a clock that starts there and
    runs at the wall's pace. Every `kansa` process of a rehearsal is given the same start."""
    if start is None:
        return lambda: datetime.now(TOKYO)
    if start.utcoffset() is None:
        raise ValueError(f"{start.isoformat()}: a rehearsal time needs its offset, e.g. +09:00")
    offset = start - datetime.now(TOKYO)
    return lambda: datetime.now(TOKYO) + offset
