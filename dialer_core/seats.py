"""The seats: their states, the per-seat progressive runner, and the seats API for the consoles.

`SeatBoard` holds every seat's state and current call (docs/dialer.md, "The
seats API"), versioned so a console can long-poll. `SeatRunner` is one seat's
progressive dialling: while the seat is ready it takes the next call from the
plan (which applies the guard at that moment), places it on the seat's phone,
writes `call.dialed` when the call has ended (the result from the signalling,
or from the operator's classification for an answered call), and makes the
seat ready again once the operator's outcome is recorded. `SeatsApi` serves
the board over HTTP on loopback (stdlib server, bearer token).
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from ledger.event import uuid7

from .adapters import DialResult, Telephony
from .dialer import dialed_data

Record = Callable[[str, dict[str, Any], datetime], None]
STATES = ("offline", "paused", "ready", "dialing", "ringing", "connected", "wrap_up")


class SeatError(Exception):
    """A request the seat's state does not allow (HTTP 409), or an unknown seat or call (404)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@dataclass
class Call:
    call: str
    direction: str  # outbound, inbound
    case: str | None
    number: str | None
    caller_id: str | None
    started: str
    state: str = "dialing"  # dialing, ringing, connected, ended
    ring_s: int | None = None
    answered_at: str | None = None
    ended_at: str | None = None
    result: str | None = None
    classification: dict[str, Any] | None = None
    recorded: bool = False
    queued_s: int | None = None
    outcome: str | None = None  # the id of the call.outcome the console wrote (or "" for none)


@dataclass
class Seat:
    seat: str
    operator: str | None = None
    state: str = "offline"
    version: int = 0
    call: Call | None = None
    after_call: str | None = None  # paused/offline asked for during a call
    hangup: Callable[[], None] | None = None
    gone: bool = False  # the phone or console went away mid-call (lost): released once recorded

    def public(self) -> dict[str, Any]:
        return {
            "seat": self.seat,
            "operator": self.operator,
            "state": self.state,
            "version": self.version,
            "call": asdict(self.call) if self.call else None,
        }


