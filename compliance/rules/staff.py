"""Staff and documents: SCRIPT-APPROVED, STAFF-READY (T §14(1), §15(1), §16(2); N §12(1), §13(1), §14(2))."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from ..model import Entry, Finding
from ..present import when_ja, word
from .attempts import month_callback_outcomes, month_outcomes
from .custody import roles_at
from .registry import rule

if TYPE_CHECKING:
    from ..context import Context

DOCUMENT_NAMES = {"manual": "業務マニュアル", "faq": "FAQ", "talk_script": "トークスクリプト"}


def _approved(ctx: Context, kind: str, before: datetime) -> Entry | None:
    """The city's first approval of a document of `kind` (any version) made by `before`."""
    return next(
        (e for e in ctx.state.of("document.approved") if e.data["kind"] == kind and e.at <= before), None
    )


def _script_approvals(ctx: Context) -> dict[str, Entry]:
    """Talk script version -> its earliest approval by the city."""
    found: dict[str, Entry] = {}
    for entry in ctx.state.of("document.approved"):
        version = str(entry.data["version"])
        if entry.data["kind"] == "talk_script" and (version not in found or entry.at < found[version].at):
            found[version] = entry
    return found


@rule("SCRIPT-APPROVED")
def script_approved(ctx: Context) -> Iterator[Finding]:
    approvals = _script_approvals(ctx)
    # A call's outcome is judged at the call's start; a resident's callback's at its arrival.
    talks = [(o, call.at if call is not None else o.at) for o, call in month_outcomes(ctx)] + [
        (o, received.at if received is not None else o.at) for o, received in month_callback_outcomes(ctx)
    ]
    for outcome, started in talks:
        data = outcome.data
        version = data.get("script_version")
        if version is None:
            yield ctx.finding(
                "SCRIPT-APPROVED",
                case=data["case"],
                entries=[outcome.index],
                ja=f"{'折り返し電話の結果' if outcome.type == 'callback.outcome' else '架電結果'}"
                "に使用したトークスクリプトの版（script_version）がない",
                en="the outcome does not name the talk script it followed (script_version)",
            )
        elif (approval := approvals.get(str(version))) is None or approval.at > started:
            yield ctx.finding(
                "SCRIPT-APPROVED",
                case=data["case"],
                entries=[outcome.index] + ([approval.index] if approval is not None else []),
                ja=f"トークスクリプト第{version}版は"
                f"{'折り返し電話の着信' if outcome.type == 'callback.outcome' else '架電'}"
                f"（{when_ja(started)}）の前に甲の承認を得ていない",
                en=f"talk script version {version} was not approved by the city before the call"
                f" ({started:%m-%d %H:%M})",
            )
    # The manual and the FAQ: approved before the contract's first call, judged in its month.
    first = min(ctx.state.calls, key=lambda c: (c.at, c.dialed.index), default=None)
    if first is None or not ctx.in_month(first.at):
        return
    for kind in ("manual", "faq"):
        if _approved(ctx, kind, first.at) is None:
            yield ctx.finding(
                "SCRIPT-APPROVED",
                case=None,
                entries=[first.dialed.index],
                ja=f"{DOCUMENT_NAMES[kind]}が契約の最初の架電（{when_ja(first.at)}）までに甲の承認を得ていない",
                en=f"the {kind} was not approved by the city before the contract's first call"
                f" ({first.at:%Y-%m-%d %H:%M})",
            )


_WORKING_ROLES = frozenset({"operator", "manager"})
_NOT_WORK = frozenset({"access.login", "access.logout"})


def _first_work(ctx: Context) -> dict[str, Entry]:
    """Each person's first event (by `at`) written as operator or manager, signing in and out aside."""
    first: dict[str, Entry] = {}
    for entry in ctx.state.entries:
        if entry.actor == "system" or entry.type in _NOT_WORK:
            continue
        known = first.get(entry.actor)
        if known is not None and known.at <= entry.at:
            continue
        if roles_at(ctx, entry.actor, entry.index) & _WORKING_ROLES:
            first[entry.actor] = entry
    return first


@rule("STAFF-READY")
def staff_ready(ctx: Context) -> Iterator[Finding]:
    trained: dict[str, list[Entry]] = {}
    pledged: dict[str, list[Entry]] = {}
    for kind, into in (("staff.trained", trained), ("staff.pledged", pledged)):
        for entry in ctx.state.of(kind):
            into.setdefault(entry.data["person"], []).append(entry)
    for person, work in sorted(ctx.memo("first-work", lambda: _first_work(ctx)).items()):
        if not ctx.in_month(work.at):
            continue
        missing = [
            name
            for name, done in (("研修 training", trained), ("誓約書 pledge", pledged))
            if not any(e.at < work.at for e in done.get(person, []))
        ]
        if missing:
            ja = "・".join(m.split()[0] for m in missing)
            en = " and ".join(m.split()[1] for m in missing)
            yield ctx.finding(
                "STAFF-READY",
                case=None,
                entries=[work.index],
                ja=f"{person} は{ja}の記録より前に業務（{word('event', work.type)}、{when_ja(work.at)}）を開始",
                en=f"{person} began work ({work.type}, {work.at:%m-%d %H:%M}) with no {en} recorded before it",
            )
