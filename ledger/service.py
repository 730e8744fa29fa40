"""The ledger over HTTP, for writers that are not on the ledger's host (operators' clients).

One writer thread owns the ledger. Requests queue up while it commits, and it
takes everything queued as one transaction with one fsync (group commit), so
throughput grows with the number of clients instead of being capped by fsyncs.
A request is answered only after its transaction committed: a 2xx is durable.
Each request stays all-or-nothing on its own; a bad one fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .bodies import BodyTooLarge, read_limited
from .commands import consistency_json, export_lines, inclusion_json
from .key_requests import KeyPolicy, KeyRequestError, open_key_request
from .merkle import ProofError
from .note import b64encode
from .policy import Policy
from .reader import LedgerReader, StoredCheckpoint
from .store import Appended, AppendError, Ledger, StorageError, Submission, storage_error
from .tiles import TileError, ledger_readers, parse_tile_path, published_checkpoint, tile_bytes
from .vocabulary import is_rfc3339
from .wire import (
    MALFORMED,
    MAX_BATCH,
    MAX_BODY_BYTES,
    TOO_LARGE,
    WireError,
    appended_body,
    appended_status,
    error_body,
    parse_signed,
    status_of,
)
from .witness_client import BackgroundCosigning, configured_witnesses, lacks_cosignatures

log = logging.getLogger(__name__)

MAX_FUTURE_SKEW = timedelta(minutes=5)
MAX_ENTRIES_PAGE = 10_000

Outcome = list[Appended] | AppendError
# What a request is answered while the ledger file cannot be written: nothing was written,
# retry after RETRY_AFTER seconds (507 Insufficient Storage, or 503 for any other cause).
STORAGE_STATUS = {"full": 507, "unwritable": 503}
RETRY_AFTER = 30
Clock = Callable[[], datetime]


@dataclass
class ServiceConfig:
    checkpoint_seconds: float = 60.0
    checkpoint_entries: int = 1000


@dataclass
class _Request:
    submissions: list[Submission]
    future: Future[Outcome] = field(default_factory=Future)


class GroupCommitter:
    """The one thread that writes: drains the queue, appends it as one transaction, answers."""

    def __init__(
        self,
        ledger: Ledger,
        clock: Clock,
        config: ServiceConfig,
        on_checkpoint: Callable[[StoredCheckpoint], None] | None = None,
    ) -> None:
        self._ledger = ledger
        self._on_checkpoint = on_checkpoint
        self._clock = clock
        self._config = config
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._last_checkpoint = time.monotonic()
        self._checkpointed_size = ledger.size
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self.commits = 0
        self.storage_problem: StorageError | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def submit(self, submissions: list[Submission]) -> Future[Outcome]:
        request = _Request(submissions)
        self._queue.put(request)
        return request.future

    def _run(self) -> None:
        while True:
            try:
                if not self._step():
                    return
            except Exception:  # never let the only writer die silently: log, and go on
                log.exception("ledger writer: unexpected error")
                time.sleep(0.1)

    def _step(self) -> bool:
        """One round: commit what is queued; False once asked to stop."""
        while True:
            try:
                first = self._queue.get(timeout=1.0)
            except queue.Empty:
                self._maybe_checkpoint()
                continue
            if first is None:
                return False
            batch = [first]
            stop = False
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._commit(batch)
            self._maybe_checkpoint()
            return not stop

    def _storage(self, exc: sqlite3.Error) -> StorageError | None:
        """Logs the cause of a storage problem once (not once per request), and returns it."""
        problem = storage_error(exc)
        if problem is not None and (
            self.storage_problem is None or self.storage_problem.kind != problem.kind
        ):
            log.error(
                "ledger writer: %s; answering %s until it is fixed",
                problem.message,
                STORAGE_STATUS[problem.kind],
            )
        self.storage_problem = problem
        return problem

    def _commit(self, batch: list[_Request]) -> None:
        try:
            outcomes = self._ledger.append_groups([r.submissions for r in batch], now=self._clock())
        except BaseException as exc:  # the transaction was rolled back; nothing was written
            problem = self._storage(exc) if isinstance(exc, sqlite3.Error) else None
            for request in batch:
                request.future.set_exception(problem or exc)
            return
        if self.storage_problem is not None:
            log.warning("ledger writer: the ledger file can be written again")
            self.storage_problem = None
        self.commits += 1
        for request, outcome in zip(batch, outcomes, strict=True):
            request.future.set_result(outcome)

    def _maybe_checkpoint(self) -> None:
        size = self._ledger.size
        due = size - self._checkpointed_size >= self._config.checkpoint_entries or (
            size > self._checkpointed_size
            and time.monotonic() - self._last_checkpoint >= self._config.checkpoint_seconds
        )
        if due:
            try:
                stored = self._ledger.sign_checkpoint(now=self._clock())
            except sqlite3.Error as exc:
                if self._storage(exc) is None:
                    raise
                return  # tried again next round
            if self._on_checkpoint is not None:
                self._on_checkpoint(stored)
            self._checkpointed_size = size
            self._last_checkpoint = time.monotonic()


def _error(status: int, message: str, field: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return JSONResponse(body, status_code=status)


def _parse_item(value: Any, clock: Clock, where: str = "") -> Submission:
    """A posted {"event", "sig"} (ledger.wire), refused if its `at` is ahead of the ledger's clock."""
    item = parse_signed(value, where)
    event = item.event
    if isinstance(event, dict) and isinstance(event.get("at"), str) and is_rfc3339(event["at"]):
        at = datetime.fromisoformat(event["at"])
        if at - clock() > MAX_FUTURE_SKEW:
            raise WireError(
                f"at is more than {int(MAX_FUTURE_SKEW.total_seconds() // 60)} minutes ahead of the"
                " ledger's clock",
                f"{where}event.at",
            )
    return item