class SeatBoard:
    """Every seat's state, changed under one lock; a change wakes only that seat's waiters.

    Each seat has its own condition over the board's one lock: a long poll of one seat, and
    its runner's thread, wake when that seat changes, not on every change of the 200 others
    (benchmarks/console_bench.py: one condition for all seats woke every waiter each time).
    """

    def __init__(self, seats: list[str]) -> None:
        self.seats = {name: Seat(name) for name in seats}
        # reentrant, as the one condition's lock was: a caller may hold it over several changes
        self.lock = threading.RLock()
        self._changes = {name: threading.Condition(self.lock) for name in seats}
        # callers queued on the center's lines, not yet put through: key -> case, since, line
        # (references only: never the calling number)
        self._waiting: dict[str, dict[str, Any]] = {}

    def _seat(self, name: str) -> Seat:
        if name not in self.seats:
            raise SeatError(404, "no_such_seat", f"no seat {name}")
        return self.seats[name]

    def _call(self, call_id: str) -> Seat:
        for seat in self.seats.values():
            if seat.call is not None and seat.call.call == call_id:
                return seat
        raise SeatError(404, "no_such_call", f"no current call {call_id}")

    def _changed(self, seat: Seat) -> dict[str, Any]:
        seat.version += 1
        self._changes[seat.seat].notify_all()
        return seat.public()

    def _wait(self, seat: Seat, predicate: Callable[[], bool], timeout: float) -> bool:
        """Waits (the lock held) until `predicate` holds or `timeout` passes; woken by this seat's changes."""
        return self._changes[seat.seat].wait_for(predicate, timeout)

    # -- the console's side -----------------------------------------------------------------

    def get(self, name: str, wait_version: int | None = None, timeout: float = 25.0) -> dict[str, Any]:
        with self.lock:
            seat = self._seat(name)
            if wait_version is not None:
                self._wait(seat, lambda: seat.version != wait_version, timeout)
            return seat.public()

    def all(self) -> list[dict[str, Any]]:
        with self.lock:
            return [s.public() for s in self.seats.values()]

    def waiting(self) -> list[dict[str, Any]]:
        """The callers waiting on the center's lines, longest-waiting first."""
        with self.lock:
            return sorted((dict(w) for w in self._waiting.values()), key=lambda w: str(w["since"]))

    # -- the callback lines' side -----------------------------------------------------------

    def waiting_add(self, key: str, case: str | None, since: datetime, line: str | None = None) -> None:
        """A caller starts waiting on a line (`since`: the loop's clock, with its zone)."""
        with self.lock:
            self._waiting[key] = {"case": case, "since": since.isoformat(), "line": line}

    def waiting_remove(self, key: str) -> None:
        """The caller was put through, hung up or timed out."""
        with self.lock:
            self._waiting.pop(key, None)

    def ready(self, name: str, operator: str) -> dict[str, Any]:
        with self.lock:
            seat = self._seat(name)
            if seat.state not in ("offline", "paused", "ready") or seat.call is not None:
                raise SeatError(409, "busy", f"seat {name} is {seat.state}")
            if seat.operator not in (None, operator) and seat.state != "offline":
                raise SeatError(409, "taken", f"seat {name} is {seat.operator}'s")
            seat.operator, seat.state, seat.after_call = operator, "ready", None
            return self._changed(seat)

    def pause(self, name: str, then: str = "paused") -> dict[str, Any]:
        with self.lock:
            seat = self._seat(name)
            if seat.call is not None:
                seat.after_call = then  # after this call
            else:
                seat.state = then
                if then == "offline":
                    seat.operator = None
            return self._changed(seat)

    def hangup(self, call_id: str) -> dict[str, Any]:
        with self.lock:
            seat = self._call(call_id)
            hang = seat.hangup
        if hang is not None:
            hang()
        with self.lock:
            return asdict(seat.call) if seat.call else {}

    def classify(self, call_id: str, kind: str, message_left: bool | None) -> dict[str, Any]:
        if kind not in ("person", "voicemail"):
            raise SeatError(400, "bad_kind", "kind is person or voicemail")
        with self.lock:
            seat = self._call(call_id)
            assert seat.call is not None
            if seat.call.direction != "outbound" or seat.call.answered_at is None:
                raise SeatError(409, "not_answered", "only an answered outbound call is classified")
            if seat.call.recorded:
                raise SeatError(409, "recorded", "the call is already recorded")
            seat.call.classification = {"kind": kind, "message_left": bool(message_left)}
            self._changed(seat)
            return asdict(seat.call)

    def outcome(self, call_id: str, event: str | None) -> dict[str, Any]:
        with self.lock:
            seat = self._call(call_id)
            assert seat.call is not None
            if seat.call.direction == "inbound":
                seat.call.recorded = True  # callback.received was written when it was connected
            elif seat.call.state != "ended":
                raise SeatError(409, "not_ended", "the call has not ended")
            if (
                seat.call.direction == "outbound"
                and seat.call.answered_at
                and not seat.call.classification
                and not seat.call.recorded
            ):
                raise SeatError(409, "not_classified", "classify the call first: person or voicemail")
            seat.call.outcome = event or ""
            self._release(seat)
            return seat.public()

    # -- the loop's side ----------------------------------------------------------------------

    def _release(self, seat: Seat) -> None:
        """The call is over for the seat: ready again, or what was asked during it."""
        if seat.call is not None and not seat.call.recorded:
            self._changed(seat)
            return  # released once it is recorded (see recorded())
        seat.call = None
        seat.hangup = None
        seat.state = seat.after_call or ("ready" if seat.state != "offline" else "offline")
        if seat.state == "offline":
            seat.operator = None
        seat.after_call = None
        seat.gone = False
        self._changed(seat)

    def wait_ready(self, name: str, timeout: float, stop: Callable[[], bool] = lambda: False) -> bool:
        """Waits until the seat is ready with no call (True), or `stop()` holds after a `wake`."""
        with self.lock:
            seat = self._seat(name)
            self._wait(seat, lambda: (seat.state == "ready" and seat.call is None) or stop(), timeout)
            return seat.state == "ready" and seat.call is None and not stop()

    def wake(self, name: str) -> None:
        """Wakes the seat's waiters without a change (a runner told to stop)."""
        with self.lock:
            self._changes[self._seat(name).seat].notify_all()

    def claim_ready(self, make: Callable[[str], Call]) -> str | None:
        """The first ready seat, taken at once for an inbound call (callbacks come before dialling)."""
        with self.lock:
            for seat in self.seats.values():
                if seat.state == "ready" and seat.call is None:
                    seat.call, seat.state = make(seat.seat), "connected"
                    self._changed(seat)
                    return seat.seat
        return None

    def release_claim(self, name: str) -> None:
        with self.lock:
            seat = self._seat(name)
            seat.call, seat.state = None, "ready"
            self._changed(seat)

    def start(self, name: str, call: Call, hangup: Callable[[], None] | None) -> None:
        with self.lock:
            seat = self._seat(name)
            if seat.call is not None or seat.state != "ready":
                raise SeatError(409, "busy", f"seat {name} is {seat.state}")
            seat.call, seat.hangup = call, hangup
            seat.state = "dialing"
            self._changed(seat)

    def progress(self, name: str, state: str, **fields: Any) -> None:
        with self.lock:
            seat = self._seat(name)
            if seat.call is None:
                return
            for key, value in fields.items():
                setattr(seat.call, key, value)
            seat.call.state = state
            if state in ("ringing", "connected"):
                seat.state = state
            elif state == "ended" and seat.state != "offline":
                seat.state = "wrap_up"  # every call needs its call.outcome (RECORD-EVERY-CALL)
            self._changed(seat)

    def lost(self, name: str) -> None:
        """The seat's phone or console went away: offline after the call is recorded."""
        with self.lock:
            seat = self._seat(name)
            seat.after_call = "offline"
            seat.gone = seat.call is not None
            if seat.call is None:
                seat.state, seat.operator = "offline", None
            self._changed(seat)

    def wait_classified(self, name: str, timeout: float) -> dict[str, Any] | None:
        with self.lock:
            seat = self._seat(name)
            self._wait(
                seat,
                lambda: (
                    seat.call is None or seat.call.classification is not None or seat.after_call == "offline"
                ),
                timeout,
            )
            return seat.call.classification if seat.call else None

    def recorded(self, name: str, *, release: bool) -> None:
        with self.lock:
            seat = self._seat(name)
            if seat.call is None:
                return
            seat.call.recorded = True
            # A seat signed out during the call keeps it until its outcome is posted (the
            # console's desk records an unanswered one); a seat whose phone went away does not.
            if release or seat.call.outcome is not None or seat.gone:
                self._release(seat)
            else:
                self._changed(seat)


