"""The carrier and reassigned-number lookup before each SMS: a small HTTP JSON interface.

Japan has no public reassigned-number database; carriers and aggregators sell
lookups. A vendor's service is wrapped to answer this one request
(docs/dialer.md, "The lookup interface"):

    POST /v1/lookup   {"number": "+819011112222"}
    200 {"carrier": "docomo", "mobile": true, "reassigned": "no"}

`carrier` is one of docomo, au, softbank, rakuten, other, unknown;
`reassigned` one of no, possibly, unknown (possibly: the number changed hands
since the city's data was taken). `HttpLookup` is the client, `SimulatedLookup`
the demo's seeded stand-in, and `LookupServer` serves any `Lookup` over HTTP
(the tests run the simulated one behind it, over real HTTP).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import httpx

CARRIERS = ("docomo", "au", "softbank", "rakuten", "other", "unknown")
REASSIGNED = ("no", "possibly", "unknown")


class LookupFailed(Exception):
    """The lookup service failed or answered something we do not understand."""


@dataclass(frozen=True)
class LookupAnswer:
    carrier: str
    mobile: bool
    reassigned: str

    def __post_init__(self) -> None:
        if self.carrier not in CARRIERS or self.reassigned not in REASSIGNED:
            raise LookupFailed(f"lookup answer out of vocabulary: {self.carrier!r}, {self.reassigned!r}")

    def block_reason(self) -> str | None:
        """Why no SMS may go to this number (sms.blocked's reason), or None.

        A possibly reassigned number is never sent to; a number whose owner is
        unknown neither (the contract's reassigned-number stop cannot be shown).
        """
        if not self.mobile:
            return "not_mobile"
        if self.reassigned != "no":
            return "possibly_reassigned"
        return None


class Lookup(Protocol):
    def lookup(self, phone: str) -> LookupAnswer: ...


@dataclass
class HttpLookup:
    """The client of a vendor's lookup behind the interface above; the token comes from a file or env."""

    url: str
    token: str = ""
    timeout: float = 10.0

    def lookup(self, phone: str) -> LookupAnswer:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = httpx.post(
                self.url.rstrip("/") + "/v1/lookup",
                json={"number": e164(phone)},
                headers=headers,
                timeout=self.timeout,
            )
            response.raise_for_status()
            body = response.json()
            return LookupAnswer(str(body["carrier"]), bool(body["mobile"]), str(body["reassigned"]))
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise LookupFailed(f"lookup failed: {exc}") from exc


def e164(phone: str) -> str:
    digits = "".join(ch for ch in phone if ch.isdigit())
    if phone.strip().startswith("+"):
        return "+" + digits
    return "+81" + digits[1:] if digits.startswith("0") else "+" + digits


@dataclass
class SimulatedLookup:
    """Deterministic per number (a hash, not a random stream): carriers in Japan's shares,
    3 % possibly reassigned, 070/080/090 mobile. `reassigned` and `landline` force answers."""

    seed: int = 1
    reassigned: frozenset[str] = frozenset()

    def lookup(self, phone: str) -> LookupAnswer:
        number = e164(phone)
        roll = int.from_bytes(hashlib.sha256(f"{self.seed}:{number}".encode()).digest()[:4], "big") / 2**32
        mobile = number[3:5] in ("70", "80", "90")
        if not mobile:
            return LookupAnswer("unknown", False, "unknown")
        carrier = (
            "docomo" if roll < 0.40 else "au" if roll < 0.68 else "softbank" if roll < 0.93 else "rakuten"
        )
        possibly = number in {e164(p) for p in self.reassigned} or (roll * 1000) % 1 < 0.03
        return LookupAnswer(carrier, True, "possibly" if possibly else "no")


class LookupServer:
    """Serves a `Lookup` on loopback with the interface above (the simulated one, for the demo and tests)."""

    def __init__(self, lookup: Lookup, host: str = "127.0.0.1", port: int = 0, token: str = "") -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                if token and self.headers.get("Authorization") != f"Bearer {token}":
                    return self._answer(401, {"error": "unauthorized"})
                if self.path != "/v1/lookup":
                    return self._answer(404, {"error": "not_found"})
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                    answer = outer.lookup.lookup(str(body["number"]))
                except (ValueError, KeyError, TypeError):
                    return self._answer(400, {"error": "bad_request"})
                outer.requests += 1
                return self._answer(
                    200, {"carrier": answer.carrier, "mobile": answer.mobile, "reassigned": answer.reassigned}
                )

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.lookup = lookup
        self.requests = 0
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> LookupServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
