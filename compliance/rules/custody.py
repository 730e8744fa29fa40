"""Data custody and access: CUSTODY-ORDER, CUSTODY-DEADLINE, CUSTODY-PERSON, ACCESS-LOGGED, DESIGNATED-ACTOR."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime
from typing import TYPE_CHECKING

from contract.calendar import add_business_days, end_of_day, month_days, next_month

from ..model import Entry, Finding
from ..present import on_ja, word
from .registry import rule

if TYPE_CHECKING:
    from ..context import Context

ORDER = (
    "custody.received",
    "custody.imported",
    "custody.media_erased",
    "custody.returned",
    "custody.destroyed",
)


def _staff_timelines(ctx: Context) -> dict[str, list[Entry]]:
    timelines: dict[str, list[Entry]] = defaultdict(list)
    for entry in sorted(
        ctx.state.of("staff.designated") + ctx.state.of("staff.revoked"), key=lambda e: e.index
    ):
        timelines[entry.data["person"]].append(entry)
    return timelines


def roles_at(ctx: Context, person: str, index: int) -> set[str] | frozenset[str]:
    """The roles `person` holds just before entry `index` (designations minus revocations)."""
    timeline = ctx.memo("staff-timelines", lambda: _staff_timelines(ctx)).get(person, [])
    final: dict[str, frozenset[str]] = ctx.memo("staff-final", dict)
    after_last = not timeline or index > timeline[-1].index
    if after_last and person in final:
        return final[person]
    roles: set[str] = set()
    for entry in timeline:
        if entry.index >= index:
            break
        if entry.type == "staff.designated":
            roles.add(entry.data["role"])
        else:
            roles.discard(entry.data["role"])
    if after_last:
        final[person] = frozenset(roles)
    return roles


def _batches(ctx: Context) -> dict[str, list[Entry]]:
    found: dict[str, list[Entry]] = defaultdict(list)
    for kind in ORDER:
        for entry in ctx.state.of(kind):
            found[entry.data["batch"]].append(entry)
    return {b: sorted(es, key=lambda e: e.index) for b, es in found.items()}


def _openings(ctx: Context) -> dict[str, list[Entry]]:
    """batch -> the case.opened of its cases (a re-listed case is in several batches)."""
    found: dict[str, list[Entry]] = defaultdict(list)
    for entry in ctx.state.of("case.opened"):
        found[str(entry.data["batch"])].append(entry)
    return found


def _batch_month(ctx: Context, batch: str) -> str | None:
    months = [str(o.data["month"]) for o in ctx.memo("batch-openings", lambda: _openings(ctx)).get(batch, [])]
    return min(months) if months else None


def _this_months_batches(ctx: Context) -> Iterator[tuple[str, list[Entry]]]:
    for batch, events in sorted(_batches(ctx).items()):
        month = _batch_month(ctx, batch)
        if month == ctx.month or (month is None and ctx.in_month(events[0].at)):
            yield batch, events


@rule("CUSTODY-ORDER")
def custody_order(ctx: Context) -> Iterator[Finding]:
    needed = [k for k in ORDER if k != "custody.returned" or ctx.profile.return_required]
    for batch, events in _this_months_batches(ctx):
        first = {k: next((e for e in events if e.type == k), None) for k in ORDER}
        seen: list[Entry] = [e for k in needed if (e := first[k]) is not None]
        if [e.index for e in seen] != sorted(e.index for e in seen):
            yield ctx.finding(
                "CUSTODY-ORDER",
                case=None,
                entries=[e.index for e in seen],
                ja=f"バッチ {batch} の受領→取込→媒体消去→（返却）→削除の順序が違う",
                en=f"batch {batch}: custody events out of order",
            )
        imported, destroyed = first["custody.imported"], first["custody.destroyed"]
        for opening in ctx.memo("batch-openings", lambda: _openings(ctx)).get(batch, []):
            case = ctx.state.cases[str(opening.data["case"])]
            if imported is None or opening.index < imported.index:
                yield ctx.finding(
                    "CUSTODY-ORDER",
                    case=case.ref,
                    entries=[opening.index],
                    ja=f"バッチ {batch} の取込前に案件を開始",
                    en=f"case opened before batch {batch} was imported",
                )
            if destroyed is not None:
                touched = [c.dialed for c in case.calls] + case.sms_sent + case.outcomes
                for entry in touched:
                    # Used on this batch's data: its latest listing by then is this batch's.
                    if entry.index > destroyed.index and _listing_at(case.openings, entry) is opening:
                        yield ctx.finding(
                            "CUSTODY-ORDER",
                            case=case.ref,
                            entries=[destroyed.index, entry.index],
                            ja=f"バッチ {batch} の削除後に案件を処理",
                            en=f"case used after batch {batch} was destroyed",
                        )
        erase_days = ctx.profile.erase_within_business_days
        if erase_days and imported is not None:
            due = end_of_day(add_business_days(imported.at.date(), erase_days))
            yield from ctx.deadline(
                "CUSTODY-ORDER",
                due=due,
                done=first["custody.media_erased"],
                case=None,
                entries=[imported.index],
                ja=f"バッチ {batch} の外部記録媒体の消去（取込の翌開庁日まで）",
                en=f"erase the media of batch {batch} by the next business day after import",
            )
        if (
            ctx.profile.return_required
            and first["custody.destroyed"] is not None
            and first["custody.returned"] is None
        ):
            yield ctx.finding(
                "CUSTODY-ORDER",
                case=None,
                entries=[first["custody.destroyed"].index],
                ja=f"バッチ {batch} を返却せずに削除",
                en=f"batch {batch} destroyed without being returned",
            )


def _listing_at(openings: list[Entry], entry: Entry) -> Entry | None:
    """The case.opened in force when `entry` was written (the latest before it in the ledger)."""
    found = None
    for opening in openings:
        if opening.index < entry.index:
            found = opening
    return found


def _destroy_due(ctx: Context, batch_month: str) -> datetime:
    if ctx.profile.destroy_by == "contract_end":
        return end_of_day(ctx.profile.contract_end)
    return end_of_day(month_days(next_month(batch_month))[-1])


@rule("CUSTODY-DEADLINE")
def custody_deadline(ctx: Context) -> Iterator[Finding]:
    for batch, events in _this_months_batches(ctx):
        due = _destroy_due(ctx, _batch_month(ctx, batch) or ctx.month)
        destroyed = next((e for e in events if e.type == "custody.destroyed"), None)
        yield from ctx.deadline(
            "CUSTODY-DEADLINE",
            due=due,
            done=destroyed,
            case=None,
            entries=[events[0].index],
            ja=f"バッチ {batch} の復元不可能な削除（期限 {on_ja(due.date() - date.resolution)}）",
            en=f"destroy batch {batch} irrecoverably by {due.date() - date.resolution}",
        )


@rule("CUSTODY-PERSON")
def custody_person(ctx: Context) -> Iterator[Finding]:
    for kind in ORDER:
        for entry in ctx.state.of(kind):
            if ctx.in_month(entry.at) and "custodian" not in roles_at(ctx, entry.actor, entry.index):
                yield ctx.finding(
                    "CUSTODY-PERSON",
                    case=None,
                    entries=[entry.index],
                    ja=f"{entry.actor} は指定された取扱者ではない（{word('event', kind)}）",
                    en=f"{entry.actor} was not a designated custodian ({kind})",
                )


@rule("ACCESS-LOGGED")
def access_logged(ctx: Context) -> Iterator[Finding]:
    logins: dict[tuple[str, date], list[Entry]] = defaultdict(list)
    for entry in ctx.state.of("access.login"):
        if entry.data["success"]:
            logins[(entry.data["person"], entry.at.date())].append(entry)
    first_writes: dict[tuple[str, date], Entry] = {}
    for entry in ctx.state.entries:
        if entry.actor == "system" or entry.type.startswith("access.") or not ctx.in_month(entry.at):
            continue
        roles = roles_at(ctx, entry.actor, entry.index)
        if not roles & {"operator", "manager", "custodian"}:
            continue
        first_writes.setdefault((entry.actor, entry.at.date()), entry)
    for (person, day), entry in sorted(first_writes.items(), key=lambda kv: kv[1].index):
        if not any(login.at <= entry.at for login in logins.get((person, day), [])):
            yield ctx.finding(
                "ACCESS-LOGGED",
                case=None,
                entries=[entry.index],
                ja=f"{person} は{on_ja(day)}に記録を書いたが、その前のログイン記録がない",
                en=f"{person} wrote on {day} with no successful login before it",
            )


def _key_events(ctx: Context) -> tuple[dict[str, str], dict[str, int], set[str]]:
    """(key id -> holder, key id -> index of its revocation, every person ever designated)."""
    holders = {e.data["key"]: e.data["holder"] for e in ctx.state.of("key.registered")}
    revoked: dict[str, int] = {}
    for entry in ctx.state.of("key.revoked"):
        revoked.setdefault(entry.data["key"], entry.index)
    people = {e.data["person"] for e in ctx.state.of("staff.designated")}
    return holders, revoked, people


@rule("DESIGNATED-ACTOR")
def designated_actor(ctx: Context) -> Iterator[Finding]:
    profile = ctx.profile
    holders, revoked, people = ctx.memo("key-events", lambda: _key_events(ctx))
    designations = ctx.state.of("staff.designated")
    bootstrap = designations[0].index if designations else -1
    by_kind: dict[str, tuple[frozenset[str], bool, bool]] = {}  # the profile's table, per type
    for entry in ctx.state.entries:
        if not ctx.in_month(entry.at):
            continue
        kind = by_kind.get(entry.type)
        if kind is None:
            kind = by_kind[entry.type] = (
                frozenset(profile.roles_for(entry.type)),
                profile.for_themselves_only(entry.type),
                profile.device_signs(entry.type),
            )
        allowed, for_themselves, device_may = kind
        case = entry.data.get("case")
        holder = holders.get(entry.key)
        # A key registered to something that was never designated staff is a device's (a console's);
        # one registered to `system` is the dialling core's (`kansa dialer run`), whose actor it is.
        device = holder is not None and holder not in people and holder != "system"
        if holder is not None and entry.index > revoked.get(entry.key, entry.index):
            yield ctx.finding(
                "DESIGNATED-ACTOR",
                case=case,
                entries=[revoked[entry.key], entry.index],
                ja=f"失効した鍵（{holder}）で署名された記録",
                en=f"signed with a revoked key (of {holder})",
            )
        if device and device_may:
            continue  # what a device records (a failed sign-in) is kept, whoever tried
        if device:
            yield ctx.finding(
                "DESIGNATED-ACTOR",
                case=case,
                entries=[entry.index],
                ja=f"端末 {holder} の鍵で「{word('event', entry.type)}」が署名されている（端末の鍵は端末が記録するものだけに使う）",
                en=f"{entry.type} signed with the key of the device {holder}, which signs only what it records",
            )
        elif holder is not None and holder != entry.actor:
            yield ctx.finding(
                "DESIGNATED-ACTOR",
                case=case,
                entries=[entry.index],
                ja=f"{entry.actor} の記録が {holder} の鍵で署名されている",
                en=f"an event of {entry.actor} signed with the key of {holder}",
            )
        if entry.actor == "system":
            continue
        if for_themselves and entry.data.get("person") != entry.actor:
            yield ctx.finding(
                "DESIGNATED-ACTOR",
                case=case,
                entries=[entry.index],
                ja=f"{entry.actor} が他人（{entry.data.get('person')}）の「{word('event', entry.type)}」を記録",
                en=f"{entry.actor} wrote {entry.type} for someone else, {entry.data.get('person')}",
            )
        if entry.type == "staff.designated" and entry.index == bootstrap:
            continue  # the very first designation bootstraps the staff list
        if not roles_at(ctx, entry.actor, entry.index) & allowed:
            who = "/".join(profile.roles_for(entry.type)) or "system only"
            who_ja = "・".join(word("role", r) for r in profile.roles_for(entry.type)) or "システムのみ"
            yield ctx.finding(
                "DESIGNATED-ACTOR",
                case=case,
                entries=[entry.index],
                ja=f"{entry.actor} は「{word('event', entry.type)}」を記録できる役割（{who_ja}）に指定されていない",
                en=f"{entry.actor} is not designated in a role that may write {entry.type} ({who})",
            )