# -- one seat's progressive dialling -----------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """The next call for a seat: the plan's choice, already passed by the guard at this moment."""

    case: str
    number: str
    phone: str  # clear, decrypted for this call only
    caller_id: str
    callback: bool = False


@dataclass
class SeatRunner:
    """Progressive dialling for one seat: one call at a time while the seat is ready.

    `plan(seat, now)` gives the next call (the guard applied at that moment) or
    None; `done(planned, result)` tells the plan what happened (attempts,
    ended numbers). `classify_timeout_s`: an answered call nobody classified
    is recorded `answered` with `classified: false` after this (or at once
    when the seat goes away).
    """

    seat: str
    phone: Telephony  # its `hangup()`, when it has one, is the operator's hang-up button
    board: SeatBoard
    plan: Callable[[str, datetime], Planned | None]
    record: Record
    clock: Callable[[], datetime]
    done: Callable[[Planned, DialResult], None] = lambda planned, result: None
    give_back: Callable[[Planned], None] = lambda planned: None  # a planned call that was not dialled
    classify_timeout_s: float = 600.0
    idle_s: float = 1.0
    calls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        self._stop.set()
        self.board.wake(self.seat)

    def run(self) -> None:
        while not self._stop.is_set():
            # woken by the seat's changes and by stop(): no polling (200 idle seats polling
            # every 0.2 s were a thousand wake-ups a second)
            if not self.board.wait_ready(self.seat, 5.0, self._stop.is_set):
                continue
            planned = self.plan(self.seat, self.clock())
            if planned is None:
                self._stop.wait(self.idle_s)
                continue
            try:
                self.one(planned)
            except SeatError:  # a callback took the seat first; the plan offers the call again
                self.give_back(planned)
            except Exception:  # the seat's phone is gone: the seat is offline, the call given back
                continue

    def one(self, planned: Planned) -> DialResult:
        """Places one planned call and records it; returns what the signalling said."""
        at = self.clock()
        call = Call(
            call=uuid7(at),
            direction="outbound",
            case=planned.case,
            number=planned.number,
            caller_id=planned.caller_id,
            started=at.isoformat(),
        )
        self.board.start(self.seat, call, getattr(self.phone, "hangup", None))

        def progress(state: str, info: dict[str, Any]) -> None:
            if state == "connected":
                self.board.progress(self.seat, "connected", answered_at=self.clock().isoformat())
            elif state == "ringing":
                self.board.progress(self.seat, "ringing")

        try:
            result = self.phone.dial(planned.phone, at, caller_id=planned.caller_id, progress=progress)
        except Exception:  # the phone refused the dial command: nothing was dialled, nothing to record
            self.board.lost(self.seat)
            self.board.recorded(self.seat, release=True)
            self.give_back(planned)
            raise
        self.calls += 1
        if result.lost:
            self.board.lost(self.seat)
        ended: dict[str, Any] = {"ended_at": result.ended_at.isoformat(), "ring_s": result.ring_s}
        if result.result == "answered" and call.answered_at is None:  # an adapter without progress
            ended["answered_at"] = (result.answered_at or at).isoformat()
        self.board.progress(self.seat, "ended", result=result.result, **ended)
        data = dialed_data(planned.case, planned.number, call.call, planned.caller_id, result)
        answered = result.answered_at is not None or result.result == "answered"
        if answered and result.result == "answered":
            classification = self.board.wait_classified(self.seat, self.classify_timeout_s)
            if classification is None:
                data["classified"] = False
            elif classification["kind"] == "voicemail":
                data["result"] = "voicemail"
                data["message_left"] = classification["message_left"]
        self.record("call.dialed", data, at)
        self.done(planned, result)
        # every call waits for its outcome (the console writes it; for an unanswered call at once)
        self.board.recorded(self.seat, release=False)
        return result


