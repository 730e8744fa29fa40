"""The console's sign-in throttle over plain HTTP: after `MAX_FAILURES` failures for one person
id (or `MAX_ADDRESS_FAILURES` from one client address) within `LOCKOUT_SECONDS`, attempts are
refused with 429 in Japanese, before any key is opened, and only the first refusal of a
lock-out is written; the lock-out ends with the window (the console's clock), another person id
is unaffected, a success clears the count, and a restarted console rebuilds the counts from
this terminal's `access.login` events.

A real ledger service, the seats API and the console, each served by uvicorn over loopback, on
one simulated clock.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from console_world import PASSPHRASES, World, build_world, http_client
from processes import ServedApp
from test_console_forms import csrf_of, written_ids

from console.app import Console, create_app
from ledger.access import LOCKOUT_SECONDS, MAX_ADDRESS_FAILURES, MAX_FAILURES

LOCKED = "サインインの失敗が続いたため、しばらくサインインできません。"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(tmp_path_factory.mktemp("console-signin"))
    w.start(answer_after=0.05)
    yield w
    w.stop()


@pytest.fixture(autouse=True)
def _fresh_window(world: World) -> None:
    """Each test starts after the window of the ones before it."""
    world.clock.advance(seconds=LOCKOUT_SECONDS + 1)


def attempt(world: World, person: str, passphrase: str, role: str = "operator") -> httpx.Response:
    with http_client(world) as client:
        data = {
            "csrf": csrf_of(client.get("/signin").text),
            "person": person,
            "passphrase": passphrase,
            "role": role,
        }
        return client.post("/signin", data=data)


def failed_logins(world: World, person: str) -> list[str]:
    """Ids of this terminal's failed sign-ins of `person` (ledger and outboxes)."""
    assert world.console is not None
    return [
        e.id
        for e in world.console.board.events("access.login")
        if e.data["person"] == person and not e.data["success"]
    ]


def test_wrong_passphrases_lock_the_person_out_without_a_row_per_refusal(world: World) -> None:
    for _ in range(MAX_FAILURES):
        assert attempt(world, "op01", "wrong-pass").status_code == 401
    assert len(failed_logins(world, "op01")) >= MAX_FAILURES
    before = written_ids(world)

    first = attempt(world, "op01", "wrong-pass")
    assert first.status_code == 429
    assert LOCKED in first.text and "15分後にもう一度お試しください。" in first.text
    assert 0 < int(first.headers["retry-after"]) <= LOCKOUT_SECONDS
    logged = written_ids(world) - before
    assert len(logged) == 1  # the lock-out's first refusal, signed by the device like a failure
    [event] = [e for e in world.console.board.events("access.login") if e.id in logged]  # type: ignore[union-attr]
    assert event.actor == world.config.device and event.data["success"] is False

    after_first = written_ids(world)
    for _ in range(3):
        assert attempt(world, "op01", "wrong-pass").status_code == 429
    right = attempt(world, "op01", PASSPHRASES["op01"])  # refused too: nothing is tried
    assert right.status_code == 429 and LOCKED in right.text
    assert "kansa_console" not in right.cookies
    assert written_ids(world) == after_first

    assert attempt(world, "mgr01", PASSPHRASES["mgr01"], "manager").status_code == 303  # unaffected

    world.clock.advance(seconds=LOCKOUT_SECONDS - 60)
    assert attempt(world, "op01", PASSPHRASES["op01"]).status_code == 429  # still within the window
    world.clock.advance(seconds=61)
    assert attempt(world, "op01", PASSPHRASES["op01"]).status_code == 303


def test_a_success_clears_the_persons_count(world: World) -> None:
    for _ in range(MAX_FAILURES - 1):
        assert attempt(world, "op01", "wrong-pass").status_code == 401
    assert attempt(world, "op01", PASSPHRASES["op01"]).status_code == 303
    for _ in range(MAX_FAILURES - 1):
        assert attempt(world, "op01", "wrong-pass").status_code == 401
    assert attempt(world, "op01", PASSPHRASES["op01"]).status_code == 303


def test_refusals_after_the_passphrase_opened_the_key_do_not_lock_the_person_out(world: World) -> None:
    """Not designated in the role (or the designation not yet in the ledger: a person retries
    until it arrives): logged as failed sign-ins, but not guesses."""
    for _ in range(MAX_FAILURES + 2):
        answer = attempt(world, "op01", PASSPHRASES["op01"], "manager")
        assert answer.status_code == 401 and "管理者として指定されていません。" in answer.text
    assert attempt(world, "op01", PASSPHRASES["op01"]).status_code == 303


def test_a_restarted_console_keeps_the_lock_out(world: World) -> None:
    for _ in range(MAX_FAILURES):
        assert attempt(world, "city01", "wrong-pass", "city").status_code == 401
    assert world.console_server is not None
    world.console_server.stop()  # its lifespan stops the console (outboxes closed, delivered)
    fresh = Console(world.config, clock=world.clock)
    world.console = fresh
    world.console_server = ServedApp(lambda: create_app(fresh)).start()

    refused = attempt(world, "city01", PASSPHRASES["city01"], "city")
    assert refused.status_code == 429 and LOCKED in refused.text
    assert attempt(world, "op01", PASSPHRASES["op01"]).status_code == 303
    world.clock.advance(seconds=LOCKOUT_SECONDS + 1)
    assert attempt(world, "city01", PASSPHRASES["city01"], "city").status_code == 303


def test_many_person_ids_from_one_address_lock_the_address_out(world: World) -> None:
    """Guessing ids (op-x1, op-x2, ...) from one address: each id fails once, the address is
    locked after MAX_ADDRESS_FAILURES, for every id, right passphrase or not."""
    for i in range(MAX_ADDRESS_FAILURES):
        assert attempt(world, f"guess{i:02d}", "wrong-pass").status_code == 401
    before = written_ids(world)
    assert attempt(world, "guess99", "wrong-pass").status_code == 429
    assert len(written_ids(world) - before) == 1
    after = written_ids(world)
    assert attempt(world, "mgr01", PASSPHRASES["mgr01"], "manager").status_code == 429
    assert attempt(world, "guess98", "wrong-pass").status_code == 429
    assert written_ids(world) == after
    world.clock.advance(seconds=LOCKOUT_SECONDS + 1)
    assert attempt(world, "mgr01", PASSPHRASES["mgr01"], "manager").status_code == 303


@pytest.mark.parametrize("person", ["op01\x00", "o" * 300, "../keys/op01"])
def test_an_odd_person_id_is_a_failed_sign_in_not_a_500(world: World, person: str) -> None:
    """The person id names the key file: one no file can have (a NUL, too long for a file
    name, a path) is refused as any unknown id is (401, logged), not a server error."""
    response = attempt(world, person, "wrong-pass")
    assert response.status_code == 401
    assert "IDまたはパスフレーズが違います。" in response.text
    assert failed_logins(world, person[:64])
