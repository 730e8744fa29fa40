"""ASGI middleware: writes the access log and gives sessions an expiry.

- Every request of a signed-in auditor is recorded (`access.request`: who, method,
  path, query, status) *before* its response starts: if the access log cannot be
  written the auditor gets 503 and no data. Static assets are not recorded.
- Every sign-in attempt (`POST /-/login`) is recorded as `access.login` with
  `success`, and every sign-out as `access.logout`.
- datasette-auth-passwords sets a session cookie without an expiry; the
  middleware re-signs it with Datasette's own `"e"` expiry field, which
  Datasette's cookie check enforces.
- Anonymous visitors get 403 for everything but the sign-in page and static assets.
  Datasette's default-deny configuration already refuses them every database, table,
  row and query; a few instance pages (e.g. /-/schema, /-/jump) answer anonymously with
  empty lists, and this closes them too rather than reason about each one.
- Works around a Datasette 1.0a41 bug: a table's CSV export fails ("No item with
  that key") on tables with BLOB columns (the hashes) unless `_extra=primary_keys`
  is asked for, so the middleware asks for it on CSV requests.
- After `MAX_FAILURES` failed sign-ins for one name within `LOCKOUT_SECONDS`,
  further attempts for that name are refused (429) until the window passes.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from datasette.plugins import pm
from datasette.utils import await_me_maybe, baseconv
from datasette.utils.asgi import Request

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

UNLOGGED_PREFIXES = ("/-/static/", "/-/static-plugins/", "/favicon.ico")
ANONYMOUS_PATHS = ("/-/login", "/-/logout")
MAX_FAILURES = 5
LOCKOUT_SECONDS = 15 * 60


async def actor_of(datasette: Any, scope: Scope, receive: Any) -> dict[str, Any] | None:
    """The actor Datasette will see for this request, by asking the same hooks it asks."""
    request = Request(scope, receive)
    for result in pm.hook.actor_from_request(datasette=datasette, request=request):
        try:
            actor = await await_me_maybe(result)
        except Exception:  # a rejected token: Datasette answers 401 itself
            actor = None
        if actor:
            return dict(actor)
    return None


def _terminal(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _cookie_value(header: bytes, name: bytes) -> bytes | None:
    first = header.split(b";", 1)[0]
    key, _, value = first.partition(b"=")
    return value if key.strip() == name else None


class Failures:
    def __init__(self) -> None:
        self._times: dict[str, deque[float]] = defaultdict(deque)

    def locked(self, name: str, now: float) -> bool:
        times = self._times[name]
        while times and now - times[0] > LOCKOUT_SECONDS:
            times.popleft()
        return len(times) >= MAX_FAILURES

    def add(self, name: str, now: float) -> None:
        self._times[name].append(now)

    def clear(self, name: str) -> None:
        self._times.pop(name, None)


def wrap(app: ASGIApp, datasette: Any) -> ASGIApp:
    # One count per Datasette, not per wrapped app: its test client wraps anew per request.
    failures: Failures = datasette.__dict__.setdefault("kansa_failures", Failures())

    async def middleware(scope: Scope, receive: Any, send: Any) -> None:
        site = getattr(datasette, "kansa_site", None)
        path = scope.get("path", "")
        if scope["type"] != "http" or site is None or path.startswith(UNLOGGED_PREFIXES):
            return await app(scope, receive, send)
        method = scope["method"]
        login = path == "/-/login" and method == "POST"
        actor = await actor_of(datasette, scope, receive)
        if actor is None and not login:
            if path in ANONYMOUS_PATHS:
                return await app(scope, receive, send)
            return await _sign_in_first(send, datasette.urls.path("/-/login"))
        if path == "/-/password-tool":  # use `kansa auditor add`; passwords never go through the web
            return await _plain(send, 404, "Not found")

        body = b""
        if login:
            # Read the form once, then replay it to Datasette.
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            body = b"".join(chunks)
            name = (parse_qs(body.decode("utf-8", "replace")).get("username") or [""])[0][:64]
            if failures.locked(name, time.time()):
                await site.log.record(
                    "access.login", name, {"person": name, "terminal": _terminal(scope), "success": False}
                )
                return await _plain(
                    send,
                    429,
                    "ログイン失敗が続いたため、しばらくお待ちください。"
                    " Too many failed sign-ins; wait and retry.",
                )
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                message: Message = await receive()
                return message

            inner_receive: Any = replay
        else:
            inner_receive = receive

        query = scope.get("query_string", b"").decode("latin-1")
        failed = False

        async def logging_send(message: Message) -> None:
            nonlocal failed
            if failed:
                return
            if message["type"] == "http.response.start":
                try:
                    if login:
                        message = await _after_login(datasette, site, scope, message, name, failures)
                    else:
                        assert actor is not None
                        person = str(actor.get("id"))
                        await site.log.record(
                            "access.request",
                            person,
                            {
                                "person": person,
                                "terminal": _terminal(scope),
                                "method": method,
                                "path": path,
                                **({"query": query} if query else {}),
                                "status": int(message["status"]),
                            },
                        )
                        if path == "/-/logout" and method == "POST" and message["status"] in (301, 302):
                            await site.log.record(
                                "access.logout", person, {"person": person, "terminal": _terminal(scope)}
                            )
                except Exception:
                    failed = True
                    await _plain(
                        send,
                        503,
                        "アクセス記録に書き込めないため表示できません。 The access log could not be written.",
                    )
                    return
            await send(message)

        await app(_csv_with_primary_keys(scope), inner_receive, logging_send)

    return middleware


def _csv_with_primary_keys(scope: Scope) -> Scope:
    query = scope.get("query_string", b"")
    if not scope["path"].endswith(".csv") or b"_extra=primary_keys" in query:
        return scope
    return {**scope, "query_string": query + (b"&" if query else b"") + b"_extra=primary_keys"}


async def _after_login(
    datasette: Any, site: Any, scope: Scope, message: Message, name: str, failures: Failures
) -> Message:
    headers = list(message.get("headers", []))
    actor = None
    for i, (key, value) in enumerate(headers):
        if key.lower() != b"set-cookie":
            continue
        signed = _cookie_value(value, b"ds_actor")
        if signed:
            try:
                actor = datasette.unsign(signed.decode(), "actor")["a"]
            except Exception:
                actor = None
            if actor is not None:
                expires = baseconv.base62.encode(int(time.time()) + site.session_seconds)
                cookie = datasette.sign({"a": actor, "e": expires}, "actor")
                headers[i] = (
                    b"set-cookie",
                    (
                        f"ds_actor={cookie}; HttpOnly; Max-Age={site.session_seconds}; Path=/; SameSite=Lax"
                    ).encode(),
                )
    success = actor is not None and message["status"] in (301, 302)
    person = str(actor.get("id")) if success and isinstance(actor, dict) else name
    if success:
        failures.clear(name)
    else:
        failures.add(name, time.time())
    await site.log.record(
        "access.login", person, {"person": person, "terminal": _terminal(scope), "success": success}
    )
    return {**message, "headers": headers}


async def _sign_in_first(send: Any, login: str) -> None:
    body = (
        '<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8"><title>403</title></head><body>'
        "<h1>サインインが必要です Sign-in required</h1>"
        f'<p><a href="{login}">サインイン Sign in</a></p></body></html>'
    )
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"text/html; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": body.encode("utf-8")})


async def _plain(send: Any, status: int, text: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": text.encode("utf-8")})
