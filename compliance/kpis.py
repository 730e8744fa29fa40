"""KPIs as docs/compliance.md ("KPIs") writes them down: per case, per period, the denominator always stated.

Called = cases with at least one call.dialed in the period. Reached = called
cases with a call.outcome or a callback.outcome (a resident's callback) whose
party is self, or household with proxy_consent. Promise = reached cases with a
promise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import Context


def _ratio(numerator: int, denominator: int, target: float | None) -> dict[str, Any]:
    value = round(numerator / denominator, 4) if denominator else None
    met = None if target is None or value is None else value >= target
    return {"numerator": numerator, "denominator": denominator, "value": value, "target": target, "met": met}


def reached(outcome_data: dict[str, Any]) -> bool:
    return bool(
        outcome_data["party"] == "self"
        or (outcome_data["party"] == "household" and outcome_data["proxy_consent"])
    )


def cases_in(ctx: Context, months: set[str]) -> tuple[set[str], set[str], set[str]]:
    """(called, reached, promised) cases of the given months."""
    wanted = {(int(m[:4]), int(m[5:7])) for m in months}
    called = {c.case for c in ctx.state.calls if (c.at.year, c.at.month) in wanted}
    got, promised = set(), set()
    # A resident's callback (callback.outcome) reaches the case as a call does, for a case
    # called in the period (the rate's denominator): docs/compliance.md "KPIs".
    for outcome in ctx.state.of("call.outcome") + ctx.state.of("callback.outcome"):
        case = outcome.data["case"]
        if case in called and (outcome.at.year, outcome.at.month) in wanted and reached(outcome.data):
            got.add(case)
            if outcome.data["promise"] is not None:
                promised.add(case)
    return called, got, promised


def compute_kpis(ctx: Context) -> dict[str, Any]:
    p = ctx.profile
    month = {ctx.month}
    # A case counts once per period: once in the month, once over the contract (a resident
    # listed in several months keeps one reference, so the sets below hold it once).
    called, reached_cases, promised = cases_in(ctx, month)
    scope = {m for m in p.calling_months if m <= ctx.month} | month
    c_called, c_reached, c_promised = (
        cases_in(ctx, scope)
        if "contract" in (p.contact_scope, p.promise_scope)
        else (called, reached_cases, promised)
    )
    if p.contact_scope == "contract":
        contact = _ratio(len(c_reached), len(c_called), p.contact_target)
        contact["scope"] = f"contract to {ctx.month}"
        contact["month"] = _ratio(len(reached_cases), len(called), None)
    else:
        contact = _ratio(len(reached_cases), len(called), p.contact_target)
        contact["scope"] = "month"

    def promise_rate(
        got: set[str], reached_: set[str], called_: set[str], target: float | None
    ) -> dict[str, Any]:
        rate = _ratio(len(got), len(reached_ if p.promise_denominator == "reached" else called_), target)
        rate["denominator_is"] = p.promise_denominator
        rate["of_reached"] = _ratio(len(got), len(reached_), None)["value"]
        rate["of_called"] = _ratio(len(got), len(called_), None)["value"]
        return rate

    if p.promise_scope == "contract":
        promise = promise_rate(c_promised, c_reached, c_called, p.promise_target or None)
        promise["scope"] = f"contract to {ctx.month}"
        promise["month"] = promise_rate(promised, reached_cases, called, None)
    else:
        promise = promise_rate(promised, reached_cases, called, p.promise_target or None)
        promise["scope"] = "month"

    calls = [c for c in ctx.state.calls if ctx.in_month(c.at)]
    attempts: dict[str, int] = {}
    for call in calls:
        key = f"{call.case}/{call.number}"
        attempts[key] = attempts.get(key, 0) + 1
    sent = [e for e in ctx.state.of("sms.sent") if ctx.in_month(e.at)]
    blocked = [e for e in ctx.state.of("sms.blocked") if ctx.in_month(e.at)]
    volume = {
        "numerator": len(called),
        "denominator": None,
        "value": len(called),
        "target": None,
        "met": None,
        "cases_called": len(called),
        "attempts": len(calls),
        "attempts_per_number": round(len(calls) / len(attempts), 2) if attempts else None,
        "sms_sent": len(sent),
        "sms_blocked": len(blocked),
        "calls_expected": p.calls_expected.get(ctx.month, p.calls_expected.get("total")),
        "sms_expected": p.sms_expected.get(ctx.month, p.sms_expected.get("total")),
        "expected_is": "month" if ctx.month in p.calls_expected else "contract total",
    }
    callbacks = [e for e in ctx.state.of("callback.received") if ctx.in_month(e.at)]
    in_hours = [e for e in callbacks if ctx.in_calling_period(e.at)]
    by_handler: dict[str, int] = {}
    for entry in callbacks:
        by_handler[entry.data["handled"]] = by_handler.get(entry.data["handled"], 0) + 1
    # What the operators recorded for residents' callbacks (callback.outcome), and the cases
    # a callback completed (T §10(4)キ, N §8(4)キ): the report counts them beside the calls.
    talks = [e for e in ctx.state.of("callback.outcome") if ctx.in_month(e.at)]
    by_disposition: dict[str, int] = {}
    for entry in talks:
        by_disposition[entry.data["disposition"]] = by_disposition.get(entry.data["disposition"], 0) + 1
    callback_kpi = {
        "numerator": len(callbacks),
        "denominator": None,
        "value": len(callbacks),
        "target": None,
        "met": None,
        "in_hours": len(in_hours),
        "out_of_hours": len(callbacks) - len(in_hours),
        "handled": by_handler,
        "outcomes": by_disposition,
        "completed_cases": len({e.data["case"] for e in talks if e.data["disposition"] == "completed"}),
    }
    return {
        "KPI-CONTACT": contact,
        "KPI-PROMISE": promise,
        "KPI-VOLUME": volume,
        "KPI-CALLBACKS": callback_kpi,
    }
