"""The console's one door to the dialling loop: the seats API of `kansa dialer run`
(docs/dialer.md, "The seats API"). References only cross it, never personal data."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

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


class _Stale(Exception):
    """A kept-alive connection the server had closed before this request: try a fresh one."""


class _Connections:
    """HTTP/1.1 with keep-alive to the seats API, on asyncio streams: a request takes an idle
    connection or opens one, and gives it back after a complete answer.

    The seats API is one small JSON protocol on loopback, answered with a Content-Length. A
    general client's pool (httpx) looked at each of its connections, with a select() each,
    on every request: with 200 seats' long polls open, that was most of the console's time
    (benchmarks/console_bench.py)."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        parts = urlsplit(url)
        # A wrong address is told on each request (LoopError, as an unreachable loop), not at
        # the console's start: the desks work without the loop.
        self._problem = (
            None
            if parts.scheme == "http" and parts.hostname
            else f"the seats API is reached over http://host:port, not {url!r}"
        )
        self.host, self.port = parts.hostname or "", parts.port or 80
        self.base = parts.path.rstrip("/")
        self.timeout = timeout
        self._head = f"Host: {parts.netloc}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> tuple[int, bytes]:
        if self._problem:
            raise ConnectionError(self._problem)
        target = self.base + path + (f"?{urlencode(params)}" if params else "")
        head = f"{method} {target} HTTP/1.1\r\n{self._head}"
        payload = b""
        if body is not None:
            payload = json.dumps(body, ensure_ascii=False).encode()
            head += "Content-Type: application/json\r\n"
        if body is not None or method != "GET":
            head += f"Content-Length: {len(payload)}\r\n"
        message = (head + "\r\n").encode("latin-1") + payload
        async with asyncio.timeout(self.timeout):
            while self._idle:
                reader, writer = self._idle.pop()
                try:
                    return await self._exchange(reader, writer, message, reused=True)
                except _Stale:
                    continue
            reader, writer = await asyncio.open_connection(self.host, self.port)
            return await self._exchange(reader, writer, message, reused=False)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: bytes, *, reused: bool
    ) -> tuple[int, bytes]:
        done = False
        try:
            writer.write(message)
            try:
                status_line = await reader.readline()
            except ConnectionResetError:
                status_line = b""
            if not status_line:
                if reused:  # it was closed while idle: the server read nothing of this request
                    raise _Stale()
                raise ConnectionError("the seats API closed the connection")
            version, status, *_ = status_line.decode("latin-1").split(" ", 2)
            if not version.startswith("HTTP/1."):
                raise ConnectionError(f"not an HTTP answer: {status_line[:60]!r}")
            length, close = 0, version == "HTTP/1.0"
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n"):
                    break
                if not line:
                    raise ConnectionError("the seats API closed the connection mid-answer")
                name, _, value = line.decode("latin-1").partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection":
                    close = value.strip().lower() == "close"
            content = await reader.readexactly(length) if length else b""
            done = not close
            return int(status), content
        except (asyncio.IncompleteReadError, ValueError) as exc:
            raise ConnectionError(str(exc) or type(exc).__name__) from exc
        finally:
            if done:
                self._idle.append((reader, writer))
            else:  # an error, a cancelled wait, or the server's close: never reused
                writer.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _reader, writer in idle:
            writer.close()
        for _reader, writer in idle:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class LoopClient:
    def __init__(self, url: str, token: str = "", *, timeout: float = 30.0):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = _Connections(url, headers, timeout)

    async def close(self) -> None:
        await self._http.close()

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        started = time.perf_counter()
        try:
            status, content = await self._http.request(method, path, body, params)
        except (OSError, TimeoutError) as exc:
            raise LoopError(0, "unreachable", str(exc) or type(exc).__name__) from exc
        finally:
            spent = LOOP_SECONDS.get()
            if spent is not None and not params:
                spent[0] += time.perf_counter() - started
        if status >= 400:
            try:
                error = json.loads(content)
            except ValueError:
                error = {}
            if not isinstance(error, dict):
                error = {}
            raise LoopError(
                status, error.get("error", "error"), error.get("detail", content.decode(errors="replace"))
            )
        try:
            return json.loads(content)
        except ValueError as exc:
            raise LoopError(status, "bad_answer", f"not JSON: {content[:80]!r}") from exc

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

    async def waiting_callbacks(self) -> list[dict[str, Any]]:
        """The residents' callbacks queued on the center's lines, not yet put through:
        `{"case": str | None, "since": RFC 3339, "line": str | None}`, longest-waiting first."""
        body = await self._call("GET", "/v1/callbacks/waiting")
        return list(body["waiting"])