# -- the HTTP API ---------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    # A console holds one long poll per seat and sends its requests beside them: the
    # default backlog of 5 refused connections at 200 seats (benchmarks/console_bench.py).
    request_queue_size = 1024


class SeatsApi:
    """docs/dialer.md "The seats API", on loopback; every request needs the bearer token."""

    def __init__(self, board: SeatBoard, token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle on, a kept-alive connection
            # waited for the client's delayed ACK, ~40 ms an answer (benchmarks/console_bench.py).
            disable_nagle_algorithm = True

            def _body(self) -> dict[str, Any]:
                size = int(self.headers.get("Content-Length") or 0)
                if not size:
                    return {}
                body = json.loads(self.rfile.read(size))
                if not isinstance(body, dict):
                    raise SeatError(400, "bad_body", "the body is a JSON object")
                return body

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                try:
                    given = self.headers.get("Authorization", "")
                    if not hmac.compare_digest(given.encode(), f"Bearer {api.token}".encode()):
                        raise SeatError(401, "unauthorized", "a valid bearer token is required")
                    url = urlparse(self.path)
                    parts = [p for p in url.path.split("/") if p]
                    body = self._body() if method == "POST" else {}
                    self._answer(200, api.route(method, parts, parse_qs(url.query), body))
                except SeatError as exc:
                    self._answer(exc.status, {"error": exc.code, "detail": exc.detail})
                except (ValueError, TypeError, KeyError) as exc:
                    self._answer(400, {"error": "bad_request", "detail": str(exc)})

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

            def log_message(self, *args: Any) -> None:
                pass

        self.board = board
        self.token = token
        self.httpd = _Server((host, port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def route(self, method: str, parts: list[str], query: dict[str, list[str]], body: dict[str, Any]) -> Any:
        board = self.board
        match method, parts:
            case "GET", ["v1", "seats"]:
                return {"seats": board.all()}
            case "GET", ["v1", "callbacks", "waiting"]:
                return {"waiting": board.waiting()}
            case "GET", ["v1", "seats", seat]:
                wait = query.get("wait")
                return board.get(seat, int(wait[0]) if wait else None)
            case "POST", ["v1", "seats", seat, "ready"]:
                operator = body.get("operator")
                if not isinstance(operator, str) or not operator:
                    raise SeatError(400, "bad_body", "operator is required")
                return board.ready(seat, operator)
            case "POST", ["v1", "seats", seat, "pause"]:
                return board.pause(seat)
            case "POST", ["v1", "seats", seat, "signout"]:
                return board.pause(seat, "offline")
            case "POST", ["v1", "calls", call, "hangup"]:
                return board.hangup(call)
            case "POST", ["v1", "calls", call, "classification"]:
                left = body.get("message_left")
                return board.classify(call, str(body.get("kind")), bool(left) if left is not None else None)
            case "POST", ["v1", "calls", call, "outcome"]:
                event = body.get("event")
                if event is not None and not isinstance(event, str):
                    raise SeatError(400, "bad_body", "event is the call.outcome's id or null")
                return board.outcome(call, event)
        raise SeatError(404, "not_found", f"no {method} /{'/'.join(parts)}")

    def __enter__(self) -> SeatsApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_until(predicate: Callable[[], bool], seconds: float) -> bool:
    end = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True
