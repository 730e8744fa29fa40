"""A month's calling days, planned from the contract profile, and refused when 3 attempts cannot fit.

The dialing core shares the profile and the calendar with the compliance
engine, never its rule code (design decision 5): one's bug is the other's finding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from contract.calendar import is_weekday as national_is_weekday  # noqa: F401 (re-exported)
from contract.calendar import month_days
from contract.profile import Profile

IsWeekday = Callable[[date], bool]

__all__ = ["Campaign", "CampaignError", "IsWeekday", "check_feasible", "national_is_weekday", "plan_days"]


class CampaignError(Exception):
    """A schedule the core refuses to run, with the reasons (Japanese / English)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class Campaign:
    month: str
    days: tuple[date, ...]
    excluded: tuple[date, ...] = ()

    def calling_days(self) -> list[date]:
        return [d for d in self.days if d not in self.excluded]


def plan_days(
    profile: Profile,
    month: str,
    *,
    excluded: tuple[date, ...] = (),
    is_weekday: IsWeekday = national_is_weekday,
) -> Campaign:
    """From about the profile's first day: its weekend/holiday days first (so every number's
    weekend attempt can come first), then the weekdays after them, up to the profile's days.
    Where the first call must be on a weekday (tax), the days start on a weekday instead, and
    the weekend days come after it, where second and third attempts can use them."""
    candidates = [d for d in month_days(month) if d.day >= profile.first_day and d not in excluded]
    if profile.first_call_weekday_only:
        start = next((d for d in candidates if is_weekday(d)), candidates[0])
        weekends = [d for d in candidates if not is_weekday(d) and d > start][: profile.weekend_days_min]
        weekdays = [d for d in candidates if is_weekday(d) and d >= start]
    else:
        weekends = [d for d in candidates if not is_weekday(d)][: profile.weekend_days_min]
        start = weekends[0] if weekends else candidates[0]
        weekdays = [d for d in candidates if is_weekday(d) and d > start]
    days = sorted(weekends + weekdays[: profile.campaign_days - len(weekends)])
    campaign = Campaign(month, tuple(days), excluded)
    check_feasible(profile, campaign, is_weekday=is_weekday)
    return campaign


def check_feasible(
    profile: Profile, campaign: Campaign, *, is_weekday: IsWeekday = national_is_weekday
) -> None:
    """Refuses, with reasons, a month in which every number cannot get its attempts."""
    days = campaign.calling_days()
    need = profile.attempts_per_number
    reasons = []
    if len(days) < need:
        reasons.append(
            f"架電日が{len(days)}日しかなく、1番号{need}回を別々の日に架電できない /"
            f" {len(days)} calling days cannot hold {need} attempts on different days"
        )
    weekend = [d for d in days if not is_weekday(d)]
    if profile.nonweekday_required and not weekend:
        reasons.append(
            "土日祝日の架電日がなく、平日以外の架電ができない / no weekend or holiday day for the"
            " required non-weekday attempt"
        )
    if len(weekend) < profile.weekend_days_min:
        reasons.append(
            f"土日祝日の架電日が{len(weekend)}日（{profile.weekend_days_min}日以上必要）/"
            f" {len(weekend)} weekend/holiday days, {profile.weekend_days_min} required"
        )
    if profile.nonweekday_required and weekend:
        after = [d for d in days if d > weekend[0]]
        if len(after) < need - 1:
            reasons.append(
                "最初の土日祝日の後に残りの架電日が足りない / too few days after the first"
                " weekend day for the remaining attempts"
            )
    if len(profile.time_bands) < need and len(days) < need:
        reasons.append("時間帯と日を変えた架電ができない / attempts cannot vary in day and band")
    if reasons:
        raise CampaignError(reasons)
