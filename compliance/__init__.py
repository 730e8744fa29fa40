"""Kansa's compliance engine: contract profiles as data, one rule per clause, KPIs.

It reads the ledger up to a signed checkpoint and never the wall clock, so
the same checkpoint always gives the same findings.
"""

from .context import Context
from .engine import CheckError, CheckResult, check_ledger, evaluate, to_json
from .model import Entry, Finding
from .profiles import Profile, ProfileError, load_profile
from .rules import RULES

__all__ = [
    "RULES",
    "CheckError",
    "CheckResult",
    "Context",
    "Entry",
    "Finding",
    "Profile",
    "ProfileError",
    "check_ledger",
    "evaluate",
    "load_profile",
    "to_json",
]
