"""Appending: validation, idempotency, keys and signatures, all-or-nothing, append-only."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import NOW, event, register, signed

from ledger import AppendError, Ledger, LedgerError, Signer, Submission, verify_ledger
from ledger.leaf import parse_leaf


def test_entries_are_numbered_from_zero_and_chained(make_ledger) -> None:
    led = make_ledger(3)
    leaves = list(led.leaves())
    assert [i for i, _, _ in leaves] == [0, 1, 2]
    assert parse_leaf(leaves[0][1])["prev"] == "A" * 43 + "="
    import base64

    assert base64.b64decode(parse_leaf(leaves[2][1])["prev"]) == leaves[1][2]
    assert parse_leaf(leaves[1][1])["received"] == "2026-09-24T01:00:00.000Z"


def test_same_id_same_content_returns_the_existing_index(make_ledger) -> None:
    led = make_ledger(2)
    ev = event()
    first = led.append([Submission(ev)], now=NOW)[0]
    again = led.append([Submission(dict(ev))], now=NOW)[0]
    assert (first.index, first.created) == (2, True)
    assert (again.index, again.created, again.leaf_hash) == (2, False, first.leaf_hash)
    assert led.size == 3


def test_same_id_other_content_is_refused(make_ledger) -> None:
    led = make_ledger(1)
    ev = event(event_id="fixed-id")
    led.append([Submission(ev)], now=NOW)
    with pytest.raises(AppendError) as err:
        led.append([Submission({**ev, "actor": "op08"})], now=NOW)
    assert err.value.kind == "conflict" and "entry 1" in str(err.value)


def test_duplicate_id_within_one_batch(make_ledger) -> None:
    led = make_ledger()
    ev = event()
    results = led.append([Submission(ev), Submission(ev)], now=NOW)
    assert [r.index for r in results] == [0, 0] and led.size == 1


@pytest.mark.parametrize(
    "change, field",
    [
        ({"type": "call.teleported"}, "type"),
        ({"at": "2026-09-24T09:00:00"}, "at"),  # no offset
        ({"at": "2026-09-24 09:00:00+09:00"}, "at"),
        ({"at": "2026-02-30T09:00:00+09:00"}, "at"),
        ({"id": "x" * 65}, "id"),
        ({"id": ""}, "id"),
        ({"actor": ""}, "actor"),
        ({"extra": 1}, "extra"),
    ],
)
def test_envelope_errors_name_the_field(make_ledger, change, field) -> None:
    led = make_ledger()
    with pytest.raises(AppendError) as err:
        led.append([Submission({**event(), **change})], now=NOW)
    assert err.value.kind == "invalid" and err.value.field == field


@pytest.mark.parametrize(
    "data, field",
    [
        ({"ring_s": "35"}, "data.ring_s"),
        ({"ring_s": -1}, "data.ring_s"),
        ({"result": "hung_up"}, "data.result"),
        ({"ended_at": "yesterday"}, "data.ended_at"),
        ({"number": "090-1234-5678"}, "data.number"),  # a phone number is not a reference
        ({"case": None}, "data.case"),
        ({"message_left": "yes"}, "data.message_left"),
        ({"ring_s": 35.0}, "data.ring_s"),
        ({"note": {"x": 1.5}}, "data.note.x"),
    ],
)
def test_data_errors_name_the_field(make_ledger, data, field) -> None:
    led = make_ledger()
    with pytest.raises(AppendError) as err:
        led.append([Submission(event("call.dialed", **data))], now=NOW)
    assert err.value.field == field, str(err.value)


def test_missing_required_field_and_optional_and_nullable(make_ledger) -> None:
    led = make_ledger()
    ev = event("call.dialed")
    del ev["data"]["caller_id"]
    with pytest.raises(AppendError, match="data.caller_id: is required"):
        led.append([Submission(ev)], now=NOW)
    ok = event("call.dialed", result="voicemail", message_left=True, writer_note="kept")
    led.append(
        [Submission(ok), Submission(event("callback.received", case=None, queued_s=3, handled="operator"))],
        now=NOW,
    )
    assert led.size == 2


def test_a_batch_is_all_or_nothing(make_ledger) -> None:
    led = make_ledger(2)
    batch = [Submission(event()) for _ in range(5)]
    batch[3] = Submission(event("call.dialed", ring_s="long"))
    with pytest.raises(AppendError) as err:
        led.append(batch, now=NOW)
    assert err.value.position == 3
    assert led.size == 2
    led.append(batch[:3], now=NOW)
    assert led.size == 5
    assert verify_ledger(led.path).ok


def test_registered_key_signs_and_revoked_or_unknown_is_refused(make_ledger) -> None:
    led = make_ledger()
    op = Signer.generate("op07")
    stranger = Signer.generate("op99")
    led.append([register(op)], now=NOW)
    led.append([signed(event(), op)], now=NOW)
    with pytest.raises(AppendError) as err:
        led.append([signed(event(), stranger)], now=NOW)
    assert err.value.kind == "signature" and "unknown key" in err.value.message
    bad = signed(event(), op)
    forged = Submission({**bad.event, "actor": "op08"}, bad.sig)
    with pytest.raises(AppendError, match="does not verify"):
        led.append([forged], now=NOW)
    led.append([Submission(event("key.revoked", key=op.verifier.key_ref, reason="lost"))], now=NOW)
    with pytest.raises(AppendError, match="revoked"):
        led.append([signed(event(), op)], now=NOW)
    assert led.size == 3
    assert verify_ledger(led.path).ok


def test_a_key_registered_in_a_batch_signs_later_events_of_that_batch(make_ledger) -> None:
    led = make_ledger()
    op = Signer.generate("op07")
    led.append([register(op), signed(event(), op)], now=NOW)
    assert led.size == 2


def test_key_events_must_be_signed_by_the_ledger_key_and_be_consistent(make_ledger) -> None:
    led = make_ledger()
    op = Signer.generate("op07")
    led.append([register(op)], now=NOW)
    other = Signer.generate("op08")
    with pytest.raises(AppendError, match="ledger's own key"):
        led.append([signed(register(other).event, op)], now=NOW)
    wrong_holder = register(other)
    wrong_holder.event["data"]["holder"] = "op09"
    with pytest.raises(AppendError, match="key id must be"):
        led.append([wrong_holder], now=NOW)
    with pytest.raises(AppendError, match="already registered"):
        led.append([register(op)], now=NOW)
    with pytest.raises(AppendError, match="not registered"):
        led.append([Submission(event("key.revoked", key="nobody+00000000", reason="x"))], now=NOW)


def test_keys_registered_by_another_process_are_seen(make_ledger, ledger_signer, tmp_path) -> None:
    led = make_ledger()
    other = Ledger(led.path, sqlite3.connect(led.path, isolation_level=None), ledger_signer)
    op = Signer.generate("op07")
    other.append([register(op)], now=NOW)
    led.append([signed(event(), op)], now=NOW)
    assert led.size == 2 and verify_ledger(led.path).ok


@pytest.mark.parametrize(
    "table, sql",
    [
        ("entries", "UPDATE entries SET actor = 'x' WHERE idx = 0"),
        ("entries", "DELETE FROM entries WHERE idx = 0"),
        ("tree_nodes", "DELETE FROM tree_nodes"),
        ("checkpoints", "UPDATE checkpoints SET size = 0"),
        ("meta", "UPDATE meta SET value = 'x' WHERE key = 'origin'"),
    ],
)
def test_triggers_refuse_update_and_delete(make_ledger, table, sql) -> None:
    led = make_ledger(4)
    led.sign_checkpoint(now=NOW)
    conn = sqlite3.connect(led.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(sql)


def test_checkpoints_are_kept_and_signing_twice_at_one_size_is_idempotent(make_ledger) -> None:
    led = make_ledger(3)
    a = led.sign_checkpoint(now=NOW)
    b = led.sign_checkpoint(now=NOW)
    led.append([Submission(event())], now=NOW)
    c = led.sign_checkpoint(now=NOW)
    assert a == b and c.size == 4 and [cp.size for cp in led.checkpoints()] == [3, 4]


def test_open_refuses_other_keys_and_files(make_ledger, tmp_path) -> None:
    led = make_ledger(1)
    from ledger.keyfile import write_key

    wrong = tmp_path / "wrong.key"
    write_key(wrong, Signer.generate("test.example/ledger"))
    with pytest.raises(LedgerError, match="does not hold this ledger's key"):
        Ledger.open(led.path, key_path=wrong)
    with pytest.raises(LedgerError, match="no ledger"):
        Ledger.open(tmp_path / "nothing.db")
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(LedgerError):
        Ledger.open(tmp_path / "junk.db")


def test_appending_without_the_key_needs_a_signature(make_ledger) -> None:
    led = make_ledger(1)
    readonly = Ledger.open(led.path)
    with pytest.raises(LedgerError, match="signing key"):
        readonly.append([Submission(event())], now=NOW)


def _large_batch(op: Signer, n: int = 300) -> list[Submission]:
    return [signed(event(), op) if i % 2 else Submission(event()) for i in range(n)]


def test_a_bad_signature_deep_in_a_large_batch_is_named(make_ledger) -> None:
    led = make_ledger()
    op = Signer.generate("op07")
    led.append([register(op)], now=NOW)
    batch = _large_batch(op)
    good = batch[201]
    batch[201] = Submission({**good.event, "actor": "op08"}, good.sig)
    with pytest.raises(AppendError) as err:
        led.append(batch, now=NOW)
    assert (err.value.position, err.value.kind) == (201, "signature")
    assert led.size == 1


def test_the_earliest_problem_of_a_large_batch_is_reported(make_ledger) -> None:
    led = make_ledger()
    op = Signer.generate("op07")
    led.append([register(op)], now=NOW)
    batch = _large_batch(op)
    good = batch[101]
    batch[101] = Submission({**good.event, "actor": "op08"}, good.sig)  # bad signature
    batch[250] = Submission(event("call.dialed", ring_s="x"))  # invalid, later
    with pytest.raises(AppendError) as err:
        led.append(batch, now=NOW)
    assert (err.value.position, err.value.kind) == (101, "signature")
    batch[101] = good
    with pytest.raises(AppendError) as err:
        led.append(batch, now=NOW)
    assert (err.value.position, err.value.kind) == (250, "invalid")


def test_a_large_mixed_batch_appends_and_verifies(make_ledger) -> None:
    led = make_ledger()
    op = Signer.generate("op07")
    batch = [register(op), *_large_batch(op, 500)]
    batch.append(batch[10])  # a retry inside the batch
    results = led.append(batch, now=NOW)
    assert led.size == 501 and results[-1].index == results[10].index and not results[-1].created
    assert results[-1].leaf_hash == results[10].leaf_hash
    assert verify_ledger(led.path).ok


def test_groups_share_a_transaction_but_fail_alone(make_ledger) -> None:
    led = make_ledger()
    op = Signer.generate("op07")
    led.append([register(op)], now=NOW)
    good_a = [signed(event(), op), signed(event(), op)]
    bad_sig = signed(event(), op)
    bad_sig = Submission({**bad_sig.event, "actor": "op08"}, bad_sig.sig)
    bad_group = [signed(event(), op), bad_sig]
    invalid_group = [Submission(event("call.dialed", ring_s=-1))]
    good_b = [Submission(event())]
    outcomes = led.append_groups([good_a, bad_group, invalid_group, good_b], now=NOW)
    assert [r.index for r in outcomes[0]] == [1, 2]
    assert isinstance(outcomes[1], AppendError) and outcomes[1].position == 1
    assert isinstance(outcomes[2], AppendError) and outcomes[2].kind == "invalid"
    assert [r.index for r in outcomes[3]] == [3]
    assert led.size == 4 and verify_ledger(led.path).ok


def test_a_group_repeating_another_groups_event_gets_its_index(make_ledger) -> None:
    led = make_ledger()
    ev = event()
    outcomes = led.append_groups([[Submission(ev)], [Submission(dict(ev))]], now=NOW)
    assert outcomes[0][0].index == outcomes[1][0].index == 0
    assert outcomes[0][0].created and not outcomes[1][0].created
    assert led.size == 1
