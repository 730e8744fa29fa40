"""The auditors' site under hostile input and stale trust (issue 11, items 7, 8, 10, 11),
against a real `kansa serve` process over real HTTP.

Each test talks from its own loopback address (127.0.0.x), so the per-address sign-in
lock-out of one test never touches another.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from auditor_site import PASSWORD, access_entries, build_site
from processes import Served

from datasette_plugins.auditors import add_auditor, default_auditors_path, remove_auditor
from datasette_plugins.middleware import MAX_BODY
from ledger.access import MAX_ADDRESS_FAILURES, MAX_FAILURES


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_site(tmp_path_factory.mktemp("hardening"))


class Server(Served):
    """`kansa serve` on a copy of the site; restartable (stop, then start again on the same port)."""

    def __init__(self, db: Path) -> None:
        super().__init__(
            ["serve", str(db)], Path(f"{db}.serve.log"), probe="/-/login", start_seconds=60, stop_seconds=30
        )
        self.db = db

    def client(self, address: str) -> httpx.Client:
        """A client connecting from `address` (any 127.x.y.z works on loopback)."""
        transport = httpx.HTTPTransport(local_address=address)
        return httpx.Client(base_url=self.url, transport=transport, timeout=30)

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@pytest.fixture
def server(built: dict[str, Any], tmp_path: Path) -> Iterator[Server]:
    shutil.copytree(built["db"].parent, tmp_path / "site")
    s = Server(tmp_path / "site" / "ledger.db")
    s.start()
    yield s
    s.stop()


def sign_in(web: httpx.Client, name: str, password: str, **headers: str) -> httpx.Response:
    return web.post(
        "/-/login",
        content=f"username={name}&password={password.replace(' ', '+')}",
        headers={"content-type": "application/x-www-form-urlencoded", **headers},
    )


# -- item 7: the lock-out ------------------------------------------------------------------------


def test_a_decoy_name_cannot_guess_past_a_lock_out(server: Server) -> None:
    with server.client("127.0.0.11") as web:
        for _ in range(MAX_FAILURES):
            assert sign_in(web, "alice", "wrong password!!").status_code == 200
        assert sign_in(web, "alice", PASSWORD).status_code == 429
        # datasette-auth-passwords reads the last username; the count used to read the first.
        response = web.post(
            "/-/login",
            content=f"username=decoy&username=alice&password={PASSWORD.replace(' ', '+')}",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 400 and "ds_actor" not in response.cookies
        response = web.post(
            "/-/login",
            content=f"username=alice&password=x&password={PASSWORD.replace(' ', '+')}",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 400 and "ds_actor" not in response.cookies
    logins = [e["data"] for e in access_entries(server.db) if e["type"] == "access.login"]
    assert logins[-2] == {
        "person": "decoy,alice",
        "terminal": "127.0.0.11",
        "success": False,
        "reason": "repeated fields",
    }


def test_csrf_refusals_do_not_lock_anyone_out(server: Server) -> None:
    with server.client("127.0.0.12") as web:
        for _ in range(MAX_FAILURES + 2):
            response = sign_in(web, "alice", "wrong password!!", **{"sec-fetch-site": "cross-site"})
            assert response.status_code == 403
        assert sign_in(web, "alice", PASSWORD).status_code == 302
    logins = [e["data"] for e in access_entries(server.db) if e["type"] == "access.login"]
    assert [d.get("reason") for d in logins[-(MAX_FAILURES + 3) :]] == ["csrf"] * (MAX_FAILURES + 2) + [None]


def test_one_address_cannot_guess_many_names(server: Server) -> None:
    with server.client("127.0.0.13") as web:
        for i in range(MAX_ADDRESS_FAILURES):
            assert sign_in(web, f"name{i}", "wrong password!!").status_code == 200
        assert sign_in(web, "alice", PASSWORD).status_code == 429
    with server.client("127.0.0.14") as other:  # another office is not locked out
        assert sign_in(other, "alice", PASSWORD).status_code == 302


def test_lock_outs_survive_a_restart(server: Server) -> None:
    with server.client("127.0.0.15") as web:
        for _ in range(MAX_FAILURES):
            assert sign_in(web, "sam", "wrong password!!").status_code == 200
    server.stop()
    server.start()
    with server.client("127.0.0.16") as web:
        assert sign_in(web, "sam", PASSWORD).status_code == 429


# -- item 8: sessions ----------------------------------------------------------------------------


def test_sign_out_ends_the_session_for_every_copy_of_the_cookie(server: Server) -> None:
    with server.client("127.0.0.21") as web:
        assert sign_in(web, "alice", PASSWORD).status_code == 302
        cookie = web.cookies["ds_actor"]
        assert web.get("/ledger/entries.json").status_code == 200
        assert web.post("/-/logout").status_code == 302
    with server.client("127.0.0.21") as thief:
        thief.cookies.set("ds_actor", cookie)
        response = thief.get("/ledger/entries.json")
        assert response.status_code == 403 and "call.dialed" not in response.text


def test_removing_an_auditor_or_a_role_applies_at_once(server: Server) -> None:
    auditors = default_auditors_path(server.db)
    sql = "/ledger/-/query.json?sql=select+count(*)+from+entries"
    with server.client("127.0.0.22") as web:
        assert sign_in(web, "sam", PASSWORD).status_code == 302
        assert web.get(sql).status_code == 200
        add_auditor(auditors, "sam", PASSWORD, roles=("auditor",))  # the sql role taken away
        time.sleep(1)
        assert web.get(sql).status_code == 403
        assert web.get("/ledger/entries.json").status_code == 200
        remove_auditor(auditors, "sam")
        time.sleep(1)
        assert web.get("/ledger/entries.json").status_code == 403
        add_auditor(auditors, "sam", PASSWORD, roles=("auditor", "sql"))  # back, but the old session is over
        assert web.get("/ledger/entries.json").status_code == 403


# -- item 10: bodies ------------------------------------------------------------------------------


def test_a_huge_anonymous_sign_in_is_refused_before_it_is_read(server: Server) -> None:
    before = server.rss_kib()
    with server.client("127.0.0.31") as web:
        declared = web.post(
            "/-/login",
            content=b"username=alice&password=" + b"x" * (MAX_BODY + 1),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert declared.status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, 100 MB if it were all read
            yield b"username=alice&password="
            for _ in range(100 * 16):
                yield b"x" * 65536

        try:
            streamed = web.post(
                "/-/login", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}
            )
            assert streamed.status_code == 413
        except httpx.TransportError:
            pass  # the server answered 413 and closed before all of it was sent
    assert server.rss_kib() - before < 30_000


# -- item 11: access-log gaps ---------------------------------------------------------------------


def test_every_request_of_an_auditor_is_logged(server: Server) -> None:
    with server.client("127.0.0.41") as web:
        assert sign_in(web, "alice", PASSWORD).status_code == 302
        before = len(access_entries(server.db))
        asked = [
            "/no/such/page",
            "/-/static/..%2F..%2Fledger.db",
            "/-/static/app.css%2F..%2F..",
            "/ledger/nope",
        ]
        statuses = [web.get(path).status_code for path in asked]
        web.get("/-/static/app.css")  # a plain asset, served as asked: not recorded
    new = [e["data"] for e in access_entries(server.db)[before:] if e["type"] == "access.request"]
    assert [(d["path"], d["status"]) for d in new] == [
        (path, status)
        for path, status in zip(
            ["/no/such/page", "/-/static/../../ledger.db", "/-/static/app.css/../..", "/ledger/nope"],
            statuses,
            strict=True,
        )
    ]
    assert 404 in statuses


@pytest.mark.parametrize("form", ["username=&password=x", "password=x", ""])
def test_a_sign_in_without_a_name_is_refused_and_logged(server: Server, form: str) -> None:
    with server.client("127.0.0.42") as web:
        response = web.post(
            "/-/login", content=form, headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 400
    last = access_entries(server.db)[-1]
    assert last["type"] == "access.login"
    assert last["data"] == {"person": "-", "terminal": "127.0.0.42", "success": False, "reason": "no name"}


# -- item 9: the status page says no more than was checked -------------------------------------------


def test_history_rewritten_while_stopped_is_never_shown_as_verified(
    server: Server, built: dict[str, Any]
) -> None:
    with server.client("127.0.0.51") as web:
        assert sign_in(web, "alice", PASSWORD).status_code == 302
        deadline = time.time() + 60
        while web.get("/-/kansa/status.json").json()["verification"]["ok"] is not True:
            assert time.time() < deadline
            time.sleep(0.2)
    server.stop()
    # An entry well before the last checkpoint the access log recorded as verified is rewritten.
    conn = sqlite3.connect(server.db)
    (target,) = conn.execute("SELECT min(idx) FROM entries WHERE type = 'call.dialed'").fetchone()
    assert target < built["late_index"] - 10
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute(
        "UPDATE entries SET leaf = replace(leaf, '\"ring_s\":', '\"ring_s\":1') WHERE idx = ?", (target,)
    )
    conn.commit()
    conn.close()
    server.start()
    with server.client("127.0.0.51") as web:
        assert sign_in(web, "alice", PASSWORD).status_code == 302
        deadline = time.time() + 60
        while True:
            page = web.get("/-/kansa/status").text
            status = web.get("/-/kansa/status.json").json()["verification"]
            assert 'id="verify-ok"' not in page and status["ok"] is not True
            if status["ok"] is False:
                break
            assert time.time() < deadline
            time.sleep(0.1)
    assert 'id="verify-failed"' in page and f"index {target}" in page
    assert status["bad_index"] == target and status["full"]["ok"] is False
    records = [e["data"] for e in access_entries(server.db) if e["type"] == "ledger.verified"]
    assert any(r["full"] and not r["ok"] for r in records)
