"""The scheduler: compliant by construction, and a guard that refuses a forbidden call before dialling.

Each number's first attempt goes on a weekend/holiday day when the contract
wants one (NHI), or on a weekday 09:00-17:00 when the first call must be
(tax); every later attempt goes on a later calling day in a different time
band than the one before; a resident's requested time is kept exactly. The
guard re-checks every call against the hours, the days, stops, completion and
variation just before dialling, and says why it refuses.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from contract.calendar import TOKYO
from contract.profile import Profile

from .campaign import Campaign, IsWeekday, national_is_weekday


@dataclass
class Attempt:
    at: datetime
    band: int | None
    result: str
    callback: bool = False


@dataclass
class NumberProgress:
    ref: str
    kind: str
    attempts: list[Attempt] = field(default_factory=list)
    ended: bool = False  # number_unusable
    previous_month_result: str | None = None  # the last result of last month's calls, if any


@dataclass
class CaseProgress:
    case: str
    numbers: dict[str, NumberProgress]
    landline_only: bool = False
    completed: bool = False
    stopped_at: datetime | None = None

    @property
    def called(self) -> bool:
        return any(n.attempts for n in self.numbers.values())


@dataclass(frozen=True, order=True)
class Slot:
    at: datetime
    case: str
    number: str
    callback: bool = False


class Scheduler:
    def __init__(
        self,
        profile: Profile,
        campaign: Campaign,
        *,
        rng: random.Random,
        is_weekday: IsWeekday = national_is_weekday,
    ) -> None:
        self.profile = profile
        self.campaign = campaign
        self.days = campaign.calling_days()
        self.is_weekday = is_weekday
        self.rng = rng

    # -- time ---------------------------------------------------------------------------

    def hours(self, day: date) -> tuple[time, time]:
        return self.profile.weekday_hours if self.is_weekday(day) else self.profile.weekend_hours

    def band_of(self, moment: datetime) -> int | None:
        clock = moment.time()
        for i, (start, end) in enumerate(self.profile.time_bands):
            if start <= clock < end:
                return i
        return None

    def bands_on(self, day: date) -> list[int]:
        """The bands that lie within the day's hours (weekends have no 17-20 band)."""
        start, end = self.hours(day)
        return [i for i, (b0, b1) in enumerate(self.profile.time_bands) if b0 >= start and b1 <= end]

    def time_in(self, day: date, band: int) -> datetime:
        """A minute inside the band, leaving ten minutes before it closes."""
        b0, b1 = self.profile.time_bands[band]
        first = b0.hour * 60 + b0.minute
        last = b1.hour * 60 + b1.minute - 10
        minute = self.rng.randrange(first, last)
        return datetime.combine(day, time(minute // 60, minute % 60), TOKYO)

    # -- planning -----------------------------------------------------------------------

    def first_slot(self, progress: CaseProgress, number: str, spread: int) -> Slot | None:
        """`spread` (e.g. the case's position) shares the load over the eligible days and bands."""
        if self.profile.first_call_weekday_only:
            eligible = [d for d in self.days if self.is_weekday(d)]
            start, end = self.profile.first_call_hours or self.profile.weekday_hours
            bands = [i for i, (b0, b1) in enumerate(self.profile.time_bands) if b0 >= start and b1 <= end]
        elif self.profile.nonweekday_required:
            eligible = [d for d in self.days if not self.is_weekday(d)]
            bands = []
        else:
            eligible = list(self.days)
            bands = []
        # Leave room after the first attempt for the others, each on a later day.
        roomy = [d for d in eligible if sum(x > d for x in self.days) >= self.profile.attempts_per_number - 1]
        eligible = roomy or eligible
        if not eligible:
            return None
        day = eligible[spread % len(eligible)]
        bands = [b for b in (bands or self.bands_on(day)) if b in self.bands_on(day)]
        band = bands[(spread // len(eligible)) % len(bands)]
        return Slot(self.time_in(day, band), progress.case, number)

    def next_slot(self, progress: CaseProgress, number: str) -> Slot | None:
        """The next attempt on a number: a later day, another band; None when none is due."""
        state = progress.numbers[number]
        if progress.completed or progress.stopped_at or state.ended or not state.attempts:
            return None
        if len(state.attempts) >= self.profile.attempts_per_number:
            return None
        if self._two_calls_enough(state):
            return None
        last = state.attempts[-1]
        need_weekend = (
            self.profile.nonweekday_required
            and not any(not self.is_weekday(a.at.date()) for a in state.attempts)
            and len(state.attempts) == self.profile.attempts_per_number - 1
        )
        for day in self.days:
            if day <= last.at.date() or (need_weekend and self.is_weekday(day)):
                continue
            bands = [b for b in self.bands_on(day) if b != last.band]
            if bands:
                return Slot(self.time_in(day, self.rng.choice(bands)), progress.case, number)
        return None

    def _two_calls_enough(self, state: NumberProgress) -> bool:
        """Tax 2023 §10(4)ク: twice this month the same non-contact result as last month ends the number."""
        if not self.profile.same_result_exemption or len(state.attempts) != 2:
            return False
        previous = state.previous_month_result
        return previous in ("no_answer", "busy", "voicemail", "unavailable") and all(
            a.result == previous for a in state.attempts
        )

    def in_period(self, moment: datetime) -> bool:
        start, end = self.hours(moment.date())
        return moment.date() in self.days and start <= moment.time() < end

    # -- the guard --------------------------------------------------------------------------

    def refuse(
        self, progress: CaseProgress, number: str, at: datetime, *, callback: bool = False
    ) -> str | None:
        """Why this call must not be dialled, or None. Checked just before dialling."""
        day = at.date()
        if day not in self.days:
            return f"{day} は架電日ではない / {day} is not a calling day"
        start, end = self.hours(day)
        if not start <= at.time() < end:
            return f"{at:%H:%M} は架電可能時間（{start:%H:%M}〜{end:%H:%M}）外 / outside the calling hours"
        if progress.stopped_at is not None and progress.stopped_at <= at:
            return "架電停止の指示あり / the city ordered to stop calling this case"
        if progress.completed:
            return "業務完了済み / the case is completed"
        state = progress.numbers[number]
        if state.ended:
            return "この番号は使用不可で完了 / this number was ended as unusable"
        if not callback and state.attempts:
            last = state.attempts[-1]
            if last.at.date() == day:
                return "前回と同じ日 / the same day as the previous attempt"
            if last.band == self.band_of(at):
                return "前回と同じ時間帯 / the same time band as the previous attempt"
        if self.profile.first_call_weekday_only and not progress.called:
            first_start, first_end = self.profile.first_call_hours or self.profile.weekday_hours
            if not (self.is_weekday(day) and first_start <= at.time() < first_end):
                return "初回架電は平日の日中に限る / the first call must be on a weekday in the daytime"
        return None


def later_calling_time(scheduler: Scheduler, after: datetime, rng: random.Random) -> datetime | None:
    """A time a resident might ask to be called back: a later calling day, within its hours."""
    later = [d for d in scheduler.days if d > after.date()]
    if not later:
        return None
    day = rng.choice(later)
    band = rng.choice(scheduler.bands_on(day))
    return scheduler.time_in(day, band).replace(minute=0) + timedelta(minutes=30 * rng.randrange(2))
