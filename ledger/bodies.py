"""Request bodies read with a limit, refused before they are read whole: a declared
Content-Length over the limit is refused at once, and a streamed body as soon as it passes it
(the service's MAX_BODY_BYTES, the witness's 64 KiB)."""

from __future__ import annotations

from starlette.requests import Request


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"a request body holds at most {limit:,} bytes")
        self.limit = limit


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, or BodyTooLarge once it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length")
    whole = declared is not None and declared.isascii() and declared.isdigit()
    if declared is not None and (not whole or int(declared) > limit):
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
