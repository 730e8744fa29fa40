"""Contract profiles as the compliance engine takes them.

`contract/` loads and checks a profile without knowing any rule; here every
clause id the profile names must also be a rule in the engine's registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contract import profile as _contract

from .rules import RULES

Profile = _contract.Profile
ProfileError = _contract.ProfileError


def load_profile(name_or_path: str | Path) -> Profile:
    """A shipped profile by id (e.g. nagaoka-nhi-2026), or a .toml file by path."""
    return _contract.load_profile(name_or_path, known_rules=RULES)


def parse_profile(raw: dict[str, Any], source: str) -> Profile:
    return _contract.parse_profile(raw, source, known_rules=RULES)
