"""Our fast canonical encoder and leaf assembly agree with the rfc8785 reference."""

from __future__ import annotations

import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import CanonicalError, canonicalize
from ledger.leaf import build_leaf, event_bytes, parse_leaf

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.text(),
    st.integers(-(2**53) + 1, 2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_fast_path_equals_rfc8785(value) -> None:
    try:
        reference = rfc8785.dumps(value)
    except Exception:
        with pytest.raises(CanonicalError):
            canonicalize(value)
        return
    assert canonicalize(value) == reference


def test_keys_sort_by_utf16_code_units() -> None:
    # U+FF61 sorts after U+1F600 in UTF-16 (0xD83D < 0xFF61) but before it by code point.
    value = {"\uff61": 1, "\U0001f600": 2}
    assert canonicalize(value) == rfc8785.dumps(value)
    assert canonicalize(value).index("😀".encode()) < canonicalize(value).index("｡".encode())


def test_unsafe_integers_and_lone_surrogates_are_refused() -> None:
    with pytest.raises(CanonicalError):
        canonicalize({"n": 2**53})
    with pytest.raises(CanonicalError):
        canonicalize({"s": "\ud800"})


integer_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.text(), st.integers(-(2**53) + 1, 2**53 - 1)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


# Events hold no floats (the vocabulary refuses them), so leaves are built from integer values.
@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(max_size=8), integer_values, max_size=5),
    st.integers(0, 2**40),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=64, max_size=64),
    st.text(min_size=1, max_size=20).filter(lambda s: "+" not in s),
)
def test_assembled_leaf_is_canonical_and_event_bytes_cut_back_out(data, index, prev, sig, key) -> None:
    try:
        ev = canonicalize({"id": "x", "data": data})
    except CanonicalError:
        return
    leaf = build_leaf(ev, index, prev, "2026-09-24T01:00:00.000Z", key, sig)
    assert rfc8785.dumps(json.loads(leaf)) == leaf
    assert event_bytes(leaf) == ev
    assert parse_leaf(leaf)["index"] == index


def test_a_non_canonical_leaf_is_refused() -> None:
    leaf = build_leaf(b'{"a":1}', 0, bytes(32), "t", "k", bytes(64))
    spaced = leaf.replace(b'"index":0', b'"index": 0')
    with pytest.raises(ValueError, match="canonical"):
        parse_leaf(spaced)


@settings(max_examples=300, deadline=None)
@given(integer_values)
def test_validated_fast_path_and_strict_parse_agree_with_rfc8785(value) -> None:
    from ledger.canonical import canonicalize_validated, loads_canonical

    try:
        reference = rfc8785.dumps(value)
    except Exception:
        return
    assert canonicalize_validated(value) == reference
    assert loads_canonical(reference) == value
    other = json.dumps(value, ensure_ascii=True, indent=None).encode()
    if other != reference:
        with pytest.raises(CanonicalError):
            loads_canonical(other)


@pytest.mark.parametrize(
    "text", [b'{"a":1.0}', b'{"a":9007199254740993}', b'{"a":"\\ud800"}', b'{"b":1,"a":2}']
)
def test_strict_parse_refuses_what_is_not_canonical(text: bytes) -> None:
    from ledger.canonical import loads_canonical

    with pytest.raises(CanonicalError):
        loads_canonical(text)
