"""Kansa's dialing core: target import, encrypted personal data, a compliant-by-construction
scheduler with its guard, telephony and SMS adapters (with a seeded simulator), and the
operators' client. See docs/dialer.md.

It writes to the ledger and reads only the contract profile and calendar from
`compliance` (never its rules): data flows dialer -> ledger -> compliance.
"""

from .campaign import Campaign, CampaignError, check_feasible, plan_days
from .client import OperatorClient, key_registration, new_key
from .datastore import DataStore, DataStoreError, Destroyed, Resident
from .scheduler import CaseProgress, NumberProgress, Scheduler, Slot
from .targets import TargetFileError, import_targets, parse_targets

__all__ = [
    "Campaign",
    "CampaignError",
    "CaseProgress",
    "DataStore",
    "DataStoreError",
    "Destroyed",
    "NumberProgress",
    "OperatorClient",
    "Resident",
    "Scheduler",
    "Slot",
    "TargetFileError",
    "check_feasible",
    "import_targets",
    "key_registration",
    "new_key",
    "parse_targets",
    "plan_days",
]
