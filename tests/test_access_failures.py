"""ledger/access.py's Failures: the lock-out counts of both sign-in doors (the console and the
auditors' Datasette), on a clock of seconds."""

from __future__ import annotations

from ledger.access import LOCKOUT_SECONDS, MAX_ADDRESS_FAILURES, MAX_FAILURES, Failures


def test_ids_tried_from_a_locked_out_address_are_not_kept() -> None:
    """A guesser locked out by address keeps sending new ids: each is looked up (refused before
    any key is opened) and none may stay in memory; 10,000 of them left 10,001 entries."""
    failures = Failures()
    for i in range(MAX_ADDRESS_FAILURES):
        failures.add(f"id{i}", "203.0.113.9", 100.0)
    held = failures.tracked()
    for i in range(10_000):
        assert failures.locked(f"new{i}", "203.0.113.9", 101.0)
    assert failures.tracked() == held


def test_a_name_is_locked_out_then_let_in_when_the_window_passes_and_forgotten() -> None:
    failures = Failures()
    for i in range(MAX_FAILURES):
        failures.add("op01", f"198.51.100.{i}", 100.0 + i)
    assert failures.locked("op01", "192.0.2.1", 110.0)
    left = failures.seconds_left("op01", None, 110.0)
    assert left == 100.0 + LOCKOUT_SECONDS - 110.0
    later = 100.0 + MAX_FAILURES + LOCKOUT_SECONDS
    assert not failures.locked("op01", None, later)
    for i in range(MAX_FAILURES):
        assert not failures.locked("x", f"198.51.100.{i}", later)
    assert failures.tracked() == 0
