"""ASGI middleware: writes the access log, holds the sessions and guards the sign-in.

- Every request of a signed-in auditor is recorded (`access.request`: who, method,
  path, query, status) *before* its response starts: if the access log cannot be
  written the auditor gets 503 and no data. That includes 404s, refusals and odd
  paths; only a plain static asset served as asked (`/-/static/...`, no
  percent-encoding, no `..`, answered 200/304) goes unrecorded.
- Every sign-in attempt (`POST /-/login`) is recorded as `access.login` with
  `success` (and a `reason` when it was refused before the password was checked),
  and every sign-out as `access.logout`.
- Sessions are server-side (`sessions.py`): the signed cookie carries a session id
  and an expiry (Datasette's own `"e"` field); sign-out, removing the auditor or
  changing their roles takes effect on the next request. The actor Datasette sees
  is rebuilt on each request from the auditors file as it is now.
- Anonymous visitors get 403 for everything but the sign-in page and static assets.
  Datasette's default-deny configuration already refuses them every database, table,
  row and query; a few instance pages (e.g. /-/schema, /-/jump) answer anonymously with
  empty lists, and this closes them too rather than reason about each one.
- Request bodies are limited to `MAX_BODY` bytes before they are read (413).
- The sign-in form is parsed once, here, exactly as datasette-auth-passwords parses it;
  a form that repeats a field, or names nobody, is refused (400) and recorded.
- After `MAX_FAILURES` failed sign-ins for one name, or `MAX_ADDRESS_FAILURES` from one
  client address, within `LOCKOUT_SECONDS` (`ledger.access`: the console counts the same way),
  further attempts are refused (429) until the window passes. Only wrong passwords count
  (not CSRF or malformed refusals); the counts are rebuilt from the access log at start-up,
  so a restart does not reset them.
- Works around a Datasette 1.0a41 bug: a table's CSV export fails ("No item with
  that key") on tables with BLOB columns (the hashes) unless `_extra=primary_keys`
  is asked for, so the middleware asks for it on CSV requests.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from datasette.utils import baseconv
from itsdangerous import BadSignature

from ledger.access import LOCKOUT_SECONDS, Failures

from .auditors import Auditor, plugin_config

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

STATIC_PREFIXES = ("/-/static/", "/-/static-plugins/", "/favicon.ico")
ANONYMOUS_PATHS = ("/-/login", "/-/logout")
MAX_BODY = 64 * 1024  # the sign-in form is a few hundred bytes; nothing here takes more
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _terminal(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _cookie_value(header: bytes, name: bytes) -> bytes | None:
    first = header.split(b";", 1)[0]
    key, _, value = first.partition(b"=")
    return value if key.strip() == name else None


def _request_cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == name:
                    return str(v)
    return None


def _with_actor_cookie(scope: Scope, cookie: str | None) -> Scope:
    """The scope with its `ds_actor` cookie replaced (or removed when None)."""
    headers = []
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            parts = [
                p.strip()
                for p in value.decode("latin-1").split(";")
                if p.strip() and p.strip().partition("=")[0] != "ds_actor"
            ]
            if parts:
                headers.append((key, "; ".join(parts).encode("latin-1")))
        else:
            headers.append((key, value))
    if cookie is not None:
        headers.append((b"cookie", f"ds_actor={cookie}".encode("latin-1")))
    return {**scope, "headers": headers}


def _is_plain_static(scope: Scope) -> bool:
    path = scope.get("path", "")
    raw = scope.get("raw_path") or path.encode("latin-1", "replace")
    return path.startswith(STATIC_PREFIXES) and b"%" not in raw and ".." not in path


class _TooLarge(Exception):
    pass


async def _read_body(scope: Scope, receive: Any) -> bytes:
    """The whole body, refused before reading when it is declared or turns out too large."""
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                if int(value) > MAX_BODY:
                    raise _TooLarge
            except ValueError:
                raise _TooLarge from None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def wrap(app: ASGIApp, datasette: Any) -> ASGIApp:
    site = getattr(datasette, "kansa_site", None)
    if site is None:
        return app
    # One state per Datasette, not per wrapped app: its test client wraps anew per request.
    failures: Failures = datasette.__dict__.get("kansa_failures") or datasette.__dict__.setdefault(
        "kansa_failures",
        Failures.from_log(site.log.recent_logins(datetime.fromtimestamp(time.time() - LOCKOUT_SECONDS, UTC))),
    )

    def current_auditors() -> dict[str, Auditor]:
        auditors: dict[str, Auditor]
        auditors, changed = site.auditors.current()
        if changed:
            datasette.config.setdefault("plugins", {})["datasette-auth-passwords"] = plugin_config(auditors)
        return auditors

    def session_actor(scope: Scope) -> tuple[dict[str, Any] | None, str | None, str | None]:
        """(actor, session id, re-signed cookie) for a cookie whose session is open and whose
        auditor still exists; (None, None, None) otherwise."""
        cookie = _request_cookie(scope, "ds_actor")
        if not cookie:
            return None, None, None
        try:
            decoded = datasette.unsign(cookie, "actor")
            sid, expires = str(decoded["s"]), str(decoded["e"])
            name = str(decoded["a"]["id"])
        except (BadSignature, KeyError, TypeError, ValueError):
            return None, None, None
        now = int(time.time())
        if baseconv.base62.decode(expires) <= now or site.sessions.person(sid, now=now) != name:
            return None, None, None
        auditor = current_auditors().get(name)
        if auditor is None:
            site.sessions.end(sid, now=now, reason="auditor removed")
            return None, None, None
        actor = {"id": auditor.name, "roles": list(auditor.roles)}
        return actor, sid, datasette.sign({"a": actor, "e": expires, "s": sid}, "actor")

    async def middleware(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        path = scope.get("path", "")
        method = scope["method"]
        terminal = _terminal(scope)
        current_auditors()
        actor, sid, cookie = session_actor(scope)
        scope = _with_actor_cookie(scope, cookie)
        login = path == "/-/login" and method == "POST"
        person = str(actor["id"]) if actor else ""

        inner_receive: Any = receive
        form: list[tuple[str, str]] = []
        if method in BODY_METHODS:
            try:
                body = await _read_body(scope, receive)
            except _TooLarge:
                text = f"本文が大きすぎます。 The request body is over {MAX_BODY} bytes."
                if actor is not None:
                    await _record_request(site, scope, person, 413)
                elif login:
                    await _record_login(site, "-", terminal, False, "body too large")
                return await _plain(send, 413, text)
            inner_receive = _replay(body, receive)
            if login:
                try:
                    form = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
                except (UnicodeDecodeError, ValueError):
                    form = [("", "")]

        if login:
            names = [value for key, value in form if key == "username"]
            keys = [key for key, _ in form]
            name = names[0][:64] if names else ""
            if len(keys) != len(set(keys)):
                await _record_login(site, ",".join(names)[:64] or "-", terminal, False, "repeated fields")
                return await _plain(
                    send, 400, "同じ項目が繰り返されています。 A sign-in form must not repeat a field."
                )
            if not name:
                await _record_login(site, "-", terminal, False, "no name")
                return await _plain(send, 400, "名前を入力してください。 Enter a name.")
            if failures.locked(name, terminal, time.time()):
                await _record_login(site, name, terminal, False, "locked")
                return await _plain(
                    send,
                    429,
                    "ログイン失敗が続いたため、しばらくお待ちください。"
                    " Too many failed sign-ins; wait and retry.",
                )
        elif actor is None:
            if path in ANONYMOUS_PATHS or _is_plain_static(scope):
                return await app(scope, inner_receive, send)
            return await _sign_in_first(send, datasette.urls.path("/-/login"))
        if path == "/-/password-tool":  # use `kansa auditor add`; passwords never go through the web
            if actor is not None:
                await _record_request(site, scope, person, 404)
            return await _plain(send, 404, "Not found")

        failed = False

        async def logging_send(message: Message) -> None:
            nonlocal failed
            if failed:
                return
            if message["type"] == "http.response.start":
                try:
                    status = int(message["status"])
                    if login:
                        message = await _after_login(datasette, site, scope, message, name, failures)
                    elif not (_is_plain_static(scope) and status in (200, 304)):
                        await _record_request(site, scope, person, status)
                        if path == "/-/logout" and method == "POST" and status in (301, 302):
                            assert sid is not None
                            site.sessions.end(sid, now=int(time.time()), reason="sign-out")
                            await site.log.record(
                                "access.logout", person, {"person": person, "terminal": terminal}
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


def _replay(body: bytes, receive: Any) -> Any:
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        message: Message = await receive()
        return message

    return replay


async def _record_request(site: Any, scope: Scope, person: str, status: int) -> None:
    query = scope.get("query_string", b"").decode("latin-1")
    await site.log.record(
        "access.request",
        person,
        {
            "person": person,
            "terminal": _terminal(scope),
            "method": scope["method"],
            "path": scope.get("path", ""),
            **({"query": query} if query else {}),
            "status": status,
        },
    )


async def _record_login(site: Any, person: str, terminal: str, success: bool, reason: str | None) -> None:
    await site.log.record(
        "access.login",
        person,
        {
            "person": person,
            "terminal": terminal,
            "success": success,
            **({"reason": reason} if reason else {}),
        },
    )


def _csv_with_primary_keys(scope: Scope) -> Scope:
    query = scope.get("query_string", b"")
    if not scope["path"].endswith(".csv") or b"_extra=primary_keys" in query:
        return scope
    return {**scope, "query_string": query + (b"&" if query else b"") + b"_extra=primary_keys"}


async def _after_login(
    datasette: Any, site: Any, scope: Scope, message: Message, name: str, failures: Failures
) -> Message:
    headers = list(message.get("headers", []))
    terminal = _terminal(scope)
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
            if isinstance(actor, dict):
                now = int(time.time())
                expires = now + site.session_seconds
                sid = site.sessions.start(str(actor.get("id")), terminal, now=now, expires=expires)
                cookie = datasette.sign({"a": actor, "e": baseconv.base62.encode(expires), "s": sid}, "actor")
                headers[i] = (
                    b"set-cookie",
                    (
                        f"ds_actor={cookie}; HttpOnly; Max-Age={site.session_seconds}; Path=/; SameSite=Lax"
                    ).encode(),
                )
    status = int(message["status"])
    success = isinstance(actor, dict) and status in (301, 302)
    person = str(actor.get("id")) if success and isinstance(actor, dict) else name
    reason = None
    if success:
        failures.clear(name)
    elif status == 403:  # refused before the password was checked (CSRF): not a guess
        reason = "csrf"
    else:
        failures.add(name, terminal, time.time())
    await _record_login(site, person, terminal, success, reason)
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