def _storage_answer(problem: StorageError) -> JSONResponse:
    return JSONResponse(
        {"error": f"{problem.message}; nothing was written, retry later"},
        status_code=STORAGE_STATUS[problem.kind],
        headers={"Retry-After": str(RETRY_AFTER)},
    )


class _TooLarge(Exception):
    def __init__(self, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


async def _read_limited(request: Request) -> bytes:
    try:
        return await read_limited(request, MAX_BODY_BYTES)
    except BodyTooLarge as big:
        raise _TooLarge(str(big)) from big


def create_app(
    ledger: Ledger,
    *,
    clock: Clock,
    config: ServiceConfig | None = None,
    key_policy: KeyPolicy | None = None,
    policy: Policy | None = None,
) -> Starlette:
    """The ASGI app. `ledger` must have been opened with its key (it signs checkpoints).

    With `key_policy`, `POST /v1/keys` appends key events that a person the policy allows
    asked for in a signed request (ledger.key_requests); without it, that endpoint answers 404.
    With `policy` (C2SP tlog-policy), the tiles' `GET /checkpoint` serves only a checkpoint its
    quorum cosigned (published); `/v1/checkpoint` stays the latest signed one."""
    witnesses = BackgroundCosigning(str(ledger.path), clock) if configured_witnesses(ledger) else None
    committer = GroupCommitter(
        ledger, clock, config or ServiceConfig(), witnesses.submit if witnesses is not None else None
    )
    # Reads use their own connection so they never wait behind the writer's transaction.
    reader = LedgerReader.open(ledger.path)
    read_lock = threading.Lock()

    async def read_json(request: Request) -> Any:
        raw = await _read_limited(request)
        try:
            return json.loads(raw)
        except RecursionError as exc:
            raise WireError("the body is nested too deeply", "body") from exc
        except ValueError as exc:
            raise WireError(f"the body is not JSON: {exc}", "body") from exc

    async def commit_one(item: Submission) -> Response:
        """One submission through the group commit, answered as `POST /v1/events` answers."""
        try:
            outcome = await asyncio.wrap_future(committer.submit([item]))
        except StorageError as problem:
            return _storage_answer(problem)
        if isinstance(outcome, AppendError):
            return JSONResponse(error_body(outcome), status_code=status_of(outcome))
        (appended,) = outcome
        return JSONResponse(appended_body(appended), status_code=appended_status(appended))

    async def post_event(request: Request) -> Response:
        try:
            item = _parse_item(await read_json(request), clock)
        except WireError as bad:
            return _error(MALFORMED, bad.message, bad.field)
        except _TooLarge as big:
            return _error(TOO_LARGE, big.message, big.field)
        try:
            # Validation, RFC 8785 and the signature check happen here, per request and off the
            # event loop (libsodium releases the GIL): the writer only judges what needs its state.
            item = await asyncio.to_thread(ledger.prepare, item)
        except AppendError as refused:
            return JSONResponse(error_body(refused), status_code=status_of(refused))
        return await commit_one(item)

    async def post_batch(request: Request) -> Response:
        try:
            body = await read_json(request)
            if not isinstance(body, dict) or not isinstance(body.get("events"), list):
                raise WireError('a body of {"events": [{"event", "sig"}, ...]}', "events")
            if len(body["events"]) > MAX_BATCH:
                raise _TooLarge(f"a batch holds at most {MAX_BATCH} events", "events")
            if not body["events"]:
                raise WireError(f"between 1 and {MAX_BATCH} events", "events")
            items = [_parse_item(v, clock, f"events[{i}].") for i, v in enumerate(body["events"])]
        except WireError as bad:
            return _error(MALFORMED, bad.message, bad.field)
        except _TooLarge as big:
            return _error(TOO_LARGE, big.message, big.field)
        try:
            items = await asyncio.to_thread(lambda: [ledger.prepare(v, i) for i, v in enumerate(items)])
        except AppendError as refused:
            where = f"events[{refused.position}]."
            return JSONResponse(error_body(refused, where), status_code=status_of(refused))
        try:
            outcome = await asyncio.wrap_future(committer.submit(items))
        except StorageError as problem:
            return _storage_answer(problem)
        if isinstance(outcome, AppendError):
            where = f"events[{outcome.position}]."
            return JSONResponse(error_body(outcome, where), status_code=status_of(outcome))
        entries = [appended_body(a) for a in outcome]
        return JSONResponse({"entries": entries}, status_code=appended_status(*outcome))

    async def post_key_request(request: Request) -> Response:
        if key_policy is None:
            return _error(404, "key requests are not enabled on this service")
        try:
            body = await read_json(request)
        except WireError as bad:
            return _error(MALFORMED, bad.message, bad.field)
        except _TooLarge as big:
            return _error(TOO_LARGE, big.message, big.field)

        def authorise() -> dict[str, Any]:
            # A fresh read-only view: the key table and the staff as committed right now.
            with LedgerReader.open(ledger.path) as view:
                event = open_key_request(body, view.key_timeline(), view.size)
                if not key_policy(event["actor"], view):
                    raise KeyRequestError(403, f"{event['actor']} may not manage keys", "request.actor")
                return event

        try:
            event = await asyncio.to_thread(authorise)
            item = _parse_item({"event": event, "sig": {"key": "", "ed25519": ""}}, clock)
        except KeyRequestError as refused:
            return _error(refused.status, refused.message, refused.field)
        except WireError as bad:
            return _error(MALFORMED, bad.message, bad.field.replace("event.", "request."))
        return await commit_one(Submission(item.event))

    def _int_params(request: Request, *names: str) -> list[int]:
        values = []
        for name in names:
            raw = request.query_params.get(name)
            if raw is None or not (raw.isascii() and raw.isdigit()):
                raise WireError(f"query parameter {name} must be a whole number", name)
            values.append(int(raw))
        return values

    async def get_checkpoint(request: Request) -> Response:
        with read_lock:
            latest = reader.latest_checkpoint()
        if latest is None:
            return _error(404, "no checkpoint has been signed yet")
        return PlainTextResponse(latest.note)

    async def get_published(request: Request) -> Response:
        """tlog-tiles' checkpoint: with a policy, the latest one its quorum cosigned."""
        with read_lock:
            published = published_checkpoint(reader, policy)
        if published is None:
            return _error(404, "no checkpoint is published yet")
        return PlainTextResponse(published.note, headers={"Cache-Control": "no-cache"})

    def proof(names: tuple[str, str], build: Callable[[LedgerReader, int, int], dict[str, Any]]) -> Any:
        """A proof endpoint: the same JSON as `kansa ledger prove` / `consistency`."""

        async def endpoint(request: Request) -> Response:
            try:
                first, second = _int_params(request, *names)
                with read_lock:
                    body = build(reader, first, second)
            except WireError as bad:
                return _error(MALFORMED, bad.message, bad.field)
            except ProofError as exc:
                return _error(422, str(exc))
            return JSONResponse(body)

        return endpoint

    get_inclusion = proof(("index", "size"), inclusion_json)
    get_consistency = proof(("old", "new"), consistency_json)

    async def get_entries(request: Request) -> Response:
        try:
            start, stop = _int_params(request, "from", "to")
        except WireError as bad:
            return _error(MALFORMED, bad.message, bad.field)
        if stop < start or stop - start > MAX_ENTRIES_PAGE:
            return _error(422, f"0 <= to - from <= {MAX_ENTRIES_PAGE}", "to")
        with read_lock:
            lines = list(export_lines(reader, start, stop))
        return Response("".join(line + "\n" for line in lines), media_type="application/x-ndjson")

    async def get_event(request: Request) -> Response:
        """Whether the ledger holds the event with this id: what a client's outbox is checked against."""
        with read_lock:
            found = reader.entry_by_id(request.path_params["id"])
        if found is None:
            return _error(404, "the ledger holds no event with this id")
        index, digest = found
        return JSONResponse({"index": index, "leaf_hash": b64encode(digest)})

    async def healthz(request: Request) -> Response:
        with read_lock:
            size = reader.size
        return JSONResponse({"ok": True, "size": size, "origin": ledger.origin, "commits": committer.commits})

    async def get_tile(request: Request) -> Response:
        """C2SP tlog-tiles, computed from the stored tree; a tile never changes once it exists."""
        try:
            tile = parse_tile_path("tile/" + request.path_params["path"])
            with read_lock:
                read, leaves = ledger_readers(reader)
                data = tile_bytes(tile, read, leaves, reader.size)
        except TileError as exc:
            return PlainTextResponse(f"{exc}\n", status_code=404)
        immutable = {"Cache-Control": "public, max-age=31536000, immutable"}
        return Response(data, media_type="application/octet-stream", headers=immutable)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if witnesses is not None:
            witnesses.start()
            with read_lock:
                latest = reader.latest_checkpoint()
            if latest is not None and lacks_cosignatures(reader, latest):
                witnesses.submit(latest)  # one left uncosigned before a restart is asked again
        committer.start()
        try:
            yield
        finally:
            committer.stop()
            if witnesses is not None:
                witnesses.stop()
            reader.close()
            # A clean stop leaves a database file that holds everything alone (no -wal needed).
            ledger.checkpoint_wal()

    app = Starlette(
        routes=[
            Route("/v1/events", post_event, methods=["POST"]),
            Route("/v1/events:batch", post_batch, methods=["POST"]),
            Route("/v1/keys", post_key_request, methods=["POST"]),
            Route("/v1/checkpoint", get_checkpoint),
            Route("/v1/proof/inclusion", get_inclusion),
            Route("/v1/proof/consistency", get_consistency),
            Route("/v1/entries", get_entries),
            Route("/v1/events/{id}", get_event),
            Route("/healthz", healthz),
            # C2SP tlog-tiles: the checkpoint (with its cosignatures) and the tiles.
            Route("/checkpoint", get_published),
            Route("/tile/{path:path}", get_tile),
        ],
        lifespan=lifespan,
    )
    app.state.committer = committer
    app.state.witnesses = witnesses
    return app
