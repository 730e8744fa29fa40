"""What the contract says, as data both sides read: the profile, the calendar, the roles.

The dialling core (which must not place a forbidden call) and the compliance
engine (which judges the calls afterwards) share this package and nothing
else, so that a bug in one guard is the other's finding (docs/architecture.md).
It imports neither of them.
"""

from .calendar import TOKYO, is_business_day, is_weekday, month_days, tokyo
from .profile import Profile, ProfileError, load_profile, parse_profile

__all__ = [
    "TOKYO",
    "Profile",
    "ProfileError",
    "is_business_day",
    "is_weekday",
    "load_profile",
    "month_days",
    "parse_profile",
    "tokyo",
]
