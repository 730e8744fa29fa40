"""ledger.reader: the one read side of a ledger file."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import NOW, event, register, signed, tamper

from ledger import Ledger, LedgerError, LedgerReader, ReadError, Signer, verify_ledger
from ledger.witness import Witness

ROOT = Path(__file__).parent.parent


def test_reads_what_the_writer_wrote(make_ledger: Callable[..., Ledger], tmp_path: Path) -> None:
    led = make_ledger(5)
    first = led.sign_checkpoint(now=NOW)
    op = Signer.generate("op07")
    led.append([register(op), signed(event(actor="op07"), op)], now=NOW + timedelta(seconds=1))
    second = led.sign_checkpoint(now=NOW + timedelta(seconds=2))
    with LedgerReader.open(led.path) as reader:
        assert (reader.origin, reader.size, reader.verifier) == (led.origin, 7, led.verifier)
        assert [cp.size for cp in reader.checkpoints()] == [5, 7]
        assert reader.latest_checkpoint() == second
        assert reader.latest_checkpoint(max_size=6) == first
        assert reader.checkpoint_count() == 2 and reader.checkpoint_sizes() == {5, 7}
        assert list(reader.leaves(5, 7)) == list(led.leaves(5, 7))
    witness = tmp_path / "w"
    with Witness.init(witness, "w.example/1") as w:
        w.add_log(led.origin, led.verifier.vkey, now=NOW)
        cosigned = led.add_cosigned_checkpoint(
            second.note + w.add_checkpoint(f"old 0\n\n{second.note}".encode(), now=NOW).body, now=NOW
        )
    with LedgerReader.open(led.path) as reader:
        # The cosigned note is the newest row of size 7, not a third checkpoint.
        assert reader.latest_checkpoint() == cosigned and cosigned.seq > second.seq
        assert reader.checkpoint_count() == 2 and reader.checkpoint_sizes() == {5, 7}
    with LedgerReader.open(led.path) as reader:
        assert reader.root(5) == first.root and reader.root() == led.root()
        timeline = reader.key_timeline()
        assert timeline == led.keys() and timeline[op.verifier.key_ref].registered_at == 5
        assert reader.key_timeline(stop=5) == {}
        assert [i for i, _ in reader.checked_leaves(5, first.root)] == [0, 1, 2, 3, 4]


def test_checked_leaves_refuse_leaves_that_miss_the_root(make_ledger: Callable[..., Ledger]) -> None:
    led = make_ledger(4)
    cp = led.sign_checkpoint(now=NOW)
    led.close()
    tamper(led.path, "UPDATE entries SET leaf = replace(leaf, 'op07', 'op08') WHERE idx = 2")
    with LedgerReader.open(led.path) as reader, pytest.raises(ReadError, match="root"):
        list(reader.checked_leaves(cp.size, cp.root))
    tamper(led.path, "DELETE FROM entries WHERE idx = 1")
    with LedgerReader.open(led.path) as reader, pytest.raises(ReadError, match="entry 1 is missing"):
        list(reader.checked_leaves(cp.size, cp.root))


def test_opening_something_else_is_a_ledger_error(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger"):
        LedgerReader.open(tmp_path / "missing.db")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(LedgerError):
        LedgerReader.open(junk)
    assert not verify_ledger(junk).ok


def test_a_reader_does_not_write(make_ledger: Callable[..., Ledger]) -> None:
    led = make_ledger(1)
    with LedgerReader.open(led.path) as reader, pytest.raises(Exception, match="readonly"):
        reader._conn.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")


# Where the ledger's tables may be named in SQL: the ledger package itself; the verification
# notebook, which reads the file with the standard library on purpose (it trusts no Kansa code);
# and the auditors' Datasette pages that count and list records exactly as Datasette's own table
# filters over `entries` do (the count beside a clause links to that filter, so both are SQL).
SQL = re.compile(r"\b(FROM|INTO|UPDATE|JOIN)\s+(entries|checkpoints|meta|tree_nodes)\b", re.IGNORECASE)
ALLOWED = {"notebooks/verify_ledger.py", "compliance/coverage.py", "datasette_plugins/audit_pages.py"}


def test_no_sql_against_the_ledger_outside_ledger() -> None:
    offenders = []
    for package in (
        "compliance",
        "contract",
        "console",
        "datasette_plugins",
        "dialer_core",
        "kansa",
        "notebooks",
    ):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative not in ALLOWED and SQL.search(path.read_text(encoding="utf-8")):
                offenders.append(relative)
    assert offenders == []
