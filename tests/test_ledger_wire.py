"""ledger.wire: the one reader of {"event", "sig"}, and the one map from refusals to HTTP statuses."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from conftest import NOW, event, register

from ledger import AppendError, Ledger, Signer
from ledger.commands import LineError, parse_submission, read_submissions
from ledger.wire import (
    FINAL_STATUSES,
    MAX_BODY_BYTES,
    WireError,
    error_body,
    parse_signed,
    signed,
    status_of,
)


def test_a_signed_submission_round_trips_and_is_accepted(make_ledger: Callable[..., Ledger]) -> None:
    led = make_ledger()
    op = Signer.generate("op07")
    led.append([register(op)], now=NOW)
    body = signed(event(), op)
    assert set(body) == {"event", "sig"} and body["sig"]["key"] == op.verifier.key_ref
    (appended,) = led.append([parse_signed(body)], now=NOW)
    assert appended.created and appended.index == 1
    # `kansa ledger append` reads the same shape through the same function.
    assert parse_submission(body) == parse_signed(body)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ([], "body"),
        ({"event": {}}, "body"),
        ({"event": {}, "sig": {}, "extra": 1}, "body"),
        ({"event": {}, "sig": "x"}, "sig"),
        ({"event": {}, "sig": {"key": "k"}}, "sig"),
    ],
)
def test_a_malformed_submission_names_its_field(value: object, field: str) -> None:
    with pytest.raises(WireError) as raised:
        parse_signed(value, "events[3].")
    assert raised.value.field == f"events[3].{field}"
    # The CLI refuses the same lines (a bare envelope without "event" is signed by the host instead).
    if isinstance(value, dict) and "event" in value:
        with pytest.raises(ValueError):
            parse_submission(value)


def test_each_refusal_has_one_status_and_a_body_naming_the_place() -> None:
    assert status_of(AppendError(0, "invalid", "data.ring_s", "x")) == 422
    assert status_of(AppendError(0, "conflict", "id", "x")) == 409
    assert status_of(AppendError(0, "signature", "sig.key", "x")) == 401
    assert {401, 409, 422} <= FINAL_STATUSES  # refusals a client must not retry
    assert all(status < 500 for status in FINAL_STATUSES)
    assert error_body(AppendError(0, "invalid", "data.ring_s", "bad")) == {
        "error": "bad",
        "field": "event.data.ring_s",
    }
    assert error_body(AppendError(2, "signature", "sig.ed25519", "no"), "events[2].") == {
        "error": "no",
        "field": "events[2].sig.ed25519",
        "position": 2,
    }
    assert error_body(AppendError(0, "invalid", "event", "not canonical"))["field"] == "event"


def test_a_line_of_kansa_ledger_append_is_measured_in_bytes_as_a_request_body_is() -> None:
    line = json.dumps(event(terminal="あ" * 400_000), ensure_ascii=False)  # 3 bytes a character
    assert len(line) < MAX_BODY_BYTES < len(line.encode("utf-8"))
    with pytest.raises(LineError, match=f"at most {MAX_BODY_BYTES:,} bytes") as refused:
        read_submissions(["", line])
    assert refused.value.line == 2


def test_a_line_nested_too_deeply_for_the_parser_is_a_line_error() -> None:
    # json.loads raises RecursionError (not a ValueError) here: it was a traceback from kansa ledger append.
    with pytest.raises(LineError, match="nested too deeply") as refused:
        read_submissions(["{}", "[" * 200_000 + "]" * 200_000])
    assert refused.value.line == 2
