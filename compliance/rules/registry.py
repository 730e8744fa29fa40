"""Every rule of docs/rules.md registers here under its id."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..context import Context
    from ..model import Finding

RuleFn = Callable[["Context"], Iterator["Finding"]]


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str  # the default; a finding may say `judgement` where we read a vague clause
    module: str
    check: RuleFn


RULES: dict[str, Rule] = {}


def rule(rule_id: str, severity: str = "violation") -> Callable[[RuleFn], RuleFn]:
    def register(fn: RuleFn) -> RuleFn:
        if rule_id in RULES:
            raise ValueError(f"rule {rule_id} registered twice")
        RULES[rule_id] = Rule(rule_id, severity, fn.__module__, fn)
        return fn

    return register
