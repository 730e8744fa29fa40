"""Contract profiles: every number a rule uses, as data (profiles/<id>.toml).

A third contract is a new file. Loading checks every key and value and names
the bad one, e.g. `nagaoka-nhi-2026.toml: attempts.per_number: expected an integer >= 1`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, time
from importlib import resources
from pathlib import Path
from typing import Any


class ProfileError(ValueError):
    pass


def _t(text: str) -> time:
    return time.fromisoformat(text)


@dataclass(frozen=True)
class Profile:
    id: str
    name: str
    short: str
    contract_end: date
    calling_months: tuple[str, ...]
    weekday_hours: tuple[time, time]
    weekend_hours: tuple[time, time]
    time_bands: tuple[tuple[time, time], ...]
    first_day: int
    first_day_tolerance: int
    campaign_days: int
    campaign_days_tolerance: int
    weekend_days_min: int
    numbers_max: int
    attempts_per_number: int
    nonweekday_required: bool
    same_result_exemption: bool
    ring_seconds: int
    callback_window_minutes: int
    outcome_within_minutes: int
    first_call_weekday_only: bool
    first_call_hours: tuple[time, time] | None
    escalation_business_days: int
    sms_lookup_within_days: int
    sms_send_tolerance_minutes: int
    sms_per_case_per_month: tuple[int, int]
    callerid_lines_min: int
    callerid_landline_required: bool
    callerid_max_months: int
    daily_deadline: time
    daily_counts: str
    sms_report_business_days: int
    monthly_business_days: int
    erase_within_business_days: int
    return_required: bool
    destroy_by: str
    contact_target: float
    contact_scope: str
    promise_target: float
    promise_scope: str
    promise_denominator: str
    calls_expected: dict[str, int]
    sms_expected: dict[str, int]
    clauses: dict[str, str]
    quotes: dict[str, str]  # rule id -> the contract's words, verbatim (「…」 marks an elision)
    # Who may write what: an event type, or a family as `custody.*`, -> the roles that may write
    # it besides `system` (rules.md "Who may write what"; DESIGNATED-ACTOR reads it).
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    for_themselves: tuple[str, ...] = ()  # types (or families) whose `person` must be the actor
    device_may_sign: tuple[str, ...] = ()  # what a device's key (a console's) may sign
    addressee: str = ""  # [report] whom the monthly report is addressed to (the city)
    contractor: str = ""  # [report] the contractor's name on the monthly report
    wareki: bool = False  # [report] dates in the deliverables as 和暦 (令和8年10月26日)

    def applies(self, rule_id: str) -> bool:
        return rule_id in self.clauses

    def roles_for(self, kind: str) -> tuple[str, ...]:
        """The roles that may write an event of type `kind` (the exact type first, then its family)."""
        found = self.roles.get(kind)
        if found is None:
            found = self.roles.get(kind.split(".", 1)[0] + ".*", ())
        return found

    def _listed(self, kinds: tuple[str, ...], kind: str) -> bool:
        return kind in kinds or kind.split(".", 1)[0] + ".*" in kinds

    def for_themselves_only(self, kind: str) -> bool:
        return self._listed(self.for_themselves, kind)

    def device_signs(self, kind: str) -> bool:
        return self._listed(self.device_may_sign, kind)


class _Reader:
    def __init__(self, raw: dict[str, Any], source: str) -> None:
        self.raw, self.source = raw, source
        self.used: set[str] = set()

    def get(self, path: str, kind: type, check: Any = None, what: str = "") -> Any:
        node: Any = self.raw
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ProfileError(f"{self.source}: {path}: missing")
            node = node[part]
        self.used.add(path)
        if kind is float and isinstance(node, int) and not isinstance(node, bool):
            node = float(node)
        if not isinstance(node, kind) or (kind is int and isinstance(node, bool)):
            raise ProfileError(f"{self.source}: {path}: expected {what or kind.__name__}, got {node!r}")
        if check is not None and not check(node):
            raise ProfileError(f"{self.source}: {path}: expected {what}, got {node!r}")
        return node

    def hours(self, path: str) -> tuple[time, time]:
        value = self.get(path, list, lambda v: len(v) == 2, "[start, end] as HH:MM")
        try:
            start, end = _t(value[0]), _t(value[1])
        except (TypeError, ValueError) as exc:
            raise ProfileError(
                f"{self.source}: {path}: expected [start, end] as HH:MM, got {value!r}"
            ) from exc
        if not start < end:
            raise ProfileError(f"{self.source}: {path}: start must be before end")
        return start, end

    def unknown(self) -> list[str]:
        found = []

        def walk(node: Any, prefix: str) -> None:
            for key, value in node.items():
                path = f"{prefix}{key}"
                if isinstance(value, dict) and path not in self.used and path not in _FREE_TABLES:
                    if path in ("kpis.calls_expected", "kpis.sms_expected"):
                        continue
                    walk(value, path + ".")
                elif path not in self.used and not path.startswith(_FREE_TABLES):
                    found.append(path)

        walk(self.raw, "")
        return found


_FREE_TABLES = ("clauses", "quotes", "roles")  # tables whose keys are ids, checked where they are read
ROLES = ("operator", "manager", "custodian", "city")


def _kinds(r: _Reader, path: str) -> tuple[str, ...]:
    return tuple(
        r.get(
            path,
            list,
            lambda v: all(isinstance(k, str) and "." in k for k in v),
            "a list of event types (or families as custody.*)",
        )
    )


def _roles(r: _Reader) -> dict[str, tuple[str, ...]]:
    table = r.get("roles", dict, what="a table of event type = [roles]")
    roles: dict[str, tuple[str, ...]] = {}
    for kind, allowed in table.items():
        if "." not in kind:
            raise ProfileError(f"{r.source}: roles.{kind}: expected an event type or a family as {kind}.*")
        if not isinstance(allowed, list) or not all(a in ROLES for a in allowed):
            raise ProfileError(
                f"{r.source}: roles.{kind}: expected a list of {', '.join(ROLES)}, got {allowed!r}"
            )
        roles[str(kind)] = tuple(allowed)
    return roles


def _positive(v: int) -> bool:
    return v >= 1


def _non_negative(v: int) -> bool:
    return v >= 0


def parse_profile(raw: dict[str, Any], source: str, *, known_rules: Collection[str] | None = None) -> Profile:
    """A profile from parsed TOML. ``known_rules`` (the compliance engine's registry) lets the
    caller refuse clause ids it has no rule for; the contract package itself knows no rules."""
    r = _Reader(raw, source)
    months = r.get(
        "calling_months",
        list,
        lambda v: all(isinstance(m, str) and len(m) == 7 for m in v),
        "a list of YYYY-MM",
    )
    try:
        contract_end = date.fromisoformat(r.get("contract_end", str, what="a day YYYY-MM-DD"))
        daily_deadline = _t(r.get("reports.daily_deadline", str, what="HH:MM"))
    except ValueError as exc:
        raise ProfileError(f"{source}: {exc}") from exc
    bands = r.get("hours.time_bands", list, lambda v: len(v) >= 1, "a list of [start, end]")
    clauses = r.get("clauses", dict, what="a table of rule id = clause")
    unknown_rules = sorted(set(clauses) - set(known_rules)) if known_rules is not None else []
    if unknown_rules:
        raise ProfileError(f"{source}: clauses.{unknown_rules[0]}: no such rule")
    quotes = r.get("quotes", dict, what="a table of rule id = the contract's words")
    unquoted = sorted(set(clauses) - set(quotes))
    if unquoted:
        raise ProfileError(
            f"{source}: quotes.{unquoted[0]}: missing (every rule that applies quotes its clause)"
        )
    stray = sorted(set(quotes) - set(clauses))
    if stray:
        raise ProfileError(f"{source}: quotes.{stray[0]}: the rule does not apply to this contract")
    first_call = raw.get("first_call", {})
    weekday_only = r.get("first_call.weekday_only", bool)
    per_case = r.get(
        "sms.per_case_per_month",
        list,
        lambda v: len(v) == 2 and all(isinstance(x, int) and x >= 0 for x in v),
        "[min, max]",
    )
    profile = Profile(
        id=r.get("id", str),
        name=r.get("name", str),
        short=r.get("short", str),
        contract_end=contract_end,
        calling_months=tuple(months),
        weekday_hours=r.hours("hours.weekday"),
        weekend_hours=r.hours("hours.weekend_holiday"),
        time_bands=tuple(_band(source, b) for b in bands),
        first_day=r.get("campaign.first_day", int, lambda v: 1 <= v <= 28, "a day of the month 1-28"),
        first_day_tolerance=r.get("campaign.first_day_tolerance", int, _non_negative, "an integer >= 0"),
        campaign_days=r.get("campaign.days", int, _positive, "an integer >= 1"),
        campaign_days_tolerance=r.get("campaign.days_tolerance", int, _non_negative, "an integer >= 0"),
        weekend_days_min=r.get("campaign.weekend_days_min", int, _non_negative, "an integer >= 0"),
        numbers_max=r.get("attempts.numbers_max", int, _positive, "an integer >= 1"),
        attempts_per_number=r.get("attempts.per_number", int, _positive, "an integer >= 1"),
        nonweekday_required=r.get("attempts.nonweekday_required", bool),
        same_result_exemption=r.get("attempts.same_result_exemption", bool),
        ring_seconds=r.get("attempts.ring_seconds", int, _positive, "an integer >= 1"),
        callback_window_minutes=r.get("attempts.callback_window_minutes", int, _positive, "an integer >= 1"),
        outcome_within_minutes=r.get("attempts.outcome_within_minutes", int, _positive, "an integer >= 1"),
        first_call_weekday_only=weekday_only,
        first_call_hours=r.hours("first_call.hours") if "hours" in first_call else None,
        escalation_business_days=r.get("escalation.business_days", int, _positive, "an integer >= 1"),
        sms_lookup_within_days=r.get("sms.lookup_within_days", int, _positive, "an integer >= 1"),
        sms_send_tolerance_minutes=r.get("sms.send_tolerance_minutes", int, _non_negative, "an integer >= 0"),
        sms_per_case_per_month=(per_case[0], per_case[1]),
        callerid_lines_min=r.get("callerid.lines_min", int, _positive, "an integer >= 1"),
        callerid_landline_required=r.get("callerid.landline_required", bool),
        callerid_max_months=r.get("callerid.max_months_in_use", int, _non_negative, "an integer >= 0"),
        daily_deadline=daily_deadline,
        daily_counts=r.get(
            "reports.daily_counts", str, lambda v: v in ("days", "business_days"), "days or business_days"
        ),
        sms_report_business_days=r.get("reports.sms_business_days", int, _positive, "an integer >= 1"),
        monthly_business_days=r.get("reports.monthly_business_days", int, _positive, "an integer >= 1"),
        erase_within_business_days=r.get(
            "custody.erase_within_business_days", int, _non_negative, "an integer >= 0"
        ),
        return_required=r.get("custody.return_required", bool),
        destroy_by=r.get(
            "custody.destroy_by",
            str,
            lambda v: v in ("contract_end", "end_of_next_month"),
            "contract_end or end_of_next_month",
        ),
        contact_target=r.get("kpis.contact_target", float, lambda v: 0 <= v <= 1, "a share 0-1"),
        contact_scope=r.get(
            "kpis.contact_scope", str, lambda v: v in ("month", "contract"), "month or contract"
        ),
        promise_target=r.get("kpis.promise_target", float, lambda v: 0 <= v <= 1, "a share 0-1"),
        promise_scope=r.get(
            "kpis.promise_scope", str, lambda v: v in ("month", "contract"), "month or contract"
        ),
        promise_denominator=r.get(
            "kpis.promise_denominator", str, lambda v: v in ("reached", "called"), "reached or called"
        ),
        calls_expected=dict(r.get("kpis.calls_expected", dict)),
        sms_expected=dict(r.get("kpis.sms_expected", dict)),
        clauses={str(k): str(v) for k, v in clauses.items()},
        quotes={str(k): str(v) for k, v in quotes.items()},
        roles=_roles(r),
        for_themselves=_kinds(r, "actors.for_themselves"),
        device_may_sign=_kinds(r, "actors.device_may_sign"),
        addressee=r.get("report.addressee", str) if "report" in raw else "",
        contractor=r.get("report.contractor", str) if "report" in raw else "",
        wareki=r.get("report.wareki", bool) if "wareki" in raw.get("report", {}) else False,
    )
    extra = r.unknown()
    if extra:
        raise ProfileError(f"{source}: {extra[0]}: unknown key")
    return profile


def _band(source: str, band: Any) -> tuple[time, time]:
    try:
        start, end = _t(band[0]), _t(band[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise ProfileError(f"{source}: hours.time_bands: bad band {band!r}") from exc
    return start, end


def load_profile(name_or_path: str | Path, *, known_rules: Collection[str] | None = None) -> Profile:
    """A shipped profile by id (e.g. nagaoka-nhi-2026), or a .toml file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.exists():
        text, source = path.read_text("utf-8"), path.name
    else:
        resource = resources.files("contract").joinpath("profiles", f"{name_or_path}.toml")
        if not resource.is_file():
            raise ProfileError(f"no contract profile {name_or_path!r}")
        text, source = resource.read_text("utf-8"), f"{name_or_path}.toml"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: {exc}") from exc
    return parse_profile(raw, source, known_rules=known_rules)
