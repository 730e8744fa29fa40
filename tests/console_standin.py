"""STAND-IN for `kansa dialer run`'s seats API (docs/dialer.md, "The seats API"), with simulated
telephony: a queue of planned calls, answered after a short ring.

It exists only until the real dialling loop lands; it speaks the same HTTP API, so the console
is built and tested against the interface and not this code. It writes `call.dialed` (actor
`system`) through its own outbox, signed by a device key registered to `system`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dialer_core.client import OperatorClient
from ledger import Signer


@dataclass
class Planned:
    case: str
    number: str = "1"
    result: str = "answered"  # what the network says: answered (a person or a voicemail box), no_answer
    ring_s: int = 8


@dataclass
class StandinLoop:
    signer: Signer  # held by "system"
    outbox: Path
    ledger_url: str
    clock: Callable[[], datetime]
    caller_ids: tuple[str, ...] = ("0258-39-1001", "0258-39-1002")
    answer_after: float = 0.3  # wall seconds of ringing before the simulated answer
    plan: list[Planned] = field(default_factory=list)
    seats: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.client = OperatorClient(self.ledger_url, self.signer, self.outbox, clock=self.clock)
        self.lock = threading.Lock()
        self.changed: asyncio.Condition | None = None
        self._stop = threading.Event()
        self._courier = threading.Thread(target=self._deliver, daemon=True)

    def _deliver(self) -> None:
        while not self._stop.wait(0.1):
            with self.lock, contextlib.suppress(Exception):
                if self.client.pending():
                    self.client.deliver(deadline=time.monotonic())

    def seat(self, name: str) -> dict[str, Any]:
        return self.seats.setdefault(
            name, {"seat": name, "operator": None, "state": "offline", "version": 0, "call": None}
        )

    async def bump(self, seat: dict[str, Any]) -> None:
        seat["version"] += 1
        assert self.changed is not None
        async with self.changed:
            self.changed.notify_all()

    async def dial_next(self, seat: dict[str, Any]) -> None:
        if seat["state"] != "ready" or not self.plan:
            return
        planned = self.plan.pop(0)
        call = {
            "call": f"K{uuid.uuid4().hex[:12]}",
            "direction": "outbound",
            "case": planned.case,
            "number": planned.number,
            "caller_id": self.caller_ids[len(self.calls) % len(self.caller_ids)],
            "started": self.clock().isoformat(),
            "state": "ringing",
            "ring_s": planned.ring_s,
            "answered_at": None,
            "ended_at": None,
            "result": None,
            "classification": None,
            "recorded": False,
            "seat": seat["seat"],
        }
        self.calls[call["call"]] = call
        seat["state"], seat["call"] = "ringing", call
        await self.bump(seat)

        async def answer() -> None:
            await asyncio.sleep(self.answer_after)
            if seat["call"] is call and call["state"] == "ringing":
                call["state"], call["answered_at"] = "connected", self.clock().isoformat()
                seat["state"] = "connected"
                await self.bump(seat)

        asyncio.get_running_loop().create_task(answer())

    def public(self, seat: dict[str, Any]) -> dict[str, Any]:
        call = seat["call"]
        return {**seat, "call": None if call is None else {k: v for k, v in call.items() if k != "seat"}}

    def app(self) -> Starlette:
        def error(status: int, code: str, detail: str) -> Response:
            return JSONResponse({"error": code, "detail": detail}, status_code=status)

        async def get_seat(request: Request) -> Response:
            seat = self.seat(request.path_params["seat"])
            wait = request.query_params.get("wait")
            if wait is not None and wait.isdigit() and int(wait) == seat["version"]:
                assert self.changed is not None
                with contextlib.suppress(TimeoutError):
                    async with self.changed:
                        await asyncio.wait_for(
                            self.changed.wait_for(lambda: seat["version"] != int(wait)), timeout=25
                        )
            return JSONResponse(self.public(seat))

        async def ready(request: Request) -> Response:
            seat = self.seat(request.path_params["seat"])
            body = await request.json()
            if seat["state"] not in ("offline", "paused", "ready", "wrap_up"):
                return error(409, "busy", f"the seat is {seat['state']}")
            if seat["state"] == "wrap_up" and not seat["call"]["recorded"]:
                return error(409, "outcome_missing", "the call's outcome is not recorded yet")
            seat.update(operator=body.get("operator"), state="ready", call=None)
            await self.bump(seat)
            await self.dial_next(seat)
            return JSONResponse(self.public(seat))

        async def pause(request: Request) -> Response:
            seat = self.seat(request.path_params["seat"])
            if seat["call"] is None:
                seat["state"] = "paused"
                await self.bump(seat)
            return JSONResponse(self.public(seat))

        async def signout(request: Request) -> Response:
            seat = self.seat(request.path_params["seat"])
            if seat["call"] is None:
                seat.update(state="offline", operator=None)
                await self.bump(seat)
            return JSONResponse(self.public(seat))

        async def classification(request: Request) -> Response:
            call = self.calls.get(request.path_params["call"])
            if call is None:
                return error(404, "no_call", "no such call")
            body = await request.json()
            if body.get("kind") not in ("person", "voicemail") or call["state"] not in ("connected", "ended"):
                return error(409, "bad_state", "classify an answered call")
            call["classification"] = {"kind": body["kind"], "message_left": body.get("message_left")}
            seat = self.seat(call["seat"])
            if call["state"] == "connected":  # the simulated resident hangs up when classified
                call.update(state="ended", ended_at=self.clock().isoformat(), result="answered")
                seat["state"] = "wrap_up"
                data = {
                    "case": call["case"],
                    "number": call["number"],
                    "call": call["call"],
                    "caller_id": call["caller_id"],
                    "ended_at": call["ended_at"],
                    "ring_s": call["ring_s"],
                    "result": "voicemail" if body["kind"] == "voicemail" else "answered",
                }
                if body["kind"] == "voicemail":
                    data["message_left"] = bool(body.get("message_left"))
                with self.lock:
                    self.client.record(
                        "call.dialed",
                        data,
                        at=datetime.fromisoformat(call["started"]),
                        event_id=str(uuid.uuid4()),
                    )
                call["recorded"] = True
            await self.bump(seat)
            return JSONResponse({k: v for k, v in call.items() if k != "seat"})

        async def outcome(request: Request) -> Response:
            call = self.calls.get(request.path_params["call"])
            if call is None:
                return error(404, "no_call", "no such call")
            seat = self.seat(call["seat"])
            call["outcome"] = (await request.json()).get("event")
            seat.update(state="ready", call=None)
            await self.bump(seat)
            await self.dial_next(seat)
            return JSONResponse(self.public(seat))

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            self.changed = asyncio.Condition()
            self._courier.start()
            yield
            self._stop.set()
            self._courier.join(5)
            self.client.close()

        return Starlette(
            routes=[
                Route("/v1/seats/{seat}", get_seat),
                Route("/v1/seats/{seat}/ready", ready, methods=["POST"]),
                Route("/v1/seats/{seat}/pause", pause, methods=["POST"]),
                Route("/v1/seats/{seat}/signout", signout, methods=["POST"]),
                Route("/v1/calls/{call}/classification", classification, methods=["POST"]),
                Route("/v1/calls/{call}/outcome", outcome, methods=["POST"]),
            ],
            lifespan=lifespan,
        )
