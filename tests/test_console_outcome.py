"""console/outcome.py on odd input: every field the operator types is an error in Japanese
beside its field (422), never an exception (a 500 after the resident was shown)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from console.outcome import check_callback_outcome, check_outcome

NOW = datetime(2026, 9, 24, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo
FIELDS = {"party": "self", "step": ["1", "2"], "disposition": "no_contact", "requests": []}


def checked(extra: dict[str, str]) -> dict[str, str]:
    form = {**FIELDS, **extra}
    common = {"case": "C1", "call": "k1", "landline_only": False, "last_step": 2, "now": NOW}
    return check_outcome(form, voicemail=False, in_period=lambda _m: True, **common).errors


@pytest.mark.parametrize("amount", ["٣", "9" * 5000, "9" * 20, "-5", "0"])
def test_an_odd_amount_is_a_field_error(amount: str) -> None:
    errors = checked({"promise_date": "2026-09-30", "promise_amount": amount})
    assert errors == {"promise_amount": "金額は1円以上の整数（円）で入力してください。"}


def test_a_superscript_two_is_not_a_server_error() -> None:
    assert checked({"promise_date": "2026-09-30", "promise_amount": "²"}) == {}  # NFKC: 2 yen


def test_an_amount_typed_in_full_width_is_taken() -> None:
    form = {**FIELDS, "promise_date": "2026-09-30", "promise_amount": "１２，０００"}
    common = {"case": "C1", "call": "k1", "landline_only": False, "last_step": 2, "now": NOW}
    done = check_callback_outcome(form, **common)
    assert done.errors == {} and done.data is not None
    assert done.data["promise"] == {"date": "2026-09-30", "amount": 12000}


@pytest.mark.parametrize("moment", ["9999-12-31T23:59-12:00", "0001-01-01T00:00+14:00", "2026-13-01T10:00"])
def test_an_odd_callback_time_is_a_field_error(moment: str) -> None:
    assert checked({"callback_at": moment}) == {"callback_at": "折り返しの日時が読めません。"}
