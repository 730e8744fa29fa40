"""Many ledgers behind one server, routed by origin: a contractor runs one ledger per contract.

`kansa ledger serve DIR` opens every `*.db` ledger in DIR (each with its key
file `<db>.key` beside it) and serves each one's whole API (events, proofs,
checkpoints, C2SP tiles) under `/<origin>/`: the origin is the log's
schema-less URL prefix, as C2SP tlog-tiles recommends, so a ledger whose
origin is `city.example/kansa/nhi-2026` is at `https://host/city.example/kansa/nhi-2026/`.
Each ledger keeps its own single writer thread and group commit; `GET /`
lists the origins.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from .commands import default_key_path
from .key_requests import KeyPolicy
from .policy import Policy
from .service import Clock, ServiceConfig, create_app
from .store import Ledger, LedgerError, check_writable


def open_directory(directory: Path | str) -> list[Ledger]:
    """Every ledger in `directory`, opened with its key; LedgerError if one lacks it or origins clash."""
    directory = Path(directory)
    paths = sorted(directory.glob("*.db"))
    if not paths:
        raise LedgerError(f"no ledger (*.db) in {directory}")
    ledgers: list[Ledger] = []
    try:
        for path in paths:
            ledgers.append(Ledger.open(path, key_path=default_key_path(path)))
        origins = [led.origin for led in ledgers]
        clash = sorted({o for o in origins if origins.count(o) > 1})
        if clash:
            raise LedgerError(f"two ledgers in {directory} have the origin {clash[0]!r}")
    except BaseException:
        for led in ledgers:
            led.close()
        raise
    return ledgers


def serve_app(
    path: Path | str,
    *,
    key_path: Path | str | None = None,
    clock: Clock,
    config: ServiceConfig | None = None,
    key_policy: KeyPolicy | None = None,
    policy: Policy | None = None,
) -> Starlette:
    """What `kansa ledger serve PATH` runs.

    A directory: every *.db ledger in it (its key beside each) under /<origin>/, each held to
    `policy`. A file: that one ledger, signing with `key_path` (default PATH.key); a file that
    cannot be written is refused here (LedgerError) rather than answering every append with an error.
    """
    if Path(path).is_dir():
        ledgers = open_directory(path)
        policies = {led.origin: policy for led in ledgers} if policy is not None else None
        return create_hosting_app(
            ledgers, clock=clock, config=config, key_policy=key_policy, policies=policies
        )
    check_writable(path)
    ledger = Ledger.open(path, key_path=key_path if key_path is not None else default_key_path(path))
    return create_app(ledger, clock=clock, config=config, key_policy=key_policy, policy=policy)


def create_hosting_app(
    ledgers: list[Ledger],
    *,
    clock: Clock,
    config: ServiceConfig | None = None,
    key_policy: KeyPolicy | None = None,
    policies: dict[str, Policy] | None = None,
) -> Starlette:
    """One ASGI app serving each ledger's API under /<origin>/ (`policies`: by origin, optional)."""
    policies = policies or {}
    apps = {
        led.origin: create_app(
            led, clock=clock, config=config, key_policy=key_policy, policy=policies.get(led.origin)
        )
        for led in ledgers
    }

    async def index(request: Request) -> Response:
        return JSONResponse({"ledgers": [{"origin": o, "path": f"/{o}/"} for o in sorted(apps)]})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Mounted apps' lifespans are not run by Starlette: start and stop each writer here.
        async with contextlib.AsyncExitStack() as stack:
            for sub in apps.values():
                await stack.enter_async_context(sub.router.lifespan_context(sub))
            yield

    routes: list[Route | Mount] = [Route("/", index)]
    # Longest origins first, so that one origin that is a path prefix of another cannot shadow it.
    routes += [Mount(f"/{origin}", app=apps[origin]) for origin in sorted(apps, key=len, reverse=True)]
    return Starlette(routes=routes, lifespan=lifespan)
