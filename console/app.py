"""The operators' console and the manager's and city's desks: one Starlette application.

Every event is signed with the key of the person signed in (unsealed into their
session only) and committed to that person's outbox before the page answers;
a background thread delivers the outboxes to the ledger service, so a ledger
outage never stalls a call. The application takes its clock as a parameter.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import math
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from compliance import present
from contract.calendar import TOKYO
from contract.profile import load_profile
from dialer_core.client import OperatorClient, pending_events
from dialer_core.datastore import DataStore, DataStoreError
from dialer_core.targets import CATEGORIES
from ledger import Signer, read_key
from ledger.access import LOCKOUT_SECONDS, Failures
from ledger.key_requests import sign_key_request

from .board import REQUEST_REASONS, Board, escalation_reason
from .config import ConfigError, ConsoleConfig
from .documents import KINDS, DocumentError, Documents
from .keystore import SealedKeyError, read_sealed
from .loop_client import LOOP_SECONDS, Call, LoopClient, LoopError, Seat
from .outcome import (
    CALLBACK_DISPOSITIONS,
    DISPOSITIONS,
    PARTIES,
    REQUESTS,
    SCRIPTS,
    OutcomeForm,
    check_callback_outcome,
    check_outcome,
)

HERE = Path(__file__).parent
COOKIE = "kansa_console"
PRE_COOKIE = "kansa_console_pre"
ROLES = {role: present.word("role", role) for role in ("operator", "manager", "city")}  # the desks here
HOME = {"operator": "/op", "manager": "/manager", "city": "/city"}
BANDS = ("午前（9–12時）", "午後（12–17時）", "夜間（17–20時）")
REASONS = {  # escalation.raised's reasons; a stop_contact request is raised as `other`
    **{code: present.word("request", code) for code in REQUEST_REASONS},
    "callback_outside_period": present.word("request", "callback_outside_period"),
    "other": "その他（架電停止の希望など）",
}
CATEGORY_JA = {code: words for words, code in CATEGORIES.items()}  # as the city's file writes them
COURSES = {"laws_manual": "法令・業務マニュアル", "privacy": "個人情報保護", "phone": "電話応対"}
Clock = Callable[[], datetime]
T = TypeVar("T")
# A pledge scan (a PDF or an image of the signed pledge): its SHA-256 is what the ledger keeps.
MAX_UPLOAD = 10 * 1024 * 1024
MAX_FORM = MAX_UPLOAD + 64 * 1024  # the whole posted form: one upload and a few short fields


@dataclass(frozen=True)
class Refusal:
    """A refused sign-in: the reason (Japanese) and the status it is answered with."""

    message: str
    status: int = 401
    retry_after: int | None = None  # seconds, for a lock-out's 429
    guess: bool = True  # False once the passphrase opened the key: not counted towards a lock-out


class FormTooLarge(Exception):
    """A posted form over `MAX_FORM` bytes, or with an upload over `MAX_UPLOAD` (answered 413)."""


@dataclass
class Session:
    token: str
    person: str
    role: str
    csrf: str
    started: datetime
    expires: datetime
    seat: str
    viewed: dict[str, Any] = field(default_factory=dict)  # call id -> the resident shown for it
    # call id -> its outcome's event id once written ("" while it is written): never a second one
    outcomes: dict[str, str] = field(default_factory=dict)


@dataclass
class Writer:
    """One person's outbox: `client` records (request threads, under `lock`), `courier`, its own
    connection to the same outbox, delivers (the courier thread only), so a page never waits
    behind a delivery to a slow ledger service."""

    client: OperatorClient
    courier: OperatorClient
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Something may wait in the outbox: set after each commit, cleared by the courier before a
    # delivery and set again if something is left (so the courier reads only these outboxes).
    due: bool = True

    def record(
        self, kind: str, data: dict[str, Any], at: datetime, event_id: str | None = None
    ) -> dict[str, Any]:
        with self.lock:
            event_id = self.client.record(kind, data, at=at, event_id=event_id)
            self.due = True
        return {"id": event_id, "type": kind, "at": at.isoformat(), "actor": self.client.actor, "data": data}


class Console:
    """The application's state: sessions, writers, the board, the documents."""

    def __init__(
        self,
        config: ConsoleConfig,
        *,
        clock: Clock,
        loop: LoopClient | None = None,
        http: httpx.Client | None = None,
        deliver_every: float = 0.2,
        sweep_every: float = 0.5,
        durable_threads: int = 8,
    ) -> None:
        self.config = config
        self.clock = clock
        self.profile = load_profile(config.profile)
        self.board = Board(config.ledger_copy, self.profile)
        self.board.refresh(force=True)
        config.outboxes.mkdir(parents=True, exist_ok=True)
        self.board.load_outboxes(sorted(config.outboxes.glob("*.outbox")))
        self.documents = Documents(config.documents)
        self.store = DataStore(config.store)
        self.loop = loop or LoopClient(config.loop_url, _read_token(config))
        self._http = http or httpx.Client(timeout=10.0)
        self.sessions: dict[str, Session] = {}
        # Failed sign-ins here within the window, per person id and per client address: rebuilt
        # from this terminal's recent access.login events (ledger copy and outboxes) so that a
        # restart does not reset them. The ledger keeps no client address: only the per-person
        # counts survive a restart (docs/console.md, "Sign-in").
        now = clock().timestamp()
        self.failures = Failures.from_log(
            (
                (e.at.timestamp(), e.data)
                for e in self.board.events("access.login")
                if e.data.get("terminal") == config.terminal and now - e.at.timestamp() <= LOCKOUT_SECONDS
            ),
            addresses=False,
        )
        self._failures_lock = threading.Lock()
        self._lockouts_logged: dict[tuple[str, str], float] = {}  # lock-out -> when it ends
        self.writers: dict[str, Writer] = {}
        self._writers_lock = threading.Lock()
        device = read_key(config.device_key)
        if device.name != config.device:  # it signs failed sign-ins as `device`: never as another
            raise ConfigError(
                f"device_key {config.device_key} holds the key of {device.name!r}, not of the device"
                f" {config.device!r} (set device = {device.name!r}, or name the device's own key)"
            )
        self._device_signer = device  # couriers are opened with it: they deliver, never sign
        self.device = self._writer_for(device)
        # Outboxes earlier runs left with events to deliver, of people not signed in here since
        # the start: their events are signed already, so a courier of their own delivers them
        # (until that person signs in and their writer takes the outbox over). It never records:
        # the key it is opened with (the device's) signs nothing there.
        self.leftover: dict[str, OperatorClient] = {
            path.stem: OperatorClient(config.ledger_url, device, path, clock=clock, http=self._http)
            for path in sorted(config.outboxes.glob("*.outbox"))
            if path.stem not in self.writers and pending_events(path)
        }
        self.deliver_every = deliver_every
        self.sweep_every = sweep_every
        # (seat, person) of every operator signed in here, until the loop shows the seat offline:
        # the sweep signs out a seat whose operator's session ended (expired or revoked).
        self.seated: set[tuple[str, str]] = set()
        self._signed_out: set[str] = set()  # seats the sweep already signed out at the loop
        self._swept = False  # the first sweep also takes the seats left by a previous run
        # Ended calls without an outcome on a seat whose operator's session ended: call id ->
        # (seat, person, call). An unanswered one's outcome waits for the operator's next session
        # or the manager's desk; an answered one's only the operator can give (next session).
        self.orphans: dict[str, tuple[str, str, Call]] = {}
        self._stop = threading.Event()
        self._courier = threading.Thread(target=self._deliver_forever, name="console-courier", daemon=True)
        # A call's durable steps (access.viewed with the store's read, the outcome) in threads of
        # their own: the shared pool (anyio's 40 threads) also runs every sign-in's Argon2id
        # (64 MiB, ~0.1 s each), and a wave of sign-ins would queue the calls behind it.
        self.durable = ThreadPoolExecutor(max_workers=durable_threads, thread_name_prefix="console-durable")
        self._deliveries = ThreadPoolExecutor(max_workers=4, thread_name_prefix="console-delivery")

    async def durably(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in the durable steps' threads (signing, the outbox's fsync, the store)."""
        return await asyncio.get_running_loop().run_in_executor(self.durable, partial(fn, *args))

    # -- writers and delivery --------------------------------------------------------

    def _writer_for(self, signer: Signer) -> Writer:
        with self._writers_lock:
            writer = self.writers.get(signer.name)
            if writer is None or writer.client.signer.verifier != signer.verifier:
                outbox = self.config.outboxes / f"{signer.name}.outbox"
                client = OperatorClient(
                    self.config.ledger_url, signer, outbox, clock=self.clock, http=self._http
                )
                # The courier only sends what is signed already: it never holds the person's key,
                # which leaves memory with their last session (`end_session`).
                courier = OperatorClient(
                    self.config.ledger_url, self._device_signer, outbox, clock=self.clock, http=self._http
                )
                writer = Writer(client, courier)
                self.writers[signer.name] = writer
            return writer

    def record(
        self, writer: Writer, kind: str, data: dict[str, Any], event_id: str | None = None
    ) -> dict[str, Any]:
        """Signs and commits the event to the writer's outbox (durable on return); notes it on the board."""
        envelope = writer.record(kind, data, self.clock(), event_id)
        self.board.note(envelope)
        return envelope

    def deliver_once(self) -> int:
        """One delivery round over every outbox, several at a time (the service commits what
        arrives together in one group); returns what is still pending."""

        def deliver(writer: Writer) -> int:
            writer.due = False  # before reading the outbox: a commit from now on sets it again
            # A deadline of now: one try per event; a failure waits for the next round.
            left = writer.courier.deliver(deadline=time.monotonic()).pending
            if left:
                writer.due = True
            return left

        writers = dict(self.writers)
        for name in [name for name in self.leftover if name in writers]:
            # Its person signed in: their writer's courier delivers it. (Dropped, not closed:
            # closing an OperatorClient closes the shared HTTP client; its outbox connection
            # closes with it.)
            self.leftover.pop(name)
        # Only the outboxes written to since their last delivery (200 idle ones were a
        # thousand queries a second).
        pending = sum(self._deliveries.map(deliver, [w for w in writers.values() if w.due]))
        for name, courier in list(self.leftover.items()):
            left = courier.deliver(deadline=time.monotonic()).pending
            if not left:  # delivered: nothing more will come into it from here
                self.leftover.pop(name, None)
            pending += left
        return pending

    def _deliver_forever(self) -> None:
        """The courier thread: delivers the outboxes and keeps the board up to date with the
        ledger, so no page reads the ledger file itself."""
        while not self._stop.wait(self.deliver_every):
            with contextlib.suppress(Exception):  # the next round tries again
                self.deliver_once()
            with contextlib.suppress(Exception):
                self.board.refresh()

    def start(self) -> None:
        self._courier.start()

    def stop(self) -> None:
        self._stop.set()
        self.durable.shutdown(wait=True)
        if self._courier.is_alive():
            self._courier.join(10)
        with contextlib.suppress(Exception):
            self.deliver_once()
        self._deliveries.shutdown(wait=True)
        for writer in self.writers.values():
            writer.client.close()
            writer.courier.close()
        for courier in self.leftover.values():
            courier.close()
        self.documents.close()
        self.store.close()
        self.board.close()

    # -- sessions --------------------------------------------------------------------

    def session_of(self, request: Request) -> Session | None:
        token = request.cookies.get(COOKIE)
        session = self.sessions.get(token or "")
        if session is None:
            return None
        if self.clock() >= session.expires:
            self.end_session(session)
            return None
        return session

    def sign_in(
        self, person: str, passphrase: str, role: str, seat: str, *, address: str | None = None
    ) -> Session | Refusal:
        """A session, or why it was refused. Every attempt is logged, except the ones refused
        during a lock-out (too many failures for `person`, or from the client `address`): those
        are refused before any key is opened, and only the first of each lock-out is logged."""
        admitted = self._admit(person[:64], address)
        if isinstance(admitted, Refusal):
            return admitted
        checked = self._check(person, passphrase, role)
        if isinstance(checked, Refusal):
            if not checked.guess:
                with self._failures_lock:
                    self.failures.withdraw(person[:64], address, admitted)
            return checked
        signer = checked
        with self._failures_lock:
            self.failures.withdraw(person[:64], address, admitted)
            self.failures.clear(person[:64])
        writer = self._writer_for(signer)
        self.record(
            writer, "access.login", {"person": person, "terminal": self.config.terminal, "success": True}
        )
        now = self.clock()
        session = Session(
            secrets.token_urlsafe(32),
            person,
            role,
            secrets.token_urlsafe(32),
            now,
            now + timedelta(minutes=self.config.session_minutes),
            seat or person,
        )
        self.sessions[session.token] = session
        if role == "operator":
            self.seated.add((session.seat, person))
            self._signed_out.discard(session.seat)
        return session

    def _admit(self, person: str, address: str | None) -> float | Refusal:
        """The refusal of an attempt during a lock-out (nothing tried, no Argon2id), or the time
        the attempt was counted at: it counts as a failure while it runs (so that guesses sent
        together cannot pass the limit) and is withdrawn if it succeeds.
        The first refused attempt of each lock-out is logged as a failed sign-in (ACCESS-LOGGED:
        someone kept trying); the ones after it are not, so guessing cannot flood the ledger."""
        now = self.clock().timestamp()
        with self._failures_lock:
            left = self.failures.seconds_left(person, address, now)
            if left <= 0:
                self.failures.add(person, address, now)
                return now
            new = [
                key
                for key in self.failures.locked_keys(person, address, now)
                if self._lockouts_logged.get(key, 0.0) <= now
            ]
            for key in new:
                self._lockouts_logged[key] = now + left
        if new:
            self._failed(person)  # logged, not counted: no passphrase was tried
        minutes = max(1, math.ceil(left / 60))
        return Refusal(
            "サインインの失敗が続いたため、しばらくサインインできません。"
            f"{minutes}分後にもう一度お試しください。",
            429,
            math.ceil(left),
        )

    def _check(self, person: str, passphrase: str, role: str) -> Signer | Refusal:
        """The person's key when the sign-in may go on, or the refusal (logged; `_admit` counted it)."""

        def failed(message: str, *, guess: bool = True) -> Refusal:
            self._failed(person)
            return Refusal(message, guess=guess)

        if role not in ROLES:  # no desk here for it (a custodian works with `kansa custody`)
            return failed("この画面では使えない役割です。役割を一覧から選んでください。")
        signer: Signer | None = None
        # The id names the key file: one no file in the keys folder can have (a path, a NUL,
        # too long for a name) is an unknown id, not a server error.
        named = 0 < len(person) <= 64 and not person.startswith(".")
        if named and not any(c in person for c in "/\\\0"):
            try:
                signer = read_sealed(self.config.keys / f"{person}.sealed", passphrase)
            except SealedKeyError:
                signer = None
        if signer is None or signer.name != person:
            return failed("IDまたはパスフレーズが違います。")
        registered = self.board.registered_keys()
        if registered.get(signer.verifier.key_ref) != person:
            return failed(
                "この鍵は台帳に登録されていないか、失効しています。管理者に確認してください。", guess=False
            )
        if role not in self.board.roles(person):
            return failed(f"{ROLES.get(role, role)}として指定されていません。", guess=False)
        if role not in self.board.roles(person, in_ledger=True):
            self.board.refresh(force=True)  # it may have been delivered since the last look
        if role not in self.board.roles(person, in_ledger=True):
            # The designation still waits in the manager's outbox: signed in now, this sign-in
            # could reach the ledger before it (outboxes deliver independently).
            return failed(
                f"{ROLES.get(role, role)}としての指定がまだ台帳に届いていません。"
                "数秒待ってから（台帳サービスが止まっている場合は復旧してから）もう一度サインインしてください。",
                guess=False,
            )
        return signer

    def _failed(self, person: str) -> None:
        """A failed sign-in: no key could be unlocked, so the console's own device key signs it."""
        self.record(
            self.device,
            "access.login",
            {"person": person[:64], "terminal": self.config.terminal, "success": False},
        )

    def sign_out(self, session: Session) -> None:
        self.end_session(session, logout=True)

    def end_session(self, session: Session, *, logout: bool = False) -> None:
        """Ends the session (with `access.logout` when `logout`: signing out, or the manager
        revoking it; not on expiry or a revocation of the person or key). The person's unsealed
        key is dropped with their last session: what they signed stays in their outbox, and a
        courier that holds no key of theirs delivers it."""
        if self.sessions.pop(session.token, None) is None:
            return  # ended already
        writer = self.writers.get(session.person)
        if writer is None:
            return
        if logout:
            self.record(writer, "access.logout", {"person": session.person, "terminal": self.config.terminal})
        if any(s.person == session.person for s in list(self.sessions.values())):
            return
        with self._writers_lock:
            if self.writers.get(session.person) is not writer:
                return
            del self.writers[session.person]
            # Not closed (closing an OperatorClient closes the shared HTTP client): dropping the
            # recording client drops the key; its outbox connection closes with it.
            self.leftover[session.person] = writer.courier

    def writer(self, session: Session) -> Writer:
        return self.writers[session.person]

    # -- documents -----------------------------------------------------------------------

    def approved(self, kind: str) -> tuple[Any, Any] | None:
        """The latest approved version of `kind` that this console holds: (document, approval)."""
        for approval in reversed(self.board.approvals()):
            if approval.data["kind"] != kind:
                continue
            doc = self.documents.get(kind, approval.data["version"])
            if doc is not None and doc.sha256 == approval.data["sha256"]:
                return doc, approval
        return None

    # -- unanswered calls ------------------------------------------------------------------

    def record_unanswered(self, writer: Writer, call: Call) -> str:
        """An unanswered call's call.outcome, written without asking anyone (RECORD-EVERY-CALL):
        `party: none`, `no_contact` (`number_unusable` for `invalid`), the approved script's
        version. Its id comes from the call's, so it is written once however many pages, sweeps
        or desks see the call; returns that id."""
        approved = self.approved("talk_script")
        data: dict[str, Any] = {
            "case": call.case,
            "call": call.call,
            "party": "none",
            "proxy_consent": False,
            "script": "not_started",
            "disposition": "number_unusable" if call.result == "invalid" else "no_contact",
            "promise": None,
            "callback_at": None,
            "mobile_asked": False,
            "requests": [],
            "script_version": approved[0].version if approved else None,
        }
        event_id = unanswered_id(call.call)
        with contextlib.suppress(sqlite3.IntegrityError):  # already recorded (by its id)
            self.record(writer, "call.outcome", data, event_id)
        return event_id

    async def close_unanswered(self, writer: Writer, call: Call) -> None:
        """Records the unanswered call's outcome, then tells the loop (the seat dials again)."""
        event_id = await self.durably(self.record_unanswered, writer, call)
        self.orphans.pop(call.call, None)
        with contextlib.suppress(LoopError):  # another page or the sweep told it first
            await self.loop.outcome(call.call, event_id)

    def undelivered(self, whose: Callable[[Writer], bool], holder: str) -> int:
        """Events still in the outboxes of the writers `whose` picks, and in `holder`'s outbox left
        by an earlier run. A revocation (of a key or a person) waits for them: outboxes deliver
        independently, and what they signed, appended after the revocation, would count as
        signed by a revoked key or person (DESIGNATED-ACTOR)."""
        waiting = sum(w.client.pending() for w in list(self.writers.values()) if whose(w))
        left = self.leftover.get(holder)
        return waiting + (len(pending_events(left.outbox)) if left is not None else 0)

    def live_sessions(self) -> list[Session]:
        """The sessions that have not expired (expired ones are dropped)."""
        now = self.clock()
        for session in list(self.sessions.values()):
            if now >= session.expires:
                self.end_session(session)
        return list(self.sessions.values())

    async def sweep(self) -> None:
        """One look at every seat of the loop (one request), so nothing waits for a page:
        - a signed-in operator's unanswered call gets its outcome at once, signed by that
          operator's key (their session holds it) through their outbox;
        - a seat whose operator's session ended (expired, revoked by the manager, or the person
          revoked) is signed out at the loop (offline after the current call), so no call is
          dialled for someone who is not there. Their key is not used after the session: an
          unanswered call left on that seat waits in `orphans` for their next session or for the
          manager's desk, which records it signed by the manager."""
        live = {(s.seat, s.person) for s in self.live_sessions() if s.role == "operator"}
        if not live and not self.seated and self._swept:
            self.orphans = {}
            return
        seats = await self.loop.seats()
        if not self._swept:
            # At start every session is gone (they live in memory): seats still taking calls
            # were signed in before a restart, and nobody here holds their key any more.
            self.seated.update((s.seat, s.operator) for s in seats if s.operator and s.state != "offline")
            self._swept = True
        orphans: dict[str, tuple[str, str, Call]] = {}
        for seat in seats:
            person = seat.operator
            call = seat.call
            if person is None or (seat.seat, person) not in self.seated:
                continue
            if (seat.seat, person) in live:
                writer = self.writers.get(person)
                if writer is not None and is_unanswered(call):
                    assert call is not None
                    await self.close_unanswered(writer, call)
                continue
            if (
                call is not None
                and call.direction == "outbound"
                and call.state == "ended"
                and not call.raw.get("outcome")
            ):
                orphans[call.call] = (seat.seat, person, call)  # answered ones are only shown
            if seat.state == "offline" and call is None:
                self.seated.discard((seat.seat, person))
                self._signed_out.discard(seat.seat)
            elif seat.seat not in self._signed_out:
                with contextlib.suppress(LoopError):
                    await self.loop.signout(seat.seat)
                    self._signed_out.add(seat.seat)
        self.orphans = orphans

    async def sweep_forever(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # the next round tries again
                await self.sweep()
            await asyncio.sleep(self.sweep_every)


def not_delivered(waiting: int) -> str:
    return (
        f"この職員（鍵）が署名した記録のうち {waiting} 件がまだ台帳に届いていません。"
        "届いてから（台帳サービスにつながっていれば数秒で届きます）もう一度操作してください。"
    )


def taken_message(session: Session) -> str:
    return (
        f"この席（{session.seat}）は別のオペレータが使用中です。"
        "サインアウトして、ご自分の席番号でサインインし直してください。"
    )


def unanswered_id(call: str) -> str:
    """The id of an unanswered call's outcome: derived from the call's, so it is written once."""
    return f"unanswered-{call}"[:64]


def is_unanswered(call: Call | None) -> bool:
    """An outbound call that ended without an answer and waits for its outcome."""
    return (
        call is not None
        and call.direction == "outbound"
        and call.state == "ended"
        and call.case is not None
        and not call.raw.get("answered_at")
        and not call.raw.get("outcome")
    )


def _read_token(config: ConsoleConfig) -> str:
    """The seats API's bearer token: from the file the configuration names, else $KANSA_LOOP_TOKEN."""
    if config.loop_token_file is not None:
        return config.loop_token_file.read_text().strip()
    return os.environ.get("KANSA_LOOP_TOKEN", "")


# -- the web layer ---------------------------------------------------------------------------


_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self';"
        b" form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]


class _Headers:
    """Nothing personal is cached (no-store on every page); scripts only from ourselves.
    A plain ASGI middleware: it only adds headers to the response's start."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _HEADERS + ([] if scope["path"].startswith("/static/") else _NO_STORE)
        started = time.perf_counter()
        loop_spent = [0.0]
        LOOP_SECONDS.set(loop_spent)

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in extra}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                # How long the console took, for benchmarks and the browser's network panel.
                app_ms, loop_ms = (time.perf_counter() - started) * 1000, loop_spent[0] * 1000
                timing = (b"server-timing", f"app;dur={app_ms:.1f}, loop;dur={loop_ms:.1f}".encode())
                message = {**message, "headers": [*headers, *extra, timing]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(console: Console) -> Starlette:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.auto_reload = False  # the templates ship with the package: no stat() per page
    env.globals.update(
        ROLES=ROLES,
        PARTIES=PARTIES,
        SCRIPTS=SCRIPTS,
        DISPOSITIONS=DISPOSITIONS,
        CALLBACK_DISPOSITIONS=CALLBACK_DISPOSITIONS,
        REQUESTS=REQUESTS,
        REASONS=REASONS,
        KINDS=KINDS,
        CATEGORY_JA=CATEGORY_JA,
    )
    env.filters["hm"] = lambda d: present.when_ja(d) if d else ""  # 9月24日（木）10:00, JST
    # A deadline at midnight is "by the end of" the day before: 2026年9月25日（金）中.
    env.filters["by_day"] = lambda d: (
        f"{present.day_ja((d.astimezone(TOKYO) - timedelta(seconds=1)).date())}中"
    )
    env.globals["COURSES"] = COURSES
    env.filters["yen"] = lambda n: f"{n:,}円"
    env.filters["pct"] = present.pct
    env.filters["jst"] = present.jst
    env.globals["word"] = present.word
    env.filters["day_ja"] = present.day_ja
    env.filters["on_ja"] = present.on_ja  # 9月25日（金）
    env.filters["month_ja"] = present.month_ja
    env.filters["clause_ja"] = present.clause_ja
    env.globals["monthly_days"] = console.profile.monthly_business_days

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        session = console.session_of(request)
        context.setdefault("session", session)
        context.setdefault("now", console.clock())
        return templates.TemplateResponse(request, name, context, status_code=status)

    async def form_of(request: Request, session: Session | None) -> FormData | None:
        """The posted form, if its CSRF token is this session's. A form declared over `MAX_FORM`
        bytes is refused before it is read, an upload over `MAX_UPLOAD` before it is read into
        memory (FormTooLarge: 413, nothing written)."""
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > MAX_FORM:
            raise FormTooLarge
        form = await request.form()
        # Uploads are read into memory and their spooled files closed at once (they are small).
        uploads: dict[str, tuple[str, bytes]] = {}
        files = [item for _, item in form.multi_items() if isinstance(item, UploadFile)]
        if any(upload.size is None or upload.size > MAX_UPLOAD for upload in files):
            for upload in files:
                await upload.close()
            raise FormTooLarge
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                uploads[name] = (value.filename or "", await value.read())
                await value.close()
        request.state.uploads = uploads
        token = str(form.get("csrf", ""))
        expected = session.csrf if session else request.cookies.get(PRE_COOKIE, "")
        if not expected or not hmac.compare_digest(token, expected):
            return None
        return form

    def refused(request: Request) -> Response:
        return page(
            request, "error.html", 403, message="フォームの有効期限が切れました。画面を開き直してください。"
        )

    def need(request: Request, role: str) -> Session | Response:
        session = console.session_of(request)
        if session is None:
            return RedirectResponse("/signin", 303)
        if session.role != role:
            return page(request, "error.html", 403, message="この画面を使う権限がありません。")
        return session

    def other_operators(request: Request, session: Session, seat: Seat) -> Response | None:
        """The refusal when the seat is another operator's (seats are typed at sign-in): nothing
        of its call is shown, read or done from this session."""
        if seat.operator in (None, session.person) or seat.state == "offline":
            return None
        return page(request, "error.html", 409, message=taken_message(session))

    async def role_form(request: Request, role: str) -> tuple[Session, FormData] | Response:
        """The session and the posted form of a desk's action, or the answer refusing it."""
        session = need(request, role)
        if isinstance(session, Response):
            return session
        form = await form_of(request, session)
        if form is None:
            return refused(request)
        return session, form

    Action = Callable[[Request, Session, FormData], Awaitable[Response]]

    def action(role: str) -> Callable[[Action], Callable[[Request], Awaitable[Response]]]:
        """A form's endpoint for `role`: signed in, in that role, with this session's CSRF token."""

        def wrap(handler: Action) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                got = await role_form(request, role)
                if isinstance(got, Response):
                    return got
                return await handler(request, *got)

            return endpoint

        return wrap

    # -- sign-in ------------------------------------------------------------------------

    async def home(request: Request) -> Response:
        session = console.session_of(request)
        return RedirectResponse(HOME[session.role] if session else "/signin", 303)

    async def signin_form(request: Request) -> Response:
        token = secrets.token_urlsafe(24)
        response = page(request, "signin.html", pre=token, error=None, values={})
        response.set_cookie(
            PRE_COOKIE, token, httponly=True, samesite="strict", secure=console.config.secure_cookies
        )
        return response

    async def signin(request: Request) -> Response:
        form = await form_of(request, None)
        if form is None:
            return refused(request)
        person = str(form.get("person", "")).strip()
        role = str(form.get("role", "operator"))
        seat = str(form.get("seat", "")).strip()
        address = request.client.host if request.client else "unknown"
        result = await run_in_threadpool(
            partial(console.sign_in, address=address), person, str(form.get("passphrase", "")), role, seat
        )
        if isinstance(result, Refusal):
            values = {"person": person, "role": role, "seat": seat}
            pre = request.cookies.get(PRE_COOKIE, "")
            answer = page(request, "signin.html", result.status, pre=pre, error=result.message, values=values)
            if result.retry_after is not None:
                answer.headers["retry-after"] = str(result.retry_after)
            return answer
        response = RedirectResponse(HOME[result.role], 303)
        response.set_cookie(
            COOKIE,
            result.token,
            httponly=True,
            samesite="strict",
            secure=console.config.secure_cookies,
            max_age=console.config.session_minutes * 60,
        )
        response.delete_cookie(PRE_COOKIE)
        return response

    async def signout(request: Request) -> Response:
        session = console.session_of(request)
        if session is None:
            return RedirectResponse("/signin", 303)
        if await form_of(request, session) is None:
            return refused(request)
        if session.role == "operator":
            with contextlib.suppress(LoopError):
                seat = await console.loop.seat(session.seat)
                if seat.operator in (None, session.person):  # never another operator's seat
                    await console.loop.signout(session.seat)
        await run_in_threadpool(console.sign_out, session)
        response = RedirectResponse("/signin", 303)
        response.delete_cookie(COOKIE)
        return response

    # -- the operator ----------------------------------------------------------------------

    def documents_with_approvals() -> list[dict[str, Any]]:
        approvals = console.board.approvals()
        return [
            {
                "doc": doc,
                "approval": next(
                    (a for a in approvals if a.data["kind"] == doc.kind and a.data["sha256"] == doc.sha256),
                    None,
                ),
            }
            for doc in console.documents.all()
        ]

    def script_context() -> dict[str, Any]:
        approved = console.approved("talk_script")
        faq = console.approved("faq")
        return {
            "script": approved[0] if approved else None,
            "faq": faq[0] if faq else None,
        }

    def call_context(seat: Seat) -> dict[str, Any]:
        call = seat.call
        if call is None or call.case is None:
            return {}
        number = call.number or ""
        previous = [
            e
            for e in console.board.events("call.dialed")
            if e.data["case"] == call.case and e.data["number"] == number and e.data["call"] != call.call
        ]
        started = datetime.fromisoformat(call.started) if call.started else console.clock()
        started = started.astimezone(TOKYO)
        month = f"{started:%Y-%m}"
        attempt = 1 + sum(1 for e in previous if f"{e.at:%Y-%m}" == month)
        band = next(
            (
                BANDS[i]
                for i, (b0, b1) in enumerate(console.profile.time_bands)
                if b0 <= started.time() < b1 and i < len(BANDS)
            ),
            "時間外",
        )
        kinds = {n["ref"]: n["kind"] for n in console.board.case_numbers(call.case)}
        return {
            "attempt": attempt,
            "attempts_min": console.profile.attempts_per_number,
            "band": band,
            "number_kind": kinds.get(number, "unknown"),
            "started": started,
        }

    async def op_home(request: Request) -> Response:
        session = need(request, "operator")
        if isinstance(session, Response):
            return session
        try:
            seat = await console.loop.seat(session.seat)
        except LoopError as exc:
            return page(request, "op_home.html", seat=None, loop_error=exc.detail, **op_context(session))
        if (refusal := other_operators(request, session, seat)) is not None:
            return refusal
        if seat.call is not None or seat.state in ("dialing", "ringing", "connected", "wrap_up"):
            return RedirectResponse("/op/call", 303)
        return page(request, "op_home.html", seat=seat, loop_error=None, **op_context(session))

    def op_context(session: Session) -> dict[str, Any]:
        today = console.clock().astimezone(TOKYO).date()
        writer = console.writers.get(session.person)
        unsent = 0
        if writer is not None and writer.lock.acquire(blocking=False):  # never block the event loop
            try:
                unsent = writer.client.pending()
            finally:
                writer.lock.release()
        return {
            "figures": console.board.figures(today, actor=session.person),
            "unsent": unsent,
            **script_context(),
        }

    @action("operator")
    async def op_ready(request: Request, session: Session, _form: FormData) -> Response:
        if script_context()["script"] is None:
            return page(
                request, "error.html", 409, message="承認済みのトークスクリプトがないため発信できません。"
            )
        missing = console.board.not_ready(session.person)
        if missing:  # STAFF-READY: trained and pledged before the first call
            what = "・".join({"trained": "研修の修了", "pledged": "誓約書の提出"}[m] for m in missing)
            message = f"{what}が記録されていないため、発信できません。管理者に確認してください。"
            return page(request, "error.html", 409, message=message)
        try:
            await console.loop.ready(session.seat, session.person)
        except LoopError as exc:
            if exc.status == 409 and exc.code == "taken":  # another operator's seat
                return page(request, "error.html", 409, message=taken_message(session))
            if exc.status == 409 and exc.code == "busy":  # already taking calls: show the current one
                return RedirectResponse("/op/call", 303)
            return page(request, "error.html", 502, message=f"発信システムに接続できません（{exc.detail}）")
        return RedirectResponse("/op/call", 303)

    @action("operator")
    async def op_pause(request: Request, session: Session, _form: FormData) -> Response:
        with contextlib.suppress(LoopError):
            seat = await console.loop.seat(session.seat)
            if (refusal := other_operators(request, session, seat)) is not None:
                return refusal
            await console.loop.pause(session.seat)
        return RedirectResponse("/op", 303)

    async def op_seat_json(request: Request) -> Response:
        """The seat's state and version for the waiting page's long poll: references only."""
        session = console.session_of(request)
        if session is None or session.role != "operator":
            return JSONResponse({"error": "signin"}, status_code=401)
        raw = request.query_params.get("version", "")
        try:
            seat = await console.loop.seat(session.seat, wait_version=int(raw) if raw.isdigit() else None)
        except LoopError as exc:
            return JSONResponse({"error": exc.code}, status_code=502)
        if seat.operator not in (None, session.person) and seat.state != "offline":
            return JSONResponse({"error": "taken"}, status_code=409)
        return JSONResponse({"state": seat.state, "version": seat.version})

    async def resident_for(session: Session, seat: Seat, purpose: str = "call") -> Any:
        """The resident of the seat's answered call: access.viewed (`purpose`: `call`, or
        `callback` for a resident who called us) is signed and durable in the operator's
        outbox before the data store is read."""
        call = seat.call
        assert call is not None and call.case is not None
        shown = session.viewed.get(call.call)
        if shown is not None:
            return shown
        writer = console.writer(session)

        def view() -> Any:
            return console.store.read_case(
                call.case or "",
                person=session.person,
                purpose=purpose,
                log=lambda data: console.record(writer, "access.viewed", data),
            )

        resident = await console.durably(view)
        session.viewed = {call.call: resident}  # only the current call's resident stays in memory
        return resident

    async def op_call(request: Request) -> Response:
        session = need(request, "operator")
        if isinstance(session, Response):
            return session
        try:
            seat = await console.loop.seat(session.seat)
        except LoopError as exc:
            return page(request, "error.html", 502, message=f"発信システムに接続できません（{exc.detail}）")
        if (refusal := other_operators(request, session, seat)) is not None:
            return refusal
        return await render_call(request, session, seat)

    async def render_call(
        request: Request, session: Session, seat: Seat, status: int = 200, form: Any = None
    ) -> Response:
        call = seat.call
        if is_unanswered(call):
            assert call is not None
            await console.close_unanswered(console.writer(session), call)
            seat = await console.loop.seat(session.seat)
            call = seat.call
        base = {"seat": seat, **op_context(session)}
        if (
            call is not None
            and call.direction == "outbound"
            and call.raw.get("answered_at")
            and call.raw.get("outcome") is not None
        ):
            # Recorded; the loop frees the seat once its call.dialed is committed: wait, never show
            # (nor read, nor log a view of) the resident again.
            return page(request, "op_wait.html", **base, recorded=True)
        if call is not None and call.direction == "inbound":
            resident = None
            if call.case is not None:  # the caller was identified: who it is, after access.viewed
                try:
                    resident = await resident_for(session, seat, "callback")
                except DataStoreError as exc:
                    return page(request, "error.html", 500, message=f"案件の情報を読めません（{exc}）")
            script = base["script"]
            context = {
                "resident": resident,
                "form": form,
                "on_callback": True,
                "steps": script.steps if script else [],
                "landline_only": call.case is not None and console.board.landline_only(call.case),
            }
            return page(request, "op_inbound.html", status, **context, **base)
        if call is None or call.state in ("dialing", "ringing") or call.case is None:
            return page(request, "op_wait.html", **base, **call_context(seat))
        if not call.raw.get("answered_at"):
            # Unanswered: its outcome is recorded (by this page or the sweep) and the seat is
            # released once the loop has written call.dialed; nothing of the resident is shown.
            return page(request, "op_wait.html", **base, **call_context(seat))
        try:
            resident = await resident_for(session, seat)
        except DataStoreError as exc:
            return page(request, "error.html", 500, message=f"案件の情報を読めません（{exc}）")
        classification = call.classification
        if isinstance(classification, dict):
            kind = classification.get("kind")
            message_left = classification.get("message_left")
        else:
            kind = classification
            message_left = call.raw.get("message_left")
        script = base["script"]
        context = {
            **base,
            **call_context(seat),
            "call": call,
            "resident": resident,
            "kind": kind,
            "message_left": message_left,
            "landline_only": console.board.landline_only(call.case),
            "steps": script.steps if script else [],
            "form": form,
            **callback_choices(),
        }
        return page(request, "op_call.html", status, **context)

    def callback_choices() -> dict[str, Any]:
        """What the callback time is picked among (CALLBACK-APPOINTMENT): the month's calling days
        left with their hours, and nothing before now (the field's `min`, JST)."""
        now = console.clock().astimezone(TOKYO)
        days = [d for d in console.board.calling_days(f"{now:%Y-%m}") if d >= now.date()]
        return {
            "calling_days": [(d, *console.board.hours(d)) for d in days],
            "callback_min": f"{now:%Y-%m-%dT%H:%M}",
        }

    @action("operator")
    async def op_classify(request: Request, session: Session, form: FormData) -> Response:
        seat = await console.loop.seat(session.seat)
        if (refusal := other_operators(request, session, seat)) is not None:
            return refusal
        if seat.call is None:
            return RedirectResponse("/op", 303)
        kind = str(form.get("kind", ""))
        try:
            if kind == "person":
                await console.loop.classify(seat.call.call, "person")
            elif kind in ("voicemail_left", "voicemail_none"):
                await console.loop.classify(seat.call.call, "voicemail", kind == "voicemail_left")
            else:
                return RedirectResponse("/op/call", 303)
        except LoopError as exc:
            return page(request, "error.html", 502, message=f"発信システムが受け付けません（{exc.detail}）")
        return RedirectResponse("/op/call", 303)

    @action("operator")
    async def op_inbound_done(request: Request, session: Session, form: FormData) -> Response:
        """A resident's callback ends without an outcome: the caller was not identified, or hung
        up before being confirmed. Requests are refused here (nothing written): an identified
        resident's go with the callback's outcome (`op_callback_outcome`), an unidentified
        caller's to the manager by word of mouth. Then the loop is told, and the seat dials again."""
        call_id = str(form.get("call", ""))
        seat = await console.loop.seat(session.seat)
        if (refusal := other_operators(request, session, seat)) is not None:
            return refusal
        call = seat.call
        if call is None or call.call != call_id or call.direction != "inbound":
            # Not this seat's callback (ended already, or another seat's id): the loop is told
            # nothing, since it would release whichever seat holds that call.
            if form.getlist("requests"):
                return page(request, "error.html", 409, message="この通話はすでに終了しています。")
            return RedirectResponse("/op/call", 303)
        if form.getlist("requests"):
            message = (
                "案件が特定できない電話の用件は、管理者に口頭で引き継いでください。"
                if call.case is None
                else "申し出は通話の記録に含め、「記録して終了」で記録してください。"
            )
            return await render_call(request, session, seat, 422, OutcomeForm(errors={"requests": message}))
        with contextlib.suppress(LoopError):
            await tell_recorded(session, call_id, None)
        session.viewed = {}
        return RedirectResponse("/op/call", 303)

    @action("operator")
    async def op_callback_outcome(request: Request, session: Session, form: FormData) -> Response:
        """The outcome of an identified resident's callback (T §10(4)キ, N §8(4)キ): the same
        talk script and fields as a call's, checked by console/outcome.py, written as one signed
        `callback.outcome` through the operator's outbox, after the access.viewed (purpose
        `callback`) of the page. Its requests go to the city at once as `escalation.raised`
        (`via: callback`), as before; then the loop is told, and the seat dials again."""
        seat = await console.loop.seat(session.seat)
        if (refusal := other_operators(request, session, seat)) is not None:
            return refusal
        call = seat.call
        call_id = str(form.get("call", ""))
        if call is None or call.call != call_id or call.direction != "inbound" or call.case is None:
            return page(request, "error.html", 409, message="この通話はすでに記録済みか、終了しています。")
        if call_id not in session.viewed:  # nothing is recorded for a resident not shown (and logged)
            return RedirectResponse("/op/call", 303)
        if (again := await outcome_again(request, session, call_id)) is not None:
            return again
        script = script_context()["script"]
        fields = outcome_fields(form)
        checked = check_callback_outcome(
            fields,
            case=call.case,
            call=call_id,
            landline_only=console.board.landline_only(call.case),
            last_step=len(script.steps) if script else 0,
            now=console.clock(),
        )
        written = await write_checked(request, session, seat, "callback.outcome", checked, script)
        if isinstance(written, Response):
            return written
        writer, envelope = written
        for request_ in envelope["data"]["requests"]:
            raised = {
                "case": call.case,
                "reason": escalation_reason(request_),
                "to": console.config.escalate_to,
                "via": "callback",
                "outcome": envelope["id"],
            }
            await console.durably(console.record, writer, "escalation.raised", raised)
        return await recorded(request, session, call_id, envelope["id"])

    async def outcome_again(request: Request, session: Session, call: str) -> Response | None:
        """A second post of `call`'s outcome writes nothing: once written, the loop is told again
        (the operator's retry after 502 記録しましたが、…); while written (a second click, whose
        answer is the one the browser shows), the call page, where the first one's result is."""
        event = session.outcomes.get(call)
        if event is None:
            return None
        if not event:
            return RedirectResponse("/op/call", 303)
        return await recorded(request, session, call, event)

    async def write_checked(
        request: Request, session: Session, seat: Seat, kind: str, checked: OutcomeForm, script: Any
    ) -> Response | tuple[Writer, dict[str, Any]]:
        """The checked outcome form of the seat's call written as `kind` with the approved talk
        script's version (the person's writer and the envelope), or the form again with its
        errors (422, nothing written)."""
        if script is None:
            checked.errors["script"] = "承認済みのトークスクリプトがありません。"
        if checked.errors or checked.data is None:
            return await render_call(request, session, seat, 422, checked)
        assert seat.call is not None
        data = {**checked.data, "script_version": script.version}
        writer = console.writer(session)
        return writer, await write_outcome(session, seat.call.call, writer, kind, data)

    async def write_outcome(
        session: Session, call: str, writer: Writer, kind: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Writes `call`'s outcome, noted on the session before the first await (`outcome_again`)."""
        session.outcomes = {call: ""}
        try:
            envelope = await console.durably(console.record, writer, kind, data)
        except BaseException:
            session.outcomes = {}
            raise
        session.outcomes[call] = envelope["id"]
        return envelope

    async def recorded(request: Request, session: Session, call: str, event: str) -> Response:
        """The outcome `event` of `call` is durable: the loop is told, the resident forgotten."""
        try:
            await tell_recorded(session, call, event)
        except LoopError as exc:
            # no_such_call: the loop holds the call no more (a second click, or a retry after the
            # first one was told): nothing is left to tell it.
            if exc.code != "no_such_call":
                return page(
                    request,
                    "error.html",
                    502,
                    message=f"記録しましたが、発信システムへの通知に失敗しました（{exc.detail}）",
                )
        session.viewed = {}
        session.outcomes = {}
        return RedirectResponse("/op/call", 303)

    def outcome_fields(form: FormData) -> dict[str, Any]:
        """The posted outcome form as console/outcome.py reads it (`requests` and `step`: lists)."""
        fields: dict[str, Any] = {k: v for k, v in form.items() if k not in ("requests", "step")}
        fields["requests"] = form.getlist("requests")
        fields["step"] = form.getlist("step")
        return fields

    async def tell_recorded(session: Session, call: str, event: str | None) -> None:
        """Tells the loop the outcome is recorded; a call still connected is hung up first
        (the operator submits when they are done with the resident)."""
        try:
            await console.loop.outcome(call, event)
            return
        except LoopError as exc:
            if exc.code != "not_ended":
                raise
        await console.loop.hangup(call)
        seat = await console.loop.seat(session.seat)
        for _ in range(3):  # each wait is a long poll of up to 25 s
            if seat.call is None or seat.call.call != call or seat.call.state == "ended":
                break
            seat = await console.loop.seat(session.seat, wait_version=seat.version)
        await console.loop.outcome(call, event)

    @action("operator")
    async def op_outcome(request: Request, session: Session, form: FormData) -> Response:
        seat = await console.loop.seat(session.seat)
        if (refusal := other_operators(request, session, seat)) is not None:
            return refusal
        call = seat.call
        if call is None or call.case is None or str(form.get("call", "")) != call.call:
            return page(request, "error.html", 409, message="この通話はすでに記録済みか、終了しています。")
        if call.call not in session.viewed:
            return RedirectResponse("/op/call", 303)
        if (again := await outcome_again(request, session, call.call)) is not None:
            return again
        script = script_context()["script"]
        classification = call.classification
        kind = classification.get("kind") if isinstance(classification, dict) else classification
        fields = outcome_fields(form)
        checked = check_outcome(
            fields,
            case=call.case,
            call=call.call,
            voicemail=kind == "voicemail",
            landline_only=console.board.landline_only(call.case),
            last_step=len(script.steps) if script else 0,
            now=console.clock(),
            in_period=console.board.in_period,
        )
        if kind is None:
            checked.errors["kind"] = "先に通話の種類（本人・家族等／留守番電話）を選んでください。"
        written = await write_checked(request, session, seat, "call.outcome", checked, script)
        if isinstance(written, Response):
            return written
        return await recorded(request, session, call.call, written[1]["id"])

    # -- the manager -----------------------------------------------------------------------

    async def manager_home(request: Request, status: int = 200, **extra: Any) -> Response:
        session = need(request, "manager")
        if isinstance(session, Response):
            return session
        now = console.clock().astimezone(TOKYO)
        today = now.date()
        escalations = console.board.escalations()
        registered = console.board.registered_keys()
        sealed, unreadable = [], []
        for path in sorted(console.config.keys.glob("*.sealed")):
            info = sealed_info(path)
            if info is None:
                unreadable.append(path.name)
            else:
                sealed.append({**info, "registered": info["key"] in registered})
        docs = documents_with_approvals()
        waiting: list[dict[str, Any]] | None = None  # None: the loop could not be asked
        with contextlib.suppress(LoopError):
            waiting = [
                {**w, "waited_s": max(0, int((now - datetime.fromisoformat(w["since"])).total_seconds()))}
                for w in await console.loop.waiting_callbacks()
            ]
        context = {
            "waiting": waiting,
            "escalations": sorted(escalations, key=lambda e: (e.raised is not None, e.deadline)),
            "callbacks": console.board.callbacks_on(today),
            "inbound": console.board.inbound_callbacks(today),
            "callback_results": console.board.callback_results(),
            "callback_escalations": console.board.callback_escalations(today),
            "figures": console.board.figures(today),
            "reports": console.board.reports_due(today),
            "violations": violations(console, f"{today:%Y-%m}"),
            "staff": console.board.staff(),
            "sealed": sealed,
            "unreadable_keys": unreadable,
            "documents": docs,
            "sessions": sorted(console.sessions.values(), key=lambda s: s.started),
            "orphans": sorted(console.orphans.values(), key=lambda o: o[2].started or ""),
            "errors": {},
            "message": None,
            **extra,
        }
        return page(request, "manager.html", status, **context)

    @action("manager")
    async def manager_escalate(request: Request, session: Session, form: FormData) -> Response:
        case, reason = str(form.get("case", "")), str(form.get("reason", ""))
        opened = any(e.data["case"] == case for e in console.board.events("case.opened"))
        if reason not in REASONS or not opened:  # a hand-made form naming no case of the contract
            return await manager_home(request, 422, errors={"escalate": "案件と理由を選んでください。"})
        data = {"case": case, "reason": reason, "to": console.config.escalate_to}
        await run_in_threadpool(console.record, console.writer(session), "escalation.raised", data)
        return RedirectResponse("/manager#escalations", 303)

    @action("manager")
    async def manager_unanswered(request: Request, session: Session, form: FormData) -> Response:
        """An unanswered call left on a seat whose operator's session ended: its outcome
        (the same as the console writes for any unanswered call) signed by the manager."""
        orphan = console.orphans.get(str(form.get("call", "")))
        if orphan is None or not is_unanswered(orphan[2]):
            message = "その通話は記録待ちではありません（すでに記録済みです）。"
            return await manager_home(request, 422, errors={"unanswered": message})
        await console.close_unanswered(console.writer(session), orphan[2])
        return RedirectResponse("/manager#unanswered", 303)

    @action("manager")
    async def manager_staff(request: Request, session: Session, form: FormData) -> Response:
        action = str(form.get("action", ""))
        person = str(form.get("person", "")).strip()
        role = str(form.get("role", ""))
        errors: dict[str, str] = {}
        if not person:
            errors["person"] = "職員IDを入力してください。"
        elif len(person) > 64 or "+" in person or any(c.isspace() for c in person):
            # the id is the name of the person's key (a signed note's key name: no space, no '+')
            errors["person"] = "職員IDは64文字以内で、空白や「+」を含めずに入力してください。"
        kind = ""
        data: dict[str, Any] = {}
        if action in ("designate", "revoke"):
            if role not in ("operator", "manager", "custodian", "city"):
                errors["role"] = "役割を選んでください。"
            kind = "staff.designated" if action == "designate" else "staff.revoked"
            data = {"person": person, "role": role, "by": session.person}
        elif action == "trained":
            course = str(form.get("course", "")).strip()
            if not course:
                errors["course"] = "研修の名前を入力してください。"
            kind, data = "staff.trained", {"person": person, "course": course, "by": session.person}
        elif action == "pledged":
            digest = str(form.get("sha256", "")).strip().lower()
            filename, scan = request.state.uploads.get("pledge", ("", b""))
            if filename and scan:
                digest = hashlib.sha256(scan).hexdigest()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                errors["sha256"] = "誓約書のスキャンファイルを選ぶか、SHA-256（64桁）を入力してください。"
            to = str(form.get("to", "")).strip()
            if not to:
                errors["to"] = "誓約書を受け取った市の担当者を入力してください。"
            kind, data = "staff.pledged", {"person": person, "sha256": digest, "to": to}
        else:
            errors["action"] = "操作を選んでください。"
        if errors:
            return await manager_home(request, 422, errors=errors)
        if kind == "staff.revoked":
            waiting = console.undelivered(lambda w: w.client.actor == person, person)
            if waiting:
                return await manager_home(request, 409, errors={"person": not_delivered(waiting)})
        await run_in_threadpool(console.record, console.writer(session), kind, data)
        if kind == "staff.revoked":
            # Their sessions in that role end at once, with no access.logout: signed after the
            # revocation it would be a finding (DESIGNATED-ACTOR). The sweep signs their seats out.
            for other in list(console.sessions.values()):
                if other.person == person and other.role == role:
                    console.end_session(other)
        return RedirectResponse("/manager#staff", 303)

    @action("manager")
    async def manager_keys(request: Request, session: Session, form: FormData) -> Response:
        action = str(form.get("action", "register"))
        person = str(form.get("person", "")).strip()
        path = console.config.keys / f"{person}.sealed"
        if action == "register":
            if not person or "/" in person or not path.exists():
                return await manager_home(request, 422, errors={"keys": "その職員の鍵ファイルがありません。"})
            info = sealed_info(path)
            if info is None:
                message = (
                    "その職員の鍵ファイルを読めません（kansa keys new --passphrase で作り直してください）。"
                )
                return await manager_home(request, 422, errors={"keys": message})
            if info["holder"] != person:  # the file's name is whose key the desk says it is
                message = (
                    f"鍵ファイル {path.name} は {info['holder']} の鍵です。ファイル名と持ち主が一致しません。"
                )
                return await manager_home(request, 422, errors={"keys": message})
            kind = "key.registered"
            data = {"key": info["key"], "public_key": info["public_key"], "holder": info["holder"]}
        else:
            key = str(form.get("key", ""))
            if key == console.writer(session).client.signer.verifier.key_ref:
                message = "自分がいま使っている鍵は失効させられません。別の管理者に依頼してください。"
                return await manager_home(request, 422, errors={"keys": message})
            holder = key.split("+")[0]  # a key's id is its holder's name + its hash
            waiting = console.undelivered(lambda w: w.client.signer.verifier.key_ref == key, holder)
            if waiting:
                return await manager_home(request, 409, errors={"keys": not_delivered(waiting)})
            reason = str(form.get("reason", "")).strip() or "管理者による失効"
            kind, data = "key.revoked", {"key": key, "reason": reason}
        writer = console.writer(session)
        body = sign_key_request(writer.client.signer, kind, data, now=console.clock())
        try:
            response = await run_in_threadpool(
                console._http.post, f"{console.config.ledger_url.rstrip('/')}/v1/keys", json=body
            )
        except httpx.TransportError:
            message = "台帳サービスに接続できません。しばらくしてからもう一度操作してください。"
            return await manager_home(request, 503, errors={"keys": message})
        if response.status_code not in (200, 201):
            return await manager_home(
                request, 422, errors={"keys": f"台帳サービスが受け付けませんでした（{response.text[:200]}）"}
            )
        if kind == "key.revoked":
            # Sessions holding the revoked key end at once, with no access.logout: anything signed
            # with it from now on would be a finding; the sweep signs their seats out.
            for other in list(console.sessions.values()):
                mine = console.writers.get(other.person)
                if mine is not None and mine.client.signer.verifier.key_ref == data["key"]:
                    console.end_session(other)
        console.board.refresh(force=True)
        return RedirectResponse("/manager#keys", 303)

    @action("manager")
    async def manager_documents(request: Request, session: Session, form: FormData) -> Response:
        filename, raw = request.state.uploads.get("file", ("", b""))
        if not filename:
            return await manager_home(request, 422, errors={"documents": "ファイルを選んでください。"})
        try:
            console.documents.load(
                str(form.get("kind", "")),
                str(form.get("version", "")),
                filename,
                raw,
                by=session.person,
                now=console.clock(),
            )
        except DocumentError as exc:
            return await manager_home(request, 422, errors={"documents": str(exc)})
        return RedirectResponse("/manager#documents", 303)

    @action("manager")
    async def manager_revoke_session(request: Request, _session: Session, form: FormData) -> Response:
        started = str(form.get("session", ""))
        for other in list(console.sessions.values()):
            if hmac.compare_digest(session_id(other), started):
                await run_in_threadpool(partial(console.end_session, other, logout=True))
        return RedirectResponse("/manager#sessions", 303)

    # -- the city ---------------------------------------------------------------------------

    async def city_home(request: Request, status: int = 200, **extra: Any) -> Response:
        session = need(request, "city")
        if isinstance(session, Response):
            return session
        today = console.clock().astimezone(TOKYO).date()
        docs = documents_with_approvals()
        escalations = console.board.events("escalation.raised")[::-1]  # each one once, newest first
        context = {
            "figures": console.board.figures(today),
            "documents": docs,
            "raised": escalations,
            "stops": console.board.events("case.stop"),
            "sms_lists": console.board.events("sms.designated"),
            "batches": sorted(
                {(e.data["batch"], e.data["month"]) for e in console.board.events("case.opened")}
            ),
            "errors": {},
            "values": {},
            **extra,
        }
        return page(request, "city.html", status, **context)

    def case_of(text: str, batch: str | None = None) -> str | None:
        """The case the city means, by its 案件番号 (the city's own number) or by its reference."""
        opened = {
            e.data["case"]
            for e in console.board.events("case.opened")
            if batch is None or e.data["batch"] == batch
        }
        if text in opened:
            return text
        try:
            ref = console.store.known_case_ref(text)
        except DataStoreError:  # the contract's data destroyed: only references are left
            return None
        return ref if ref in opened else None

    @action("city")
    async def city_stop(request: Request, session: Session, form: FormData) -> Response:
        text = str(form.get("case", "")).strip()
        reason = str(form.get("reason", "")).strip()
        errors = {}
        case = case_of(text) if text else None
        if case is None:
            errors["case"] = "その案件番号（または案件参照）の案件はありません。"
        if not reason:
            errors["reason"] = "停止の理由を入力してください。"
        if errors:
            return await city_home(request, 422, errors=errors, values=dict(form))
        data = {"case": case, "by": session.person, "reason": reason}
        await run_in_threadpool(console.record, console.writer(session), "case.stop", data)
        return RedirectResponse("/city#stop", 303)

    @action("city")
    async def city_sms(request: Request, session: Session, form: FormData) -> Response:
        batch = str(form.get("batch", "")).strip()
        given = [c.strip() for c in str(form.get("cases", "")).split() if c.strip()]
        sender_id = str(form.get("sender_id", "")).strip()
        errors = {}
        opened = any(e.data["batch"] == batch for e in console.board.events("case.opened"))
        if not opened:
            errors["batch"] = "そのバッチはありません。"
        found = {text: case_of(text, batch) for text in given}
        unknown = [text for text, case in found.items() if case is None]
        cases = list(dict.fromkeys(case for case in found.values() if case is not None))
        if not given:
            errors["cases"] = "案件番号を1行に1件ずつ入力してください。"
        elif unknown and opened:
            errors["cases"] = f"このバッチにない案件があります：{'、'.join(unknown[:5])}"
        try:
            send_at = datetime.fromisoformat(str(form.get("send_at", "")))
            # the form's datetime-local is JST; a time with its offset is that moment
            send_at = send_at.replace(tzinfo=TOKYO) if send_at.tzinfo is None else send_at.astimezone(TOKYO)
        except ValueError:
            errors["send_at"] = "送信日時を入力してください。"
        if not sender_id:
            errors["sender_id"] = "表示する送信元番号を入力してください。"
        if errors:
            return await city_home(request, 422, errors=errors, values=dict(form))
        data = {"batch": batch, "cases": cases, "send_at": send_at.isoformat(), "sender_id": sender_id}
        await run_in_threadpool(console.record, console.writer(session), "sms.designated", data)
        return RedirectResponse("/city#sms", 303)

    @action("city")
    async def city_approve(request: Request, session: Session, form: FormData) -> Response:
        doc = console.documents.get(str(form.get("kind", "")), str(form.get("version", "")))
        if doc is None:
            return await city_home(request, 422, errors={"approve": "その文書はありません。"})
        data = {"kind": doc.kind, "version": doc.version, "sha256": doc.sha256, "by": session.person}
        await run_in_threadpool(console.record, console.writer(session), "document.approved", data)
        return RedirectResponse("/city#documents", 303)

    async def document_text(request: Request) -> Response:
        session = console.session_of(request)
        if session is None:
            return RedirectResponse("/signin", 303)
        doc = console.documents.get(request.path_params["kind"], request.path_params["version"])
        if doc is None:
            return page(request, "error.html", 404, message="その文書はありません。")
        approval = next(
            (
                a
                for a in console.board.approvals()
                if a.data["kind"] == doc.kind and a.data["sha256"] == doc.sha256
            ),
            None,
        )
        return page(request, "document.html", doc=doc, approval=approval, home=HOME.get(session.role, "/"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        console.start()
        sweeping = asyncio.create_task(console.sweep_forever())
        try:
            yield
        finally:
            sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeping
            await asyncio.shield(console.loop.close())
            console.stop()

    env.globals["session_id"] = session_id
    routes = [
        Route("/", home),
        Route("/signin", signin_form, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/op", op_home),
        Route("/op/ready", op_ready, methods=["POST"]),
        Route("/op/pause", op_pause, methods=["POST"]),
        Route("/op/seat.json", op_seat_json),
        Route("/op/call", op_call),
        Route("/op/classify", op_classify, methods=["POST"]),
        Route("/op/outcome", op_outcome, methods=["POST"]),
        Route("/op/inbound-done", op_inbound_done, methods=["POST"]),
        Route("/op/callback-outcome", op_callback_outcome, methods=["POST"]),
        Route("/manager", manager_home),
        Route("/manager/escalate", manager_escalate, methods=["POST"]),
        Route("/manager/unanswered", manager_unanswered, methods=["POST"]),
        Route("/manager/staff", manager_staff, methods=["POST"]),
        Route("/manager/keys", manager_keys, methods=["POST"]),
        Route("/manager/documents", manager_documents, methods=["POST"]),
        Route("/manager/sessions/revoke", manager_revoke_session, methods=["POST"]),
        Route("/city", city_home),
        Route("/city/stop", city_stop, methods=["POST"]),
        Route("/city/sms", city_sms, methods=["POST"]),
        Route("/city/approve", city_approve, methods=["POST"]),
        Route("/documents/{kind}/{version}", document_text),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    async def loop_unreachable(request: Request, exc: Exception) -> Response:
        """The loop refused or was unreachable where a page did not say so itself (the operator's
        forms ask it for the seat first): said as the call page says it, not a server error."""
        detail = exc.detail if isinstance(exc, LoopError) else str(exc)
        return page(request, "error.html", 502, message=f"発信システムに接続できません（{detail}）")

    async def too_large(request: Request, _exc: Exception) -> Response:
        message = f"送信されたファイルが大きすぎます（{MAX_UPLOAD // (1024 * 1024)} MB まで）。何も記録していません。"
        return page(request, "error.html", 413, message=message)

    app = Starlette(
        routes=routes,
        middleware=[Middleware(_Headers)],
        lifespan=lifespan,
        exception_handlers={FormTooLarge: too_large, LoopError: loop_unreachable},
    )
    app.state.console = console
    return app


def sealed_info(path: Path) -> dict[str, Any] | None:
    """The public part of a sealed key file (holder, key, public_key), or None when the file is
    not one (a stray or damaged file in the keys folder must not take the manager's desk down)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not all(
        isinstance(info.get(k), str) for k in ("holder", "key", "public_key")
    ):
        return None
    return info


def session_id(session: Session) -> str:
    """A session's public handle on the manager's desk (never its cookie)."""
    return hashlib.sha256(session.token.encode()).hexdigest()[:16]


def violations(console: Console, month: str) -> dict[str, Any] | None:
    """Findings of the latest compliance run of the month (not pending), from the results database."""
    path = console.config.results
    if path is None or not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        run = conn.execute(
            "SELECT size, root, as_of FROM runs WHERE month = ? ORDER BY size DESC LIMIT 1", (month,)
        ).fetchone()
        if run is None:
            return {"size": None, "as_of": None, "rules": []}
        rows = conn.execute(
            "SELECT rule, clause, count(*) FROM findings WHERE month = ? AND size = ? AND root = ?"
            " AND pending = 0 GROUP BY rule, clause ORDER BY rule",
            (month, run[0], run[1]),
        ).fetchall()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return {"size": run[0], "as_of": run[2], "rules": rows, "total": sum(n for _, _, n in rows)}
