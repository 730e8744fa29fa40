"""The auditors' pages: ledger status, an entry with its proof, findings, KPIs.

Each page first checks the same permission Datasette's own views would
(`view-database` on the database it reads), so the rules stay in
configuration: anonymous visitors get Datasette's 403 here too.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from datasette.resources import DatabaseResource
from datasette.utils.asgi import NotFound, Response
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from compliance.present import JST_NOTE, SEVERITY_MARK, clause_ja, jst, quorum_ja, word
from ledger import LedgerReader, ProofError, event_bytes, leaf_hash, verify_inclusion
from ledger.keys import KeyEventError
from ledger.note import b64decode, b64encode
from ledger.witnessed import witness_status

from . import audit_pages
from .site import site_of

LEDGER_DB = "ledger"
COMPLIANCE_DB = "compliance"


async def _require(datasette: Any, request: Any, database: str) -> None:
    await datasette.ensure_permission(
        action="view-database", resource=DatabaseResource(database=database), actor=request.actor
    )


async def _render(datasette: Any, request: Any, template: str, context: dict[str, Any]) -> Response:
    return Response.html(await datasette.render_template(template, context, request=request))


# -- status ------------------------------------------------------------------------------------


def _check_json(check: Any) -> dict[str, Any]:
    report = check.report
    return {
        "running": check.running,
        "done": check.done,
        "total": check.total,
        "ok": check.ok,
        "from_index": check.start,
        "size": report.size if report else None,
        "bad_index": report.bad_index if report else None,
        "reason": report.reason if report else None,
        "at": check.at.isoformat() if check.at else None,
    }


async def status(request: Any, datasette: Any) -> Response:
    await _require(datasette, request, LEDGER_DB)
    site = site_of(datasette)
    state = await asyncio.to_thread(site.watch.verify)
    info = await asyncio.to_thread(_ledger_info, site.ledger_path)
    witnesses = None
    if site.policy is not None:
        cached = site.witness_cache
        if cached is not None and cached[0] == info["checkpoint_seq"]:
            witnesses = cached[1]
        else:
            witnesses = await asyncio.to_thread(witness_status, site.ledger_path, site.policy)
            site.witness_cache = (info["checkpoint_seq"], witnesses)
    context = {
        "state": state,
        "failed": state.failed,
        **info,
        "ledger_file": site.ledger_path.name,
        "witnesses": witnesses,
        "quorum_ja": quorum_ja(site.policy) if site.policy is not None else "",
    }
    if request.url_vars.get("format") == ".json":
        failed = state.failed
        return Response.json(
            {
                "size": info["size"],
                "origin": info["origin"],
                "vkey": info["vkey"],
                "checkpoint": info["checkpoint"],
                "witnesses": witnesses,
                "verification": {
                    # ok: true only once this start's full verification passed (and the latest
                    # incremental check); null while it runs; false when either failed.
                    "ok": state.ok,
                    "running": state.running,
                    "verified_size": state.verified_size,
                    "bad_index": failed.report.bad_index if failed and failed.report else None,
                    "reason": failed.report.reason if failed and failed.report else None,
                    "full": _check_json(state.full),
                    "incremental": _check_json(state.incremental),
                    "previous_full": state.previous_full,
                },
            }
        )
    return await _render(datasette, request, "kansa_status.html", context)


def _ledger_info(path: Any) -> dict[str, Any]:
    with LedgerReader.open(path) as ledger:  # once per visit; the latest checkpoint is one row
        latest = ledger.latest_checkpoint()
        return {
            "size": ledger.size,
            "origin": ledger.origin,
            "contract": ledger.contract,
            "vkey": ledger.verifier.vkey,
            "checkpoint": None
            if latest is None
            else {
                "size": latest.size,
                "root": b64encode(latest.root),
                "note": latest.note,
                "signed_at": latest.signed_at,
            },
            "checkpoints": ledger.checkpoint_count(),
            "checkpoint_seq": ledger.last_checkpoint_seq(),
        }


# -- entry -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryView:
    index: int
    leaf: str
    event: dict[str, Any]
    received: str
    leaf_hash: str
    key: str
    holder: str
    signature: str
    signature_ok: bool
    checkpoint: dict[str, Any] | None
    proof: list[str]
    proof_ok: bool | None
    proof_error: str
    vkey: str
    key_problem: str = ""  # why the signing key could not be looked up (a damaged key record)


@dataclass(frozen=True)
class UnreadableEntry:
    """A stored leaf that is not a ledger entry any more (tampered with or damaged)."""

    index: int
    leaf: str
    problem: str


def _entry(path: Any, index: int) -> EntryView | UnreadableEntry | None:
    with LedgerReader.open(path) as ledger:
        if not 0 <= index < ledger.size:
            return None
        leaf = ledger.leaf(index)
        try:
            parsed = json.loads(leaf)
            sig, event, received = parsed["sig"], parsed["event"], parsed["received"]
            if not isinstance(event, dict) or not isinstance(sig, dict):
                raise TypeError("event and sig must be objects")
            sig_key, sig_value = str(sig["key"]), str(sig["ed25519"])
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            return UnreadableEntry(index, leaf.decode("utf-8", "replace"), str(exc))
        key_problem = ""
        if sig_key == ledger.key_ref:
            public_key, holder = (
                ledger.verifier.public_key,
                f"台帳自身の鍵（{ledger.origin}）",
            )
        else:
            try:
                record = ledger.key_timeline().get(sig_key)
            except KeyEventError as exc:
                record = None
                key_problem = f"鍵の記録（{exc.index}番）が読めないため、署名した鍵を確かめられません"
            public_key, holder = (record.public_key, record.holder) if record else (b"", "不明")
        try:
            VerifyKey(public_key).verify(event_bytes(leaf), b64decode(sig_value))
            signature_ok = True
        except (BadSignatureError, ValueError, TypeError):
            signature_ok = False
        digest = leaf_hash(leaf)
        cp = ledger.latest_checkpoint()
        checkpoint, proof, proof_ok, error = None, [], None, ""
        if cp is not None and cp.size > index:
            checkpoint = {
                "size": cp.size,
                "root": b64encode(cp.root),
                "note": cp.note,
                "signed_at": cp.signed_at,
            }
            hashes = ledger.inclusion_proof(index, cp.size)
            proof = [b64encode(h) for h in hashes]
            try:
                verify_inclusion(index, cp.size, digest, hashes, cp.root)
                proof_ok = True
            except ProofError as exc:
                proof_ok, error = False, str(exc)
        return EntryView(
            index=index,
            leaf=leaf.decode("utf-8"),
            event=event,
            received=str(received),
            leaf_hash=b64encode(digest),
            key=sig_key,
            holder=holder,
            signature=sig_value,
            signature_ok=signature_ok,
            checkpoint=checkpoint,
            proof=proof,
            proof_ok=proof_ok,
            proof_error=error,
            vkey=ledger.verifier.vkey,
            key_problem=key_problem,
        )


async def entry(request: Any, datasette: Any) -> Response:
    await _require(datasette, request, LEDGER_DB)
    site = site_of(datasette)
    index = int(request.url_vars["index"])
    view = await asyncio.to_thread(_entry, site.ledger_path, index)
    if view is None:
        raise NotFound(f"台帳に番号 {index} の記録はありません no entry {index}")
    if isinstance(view, UnreadableEntry):
        if request.url_vars.get("format") == ".json":
            return Response.json({"index": index, "error": f"unreadable entry: {view.problem}"}, status=409)
        return await _render(datasette, request, "kansa_entry_unreadable.html", {"e": view})
    if request.url_vars.get("format") == ".json":
        # The bundle an outside tool needs: the leaf, the proof in `kansa ledger prove` form,
        # the signed checkpoint and the verifier key.
        return Response.json(
            {
                "index": view.index,
                "leaf": b64encode(view.leaf.encode("utf-8")),
                "proof": None
                if view.checkpoint is None
                else {"index": view.index, "size": view.checkpoint["size"], "hashes": view.proof},
                "checkpoint": None if view.checkpoint is None else view.checkpoint["note"],
                "vkey": view.vkey,
            }
        )
    runs = await audit_pages.latest_runs(datasette)
    case = view.event.get("data", {}).get("case") if isinstance(view.event.get("data"), dict) else None
    return await _render(
        datasette,
        request,
        "kansa_entry.html",
        {
            "e": view,
            "case": case,
            "kind": word("event", view.event.get("type")),
            "words": audit_pages.describe(view.event, audit_pages.latest_bands(runs)),
            "at_jst": jst(view.event.get("at")),
            "received_jst": jst(view.received, seconds=True),
            "cited": await audit_pages.case_findings(datasette, runs, entry=view.index),
            "jst_note": JST_NOTE,
            "event_json": json.dumps(view.event, ensure_ascii=False, indent=2, sort_keys=True),
            "ledger_file": site.ledger_path.name,
        },
    )


# -- findings and KPIs -----------------------------------------------------------------------

LATEST_RUNS = """
SELECT r.* FROM runs r
WHERE r.size = (SELECT max(size) FROM runs WHERE month = r.month)
ORDER BY r.month
"""


async def _runs(datasette: Any) -> list[dict[str, Any]]:
    db = datasette.get_database(COMPLIANCE_DB)
    return [dict(row) for row in (await db.execute(LATEST_RUNS)).rows]


async def findings(request: Any, datasette: Any) -> Response:
    await _require(datasette, request, COMPLIANCE_DB)
    db = datasette.get_database(COMPLIANCE_DB)
    runs = await _runs(datasette)
    months = [r["month"] for r in runs]
    month = request.args.get("month") or (months[-1] if months else None)
    rule = request.args.get("rule") or None
    run = next((r for r in runs if r["month"] == month), None)
    groups: list[dict[str, Any]] = []
    if run is not None:
        rows = (
            await db.execute(
                """
                SELECT f.rowid AS id, f.*, c.quote FROM findings f
                LEFT JOIN clauses c ON c.contract = :contract AND c.rule = f.rule
                WHERE f.month = :month AND f.size = :size AND f.root = :root
                  AND (:rule IS NULL OR f.rule = :rule)
                ORDER BY f.rule, f.severity, f.case_ref, f.rowid
                """,
                {
                    "contract": run["contract"],
                    "month": month,
                    "size": run["size"],
                    "root": run["root"],
                    "rule": rule,
                },
            )
        ).rows
        for row in rows:
            item = dict(row)
            item["entries"] = json.loads(item["entries"])
            item["severity_words"] = SEVERITY_MARK["pending" if item["pending"] else item["severity"]]
            if not groups or groups[-1]["rule"] != item["rule"]:
                groups.append(
                    {
                        "rule": item["rule"],
                        "clause": clause_ja(item["clause"]),
                        "quote": item["quote"],
                        "items": [],
                    }
                )
            groups[-1]["items"].append(item)
    return await _render(
        datasette,
        request,
        "kansa_findings.html",
        {"months": months, "month": month, "rule": rule, "run": run, "groups": groups},
    )


ROUTES = [
    (r"^/-/kansa/status(?P<format>\.json)?$", status),
    (r"^/-/kansa/entry/(?P<index>\d+)(?P<format>\.json)?$", entry),
    (r"^/-/kansa/findings$", findings),
    *audit_pages.ROUTES,
]
