"""The seats' board (dialer_core.seats.SeatBoard): a change wakes only the waiters of its seat."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from dialer_core.seats import SeatBoard


def rechecks_while_waiting(
    wait: Callable[[], object], others: Callable[[], None]
) -> tuple[int, threading.Thread]:
    """How many times the waiting thread's condition was evaluated while `others` ran (a thread
    waiting on a condition evaluates it again each time it is woken), and that thread."""
    checks = [0]
    started = threading.Event()

    def profile(frame: Any, event: str, _arg: Any) -> None:
        if (
            event == "call"
            and frame.f_code.co_name == "<lambda>"
            and frame.f_code.co_filename.endswith("seats.py")
        ):
            checks[0] += 1

    def waiter() -> None:
        sys.setprofile(profile)
        started.set()
        try:
            wait()
        finally:
            sys.setprofile(None)

    thread = threading.Thread(target=waiter)
    thread.start()
    started.wait()
    time.sleep(0.05)
    before = checks[0]
    others()
    time.sleep(0.05)
    during = checks[0] - before
    return during, thread


def test_a_long_poll_is_not_woken_by_another_seats_changes() -> None:
    board = SeatBoard(["s01", "s02"])
    version = board.get("s01")["version"]
    got: list[dict[str, Any]] = []

    def others() -> None:
        for _ in range(50):
            board.ready("s02", "op02")
            board.pause("s02")
            time.sleep(0.001)

    during, thread = rechecks_while_waiting(
        lambda: got.append(board.get("s01", wait_version=version, timeout=10)), others
    )
    assert during == 0, f"the long poll of s01 re-checked {during} times for s02's 100 changes"
    assert thread.is_alive()  # still waiting: s01 did not change
    board.ready("s01", "op01")  # its own seat's change answers it at once
    thread.join(2)
    assert not thread.is_alive()
    assert got[0]["state"] == "ready" and got[0]["version"] == version + 1


def test_a_seat_thread_waiting_for_ready_is_not_woken_by_another_seat() -> None:
    board = SeatBoard(["s01", "s02"])
    ready: list[bool] = []

    def others() -> None:
        for _ in range(50):
            board.ready("s02", "op02")
            board.pause("s02")
            time.sleep(0.001)

    during, thread = rechecks_while_waiting(lambda: ready.append(board.wait_ready("s01", 10)), others)
    assert during == 0, f"s01's runner re-checked {during} times for s02's 100 changes"
    board.ready("s01", "op01")
    thread.join(2)
    assert ready == [True]


def test_a_runner_told_to_stop_while_its_seat_waits_ends_at_once() -> None:
    """The runner waits for its seat without polling; stop() wakes it."""
    from datetime import datetime

    from dialer_core.seats import SeatRunner

    board = SeatBoard(["s01"])
    runner = SeatRunner(
        "s01",
        phone=None,  # type: ignore[arg-type]  # never dials: nothing is planned
        board=board,
        plan=lambda seat, now: None,
        record=lambda *a: None,
        clock=datetime.now,
    )
    thread = threading.Thread(target=runner.run)
    thread.start()
    time.sleep(0.3)  # waiting: the seat is offline
    started = time.monotonic()
    runner.stop()
    thread.join(3)
    assert not thread.is_alive()
    assert time.monotonic() - started < 3


def test_a_waiting_caller_is_listed_by_the_seats_api_until_removed() -> None:
    import json
    import urllib.request
    from datetime import datetime, timedelta, timezone

    from dialer_core.seats import SeatsApi

    def waiting(api: SeatsApi, token: str = "t0ken") -> tuple[int, Any]:
        request = urllib.request.Request(
            f"{api.url}/v1/callbacks/waiting", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    board = SeatBoard(["s01"])
    jst = timezone(timedelta(hours=9))
    with SeatsApi(board, "t0ken") as api:
        assert waiting(api) == (200, {"waiting": []})
        assert waiting(api, "wrong")[0] == 401
        board.waiting_add("k2", None, datetime(2026, 9, 21, 10, 16, 0, tzinfo=jst), "2")
        board.waiting_add("k1", "c-7f3a", datetime(2026, 9, 21, 10, 15, 3, tzinfo=jst), "1")
        assert waiting(api) == (
            200,
            {
                "waiting": [  # longest-waiting first; never a number
                    {"case": "c-7f3a", "since": "2026-09-21T10:15:03+09:00", "line": "1"},
                    {"case": None, "since": "2026-09-21T10:16:00+09:00", "line": "2"},
                ]
            },
        )
        board.waiting_remove("k1")
        board.waiting_remove("k1")  # twice is harmless (the line's finally)
        later = {"case": None, "since": "2026-09-21T10:16:00+09:00", "line": "2"}
        assert waiting(api) == (200, {"waiting": [later]})
        board.waiting_remove("k2")
        assert waiting(api) == (200, {"waiting": []})


def _ended_call(board: SeatBoard, seat: str, call_id: str) -> None:
    from dialer_core.seats import Call

    board.ready(seat, "op01")
    board.start(seat, Call(call_id, "outbound", "C1", "1", "0258-39-1001", "2026-09-24T10:00:00+09:00"), None)
    board.progress(seat, "ended", result="no_answer", ring_s=35, ended_at="2026-09-24T10:00:40+09:00")


def test_a_seat_signed_out_during_a_call_keeps_it_until_its_outcome() -> None:
    """Signed out (the console's operator left) before the loop recorded the call: the call stays
    on the seat, in wrap_up, until an outcome is posted (the manager's desk records it); it was
    released when recorded, so whether it waited for its outcome depended on which came first
    (seen: test_console_forms' orphan-call test failing under load)."""
    board = SeatBoard(["s01", "s02"])
    _ended_call(board, "s01", "K-signout")
    board.pause("s01", "offline")  # the console signs the seat out during the call
    board.recorded("s01", release=False)  # call.dialed committed
    seat = board.get("s01")
    assert seat["state"] == "wrap_up" and seat["call"]["call"] == "K-signout"
    board.outcome("K-signout", "unanswered-K-signout")
    assert board.get("s01")["state"] == "offline" and board.get("s01")["call"] is None
    # A seat whose phone went away is released once the call is recorded, as before.
    _ended_call(board, "s02", "K-lost")
    board.lost("s02")
    board.recorded("s02", release=False)
    assert board.get("s02")["state"] == "offline" and board.get("s02")["call"] is None
