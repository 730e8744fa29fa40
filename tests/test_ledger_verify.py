"""Verification catches every kind of tampering, and names the right index."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import NOW, ORIGIN, event, register, signed, tamper

from ledger import Ledger, LedgerError, Signer, Submission, verify, verify_ledger, verify_since

COLUMNS = ["idx", "id", "type", "at", "actor", "case_ref", "received", "key", "leaf", "leaf_hash"]
N = 12


@pytest.fixture
def ledger12(make_ledger) -> Ledger:
    led = make_ledger()
    op = Signer.generate("op07")
    subs = [register(op)]
    for i in range(N - 1):
        ev = event("case.stop", case=f"C{i}") if i % 2 else event()
        subs.append(signed(ev, op) if i % 3 == 0 else Submission(ev))
    led.append(subs, now=NOW)
    led.sign_checkpoint(now=NOW)
    return led


def _altered(column: str, value: object) -> object:
    if column == "idx":
        return 10_000
    if column == "leaf_hash":
        return bytes(32)
    if column == "leaf":
        return str(value).replace('"index":', '"index": ', 1)
    if value is None:
        return "C999"
    return str(value) + "x"


@pytest.mark.parametrize("column", COLUMNS)
@pytest.mark.parametrize("row", range(N))
def test_tampering_any_column_of_any_row_is_caught_at_that_index(ledger12, column, row) -> None:
    assert verify_ledger(ledger12.path).ok
    (value,) = (
        sqlite3.connect(ledger12.path)
        .execute(f"SELECT {column} FROM entries WHERE idx = ?", (row,))
        .fetchone()
    )
    tamper(ledger12.path, f"UPDATE entries SET {column} = ? WHERE idx = ?", (_altered(column, value), row))
    report = verify_ledger(ledger12.path)
    assert not report.ok
    assert report.bad_index == row, report.reason


def test_a_rewritten_leaf_with_recomputed_hash_breaks_the_chain_after_it(ledger12) -> None:
    from ledger.merkle import leaf_hash

    leaf = ledger12.leaf(4).replace(b'"received":"2026', b'"received":"2025')
    tamper(
        ledger12.path,
        "UPDATE entries SET leaf = ?, leaf_hash = ?, received = ? WHERE idx = 4",
        (leaf.decode(), leaf_hash(leaf), "2025-09-24T01:00:00.000Z"),
    )
    report = verify_ledger(ledger12.path)
    assert (report.ok, report.bad_index) == (False, 5) and "chain broken" in report.reason


@pytest.mark.parametrize("kind", ["case.stop", "key.registered"])  # key rows are also replayed first
def test_a_leaf_nested_too_deeply_to_parse_fails_at_its_index(ledger12, kind: str) -> None:
    # json raises RecursionError (not ValueError) here: it was a traceback from kansa ledger verify.
    from ledger.merkle import leaf_hash

    leaf = b"[" * 200_000 + b"]" * 200_000
    sql = "UPDATE entries SET leaf = ?, leaf_hash = ?, type = ? WHERE idx = 4"
    tamper(ledger12.path, sql, (leaf.decode(), leaf_hash(leaf), kind))
    for workers in (1, 2):
        report = verify_ledger(ledger12.path, workers=workers)
        assert (report.ok, report.checked, report.bad_index) == (False, True, 4), report.reason
        assert "nested too deeply" in str(report.reason)


def test_opening_a_ledger_whose_key_events_do_not_replay_is_a_ledger_error(ledger12) -> None:
    # Ledger.open replays key events; a tampered key row raised KeyEventError (a traceback in the CLI).
    path = ledger12.path
    ledger12.close()
    deep = "[" * 200_000 + "]" * 200_000
    tamper(path, "UPDATE entries SET type = 'key.registered', leaf = ? WHERE idx = 4", (deep,))
    with pytest.raises(LedgerError, match="entry 4: bad key event: nested too deeply"):
        Ledger.open(path)
    tamper(path, "UPDATE entries SET leaf = '{}' WHERE idx = 4")
    with pytest.raises(LedgerError, match="entry 4: bad key event"):
        Ledger.open(path)


def test_a_deleted_row_is_named(ledger12) -> None:
    tamper(ledger12.path, "DELETE FROM entries WHERE idx = 6")
    report = verify_ledger(ledger12.path)
    assert (report.ok, report.bad_index) == (False, 6) and "missing" in report.reason


def test_reordered_rows_are_caught_at_the_first(ledger12) -> None:
    conn = sqlite3.connect(ledger12.path)
    rows = {
        r[0]: r[1:] for r in conn.execute(f"SELECT {', '.join(COLUMNS)} FROM entries WHERE idx IN (3, 8)")
    }
    conn.close()
    tamper(ledger12.path, "DELETE FROM entries WHERE idx IN (3, 8)")
    for idx, other in ((3, 8), (8, 3)):
        tamper(
            ledger12.path,
            f"INSERT INTO entries ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (idx, *rows[other]),
        )
    report = verify_ledger(ledger12.path)
    assert (report.ok, report.bad_index) == (False, 3), report.reason


def test_truncation_is_caught_by_a_stored_checkpoint(ledger12) -> None:
    tamper(ledger12.path, "DELETE FROM entries WHERE idx >= 9")
    report = verify_ledger(ledger12.path)
    assert (report.ok, report.bad_index) == (False, 9) and "truncated" in report.reason


def test_truncation_with_checkpoints_removed_is_caught_by_a_kept_checkpoint(ledger12) -> None:
    kept = ledger12.latest_checkpoint().note
    tamper(ledger12.path, "DELETE FROM entries WHERE idx >= 9")
    tamper(ledger12.path, "DELETE FROM checkpoints")
    tamper(ledger12.path, "DELETE FROM tree_nodes WHERE ((idx + 1) << level) > 9")
    assert verify_ledger(ledger12.path).ok  # on its own the shortened ledger is consistent
    report = verify_ledger(ledger12.path, checkpoint=kept)
    assert (report.ok, report.bad_index) == (False, 9) and "truncated" in report.reason


def test_history_rewritten_with_the_ledger_key_is_caught_by_a_kept_checkpoint(
    ledger12, ledger_signer, tmp_path
) -> None:
    kept = ledger12.latest_checkpoint().note
    # Whoever holds the ledger's key rebuilds a ledger of the same size with other content.
    forged = Ledger.create(tmp_path / "forged.db", origin=ORIGIN, signer=ledger_signer, now=NOW)
    forged.append([Submission(event()) for _ in range(N + 2)], now=NOW)
    forged.sign_checkpoint(now=NOW)
    assert verify_ledger(forged.path).ok
    report = verify_ledger(forged.path, checkpoint=kept)
    assert not report.ok and "history rewritten" in report.reason and report.bad_index == N - 1


def test_a_checkpoint_from_another_key_is_refused(ledger12) -> None:
    other = Signer.generate(ORIGIN)
    from ledger.checkpoint import Checkpoint

    note = Checkpoint(ORIGIN, N, ledger12.root(N)).sign(other)
    report = verify_ledger(ledger12.path, checkpoint=note)
    assert not report.ok and "no signature by a known key" in report.reason


def test_a_given_vkey_that_is_not_the_ledgers_is_refused(ledger12) -> None:
    report = verify_ledger(ledger12.path, vkey=Signer.generate(ORIGIN).verifier.vkey)
    assert not report.ok and "verifier key" in report.reason


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE tree_nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = 2",
        "DELETE FROM tree_nodes WHERE level = 2 AND idx = 0",
        "INSERT INTO tree_nodes VALUES (9, 9, zeroblob(32))",
    ],
)
def test_tree_node_tampering_is_caught(ledger12, sql) -> None:
    tamper(ledger12.path, sql)
    assert not verify_ledger(ledger12.path).ok


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE checkpoints SET root = zeroblob(32)",
        "UPDATE checkpoints SET note = replace(note, char(10) || '12' || char(10),"
        " char(10) || '11' || char(10))",
        "UPDATE checkpoints SET size = 11",
    ],
)
def test_stored_checkpoint_tampering_is_caught(ledger12, sql) -> None:
    tamper(ledger12.path, sql)
    report = verify_ledger(ledger12.path)
    assert not report.ok and "checkpoint" in report.reason


def test_verification_in_worker_processes_matches_and_names_the_index(make_ledger, monkeypatch) -> None:
    monkeypatch.setattr(verify, "CHUNK_LEVEL", 4)
    monkeypatch.setattr(verify, "CHUNK", 16)
    led = make_ledger(150)
    led.sign_checkpoint(now=NOW)  # size 150: inside a chunk
    led.append([Submission(event()) for _ in range(10)], now=NOW)
    led.sign_checkpoint(now=NOW)  # size 160: on a chunk boundary
    one = verify_ledger(led.path, workers=1)
    two = verify_ledger(led.path, workers=2)
    assert one.ok and two.ok and one.root == two.root == led.root()
    tamper(led.path, "UPDATE entries SET actor = 'op99' WHERE idx = 77")
    tamper(led.path, "UPDATE entries SET actor = 'op99' WHERE idx = 140")
    report = verify_ledger(led.path, workers=2)
    assert (report.ok, report.bad_index) == (False, 77)


def test_interior_nodes_crossing_chunks_are_checked(make_ledger, monkeypatch) -> None:
    monkeypatch.setattr(verify, "CHUNK_LEVEL", 3)
    monkeypatch.setattr(verify, "CHUNK", 8)
    led = make_ledger(40)
    tamper(led.path, "UPDATE tree_nodes SET hash = zeroblob(32) WHERE level = 5 AND idx = 0")
    report = verify_ledger(led.path, workers=2)
    assert not report.ok and "(5, 0)" in report.reason


def test_incremental_verify_from_a_trusted_checkpoint(make_ledger) -> None:
    led = make_ledger(30)
    trusted = led.sign_checkpoint(now=NOW).note
    op = Signer.generate("op07")
    led.append([register(op)] + [signed(event(), op) for _ in range(20)], now=NOW)
    led.sign_checkpoint(now=NOW)
    report = verify_since(led.path, trusted)
    assert report.ok and report.entries_checked == 21 and report.root == led.root()
    assert report.trusted is not None and report.trusted.size == 30


def test_incremental_verify_catches_tampering_after_and_before_the_checkpoint(make_ledger, tmp_path) -> None:
    led = make_ledger(30)
    trusted = led.sign_checkpoint(now=NOW).note
    led.append([Submission(event()) for _ in range(20)], now=NOW)
    copy = tmp_path / "copy.db"
    with sqlite3.connect(copy) as dst:
        sqlite3.connect(led.path).backup(dst)
    tamper(led.path, "UPDATE entries SET at = '2026-09-24T09:00:01+09:00' WHERE idx = 41")
    report = verify_since(led.path, trusted)
    assert (report.ok, report.bad_index) == (False, 41)
    # Before the checkpoint, the stored tree must still reproduce the trusted root.
    tamper(copy, "UPDATE tree_nodes SET hash = zeroblob(32) WHERE level = 4 AND idx = 0")
    assert not verify_since(copy, trusted).ok


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM tree_nodes WHERE level = 1 AND idx = 20",  # a node after the trusted size
        "INSERT INTO tree_nodes VALUES (1, 999, zeroblob(32))",  # a stray node beyond the ledger
        "INSERT INTO tree_nodes VALUES (9, 0, zeroblob(32))",  # a level the ledger cannot have
        "INSERT INTO tree_nodes VALUES (0, 3, zeroblob(32))",  # level 0 lives in entries
        "INSERT INTO tree_nodes VALUES (1, -1, zeroblob(32))",  # an index no subtree has
    ],
)
def test_incremental_verify_counts_the_tree_nodes_after_the_checkpoint(make_ledger, sql: str) -> None:
    """verify_since counts nodes per level by index range from the trusted edge (not a
    whole-table scan); extra or missing rows there must still be caught."""
    led = make_ledger(30)
    trusted = led.sign_checkpoint(now=NOW).note
    led.append([Submission(event()) for _ in range(20)], now=NOW)
    assert verify_since(led.path, trusted).ok
    tamper(led.path, sql)
    assert not verify_since(led.path, trusted).ok
    assert not verify_ledger(led.path).ok


def test_incremental_verify_refuses_a_checkpoint_beyond_the_ledger(ledger12) -> None:
    trusted = ledger12.latest_checkpoint().note
    tamper(ledger12.path, "DELETE FROM entries WHERE idx >= 10")
    report = verify_since(ledger12.path, trusted)
    assert (report.ok, report.bad_index) == (False, 10) and "truncated" in report.reason


def test_an_empty_ledger_verifies(make_ledger) -> None:
    led = make_ledger()
    led.sign_checkpoint(now=NOW)
    report = verify_ledger(led.path)
    assert report.ok and report.size == 0


def test_events_option_checks_form_beyond_integrity(make_ledger, monkeypatch) -> None:
    led = make_ledger(3)
    # Whoever holds the ledger's key could sign an event the vocabulary refuses.
    from ledger.vocabulary import Vocabulary

    monkeypatch.setattr(Vocabulary, "validate", lambda self, event: None)
    led.append([Submission(event("call.dialed", ring_s=-5))], now=NOW)
    monkeypatch.undo()
    assert verify_ledger(led.path).ok
    report = verify_ledger(led.path, check_events=True)
    assert (report.ok, report.bad_index) == (False, 3) and "data.ring_s" in report.reason
