"""The console's one door to the dialling loop: the seats API of `kansa dialer run`
(docs/dialer.md, "The seats API"). References only cross it, never personal data."""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx

# Seconds this request spent waiting for the loop (long polls excluded): the console reports
# it in Server-Timing beside its own time.
LOOP_SECONDS: ContextVar[list[float] | None] = ContextVar("loop_seconds", default=None)


class LoopError(Exception):
    """The loop refused or could not be reached; `status` is the HTTP status (0: unreachable)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Call:
    call: str
    direction: str
    case: str | None
    number: str | None
    state: str
    started: str | None
    ring_s: int
    result: str | None
    classification: Any
    raw: dict[str, Any]

    @classmethod
    def of(cls, body: dict[str, Any]) -> Call:
        return cls(
            body["call"],
            body.get("direction", "outbound"),
            body.get("case"),
            body.get("number"),
            body.get("state", ""),
            body.get("started"),
            int(body.get("ring_s") or 0),
            body.get("result"),
            body.get("classification"),
            body,
        )


@dataclass(frozen=True)
class Seat:
    seat: str
    operator: str | None
    state: str
    version: int
    call: Call | None

    @classmethod
    def of(cls, body: dict[str, Any]) -> Seat:
        call = body.get("call")
        return cls(
            body["seat"],
            body.get("operator"),
            body["state"],
            int(body.get("version", 0)),
            Call.of(call) if call else None,
        )


class LoopClient:
    def __init__(
        self, url: str, token: str = "", *, timeout: float = 30.0, http: httpx.AsyncClient | None = None
    ):
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = http or httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=1000),
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        started = time.perf_counter()
        try:
            response = await self._http.request(method, path, json=body, params=params)
        except httpx.TransportError as exc:
            raise LoopError(0, "unreachable", str(exc) or type(exc).__name__) from exc
        finally:
            spent = LOOP_SECONDS.get()
            if spent is not None and not params:
                spent[0] += time.perf_counter() - started
        if response.status_code >= 400:
            try:
                error = response.json()
            except ValueError:
                error = {}
            raise LoopError(
                response.status_code, error.get("error", "error"), error.get("detail", response.text)
            )
        return response.json()

    async def seats(self) -> list[Seat]:
        """Every seat of the loop, in one request (the console's sweep)."""
        body = await self._call("GET", "/v1/seats")
        return [Seat.of(seat) for seat in body["seats"]]

    async def seat(self, seat: str, *, wait_version: int | None = None) -> Seat:
        params = None if wait_version is None else {"wait": wait_version}
        return Seat.of(await self._call("GET", f"/v1/seats/{seat}", params=params))

    async def ready(self, seat: str, operator: str) -> Seat:
        return Seat.of(await self._call("POST", f"/v1/seats/{seat}/ready", {"operator": operator}))

    async def pause(self, seat: str) -> Seat:
        return Seat.of(await self._call("POST", f"/v1/seats/{seat}/pause", {}))

    async def signout(self, seat: str) -> Seat:
        return Seat.of(await self._call("POST", f"/v1/seats/{seat}/signout", {}))

    async def hangup(self, call: str) -> Call:
        return Call.of(await self._call("POST", f"/v1/calls/{call}/hangup", {}))

    async def classify(self, call: str, kind: str, message_left: bool | None = None) -> Call:
        body: dict[str, Any] = {"kind": kind}
        if kind == "voicemail":
            body["message_left"] = bool(message_left)
        return Call.of(await self._call("POST", f"/v1/calls/{call}/classification", body))

    async def outcome(self, call: str, event: str | None) -> Seat:
        return Seat.of(await self._call("POST", f"/v1/calls/{call}/outcome", {"event": event}))
