"""POST /v1/keys: a manager's signed request makes the ledger's host append a key event with its
own key; anyone else, a bad signature or an unknown key is refused and nothing is appended.
Against a real `kansa ledger serve` process over loopback."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from conftest import event, register
from test_service import EXE, Server, free_port

from ledger import Ledger, Signer
from ledger.key_requests import sign_key_request
from ledger.wire import signed


@pytest.fixture
def staff() -> dict[str, Signer]:
    return {name: Signer.generate(name) for name in ("mgr01", "op02")}


@pytest.fixture
def server(tmp_path: Path, staff: dict[str, Signer]) -> Iterator[Server]:
    db = tmp_path / "ledger.db"
    subprocess.run(
        [EXE, "ledger", "init", str(db), "--origin", "t.example/keys", "--contract", "x"],
        check=True,
        capture_output=True,
    )
    from ledger import Submission

    at = datetime.now(UTC).isoformat()
    with Ledger.open(db, key_path=f"{db}.key") as led:
        led.append(
            [
                Submission(
                    event("staff.designated", at=at, actor="system", person="mgr01", role="manager", by="c")
                ),
                Submission(
                    event("staff.designated", at=at, actor="system", person="op02", role="operator", by="c")
                ),
                *(register(s) for s in staff.values()),
            ],
            now=datetime.now(UTC),
        )
    srv = Server(db, free_port())
    srv.start()
    yield srv
    srv.stop()


def registration(signer: Signer) -> dict[str, str]:
    v = signer.verifier
    return {"key": v.key_ref, "public_key": base64.b64encode(v.public_key).decode(), "holder": v.name}


def size(server: Server) -> int:
    return int(httpx.get(f"{server.url}/healthz").json()["size"])


def test_a_managers_request_is_appended_signed_by_the_ledger(
    server: Server, staff: dict[str, Signer]
) -> None:
    new = Signer.generate("op03")
    body = sign_key_request(staff["mgr01"], "key.registered", registration(new), now=datetime.now(UTC))
    answer = httpx.post(f"{server.url}/v1/keys", json=body)
    assert answer.status_code == 201, answer.text
    index = answer.json()["index"]
    again = httpx.post(f"{server.url}/v1/keys", json=body)  # the same request: the same entry
    assert again.status_code == 200 and again.json()["index"] == index
    with Ledger.open(server.db, readonly=True) as led:
        import json

        leaf = json.loads(led.leaf(index))
        assert leaf["sig"]["key"] == led.key_ref  # the ledger's own key signed the key event
    assert leaf["event"]["actor"] == "mgr01" and leaf["event"]["type"] == "key.registered"
    assert leaf["event"]["data"]["requested_with"] == staff["mgr01"].verifier.key_ref
    # the new key now signs events the ledger accepts
    ev = event(at=datetime.now(UTC).isoformat(), actor="op03", person="op03")
    assert httpx.post(f"{server.url}/v1/events", json=signed(ev, new)).status_code == 201
    # and a revocation asked the same way stops it
    revoke = sign_key_request(
        staff["mgr01"], "key.revoked", {"key": new.verifier.key_ref, "reason": "left"}, now=datetime.now(UTC)
    )
    assert httpx.post(f"{server.url}/v1/keys", json=revoke).status_code == 201
    ev2 = event(at=datetime.now(UTC).isoformat(), actor="op03", person="op03")
    assert httpx.post(f"{server.url}/v1/events", json=signed(ev2, new)).status_code == 401


def test_refusals_append_nothing(server: Server, staff: dict[str, Signer]) -> None:
    before = size(server)
    new = Signer.generate("op04")
    now = datetime.now(UTC)
    # an operator may not manage keys
    by_operator = sign_key_request(staff["op02"], "key.registered", registration(new), now=now)
    answer = httpx.post(f"{server.url}/v1/keys", json=by_operator)
    assert answer.status_code == 403 and answer.json()["field"] == "request.actor"
    # a tampered request does not verify
    tampered = sign_key_request(staff["mgr01"], "key.registered", registration(new), now=now)
    tampered["request"]["data"]["holder"] = "mgr01"
    assert httpx.post(f"{server.url}/v1/keys", json=tampered).status_code == 401
    # a key the ledger does not know
    stranger = Signer.generate("mgr01")
    unknown = sign_key_request(stranger, "key.registered", registration(new), now=now)
    assert httpx.post(f"{server.url}/v1/keys", json=unknown).status_code == 401
    # only key events can be asked for this way
    other = sign_key_request(staff["mgr01"], "case.stop", {"case": "C1", "by": "x", "reason": "y"}, now=now)
    assert httpx.post(f"{server.url}/v1/keys", json=other).status_code == 422
    assert httpx.post(f"{server.url}/v1/keys", content=b"not json").status_code == 422
    assert size(server) == before
