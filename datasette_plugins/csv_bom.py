"""Datasette's CSV exports with a UTF-8 byte order mark, as Japanese Excel needs to read
UTF-8 (without it, Excel opens the file as Shift_JIS and the Japanese is garbled), like the
report's CSV files. An ASGI wrapper: the first body chunk of a text/csv answer gets the BOM,
and a Content-Length (when Datasette sends one) grows by its three bytes."""

from __future__ import annotations

from typing import Any

BOM = "\ufeff".encode()


def wrap(app: Any) -> Any:
    async def with_bom(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        state = {"csv": False, "first": True}

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                kind = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if kind.startswith(b"text/csv") or (kind.startswith(b"text/plain") and _csv_path(scope)):
                    state["csv"] = True
                    headers = [
                        (k, str(int(v) + len(BOM)).encode()) if k.lower() == b"content-length" else (k, v)
                        for k, v in headers
                    ]
                    message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and state["csv"] and state["first"]:
                state["first"] = False
                body = message.get("body", b"")
                if not body.startswith(BOM):
                    message = {**message, "body": BOM + body}
            await send(message)

        await app(scope, receive, sending)

    return with_bom


def _csv_path(scope: dict[str, Any]) -> bool:
    """Datasette answers `.csv` with text/plain when asked to show it in the browser (_dl absent)."""
    return str(scope.get("path", "")).endswith(".csv")
