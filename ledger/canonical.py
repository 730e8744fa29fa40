"""RFC 8785 (JSON Canonicalization Scheme) bytes of a JSON value.

`rfc8785` is the reference implementation. Canonicalizing is on the hot path of
both append and verify, so values made only of strings, booleans, null, safe
integers, lists and objects with ASCII keys take a fast path through the
standard library's encoder, which gives the same bytes for exactly that subset:
keys sort identically (ASCII code points equal UTF-16 code units), strings are
escaped the same way (short escapes for \\b \\t \\n \\f \\r, lowercase \\u00xx for
other controls, nothing else escaped), and integers within +-(2**53 - 1) print
as ECMAScript prints them. tests/test_canonical.py checks the two agree.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

MAX_SAFE_INTEGER = 2**53 - 1

_encoder = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


class CanonicalError(ValueError):
    """A value that has no RFC 8785 form (NaN, an unsafe integer, a lone surrogate...)."""


def _is_plain(value: Any) -> bool:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii() or not _is_plain(item):
                return False
        return True
    if kind is list:
        return all(_is_plain(item) for item in value)
    return False


def canonicalize(value: Any) -> bytes:
    """The RFC 8785 bytes of `value` (UTF-8)."""
    if _is_plain(value):
        try:
            return _encoder.encode(value).encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate in a string
            raise CanonicalError(f"not valid Unicode: {exc.reason}") from exc
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CanonicalError(str(exc)) from exc


def canonicalize_validated(value: Any) -> bytes:
    """canonicalize() for a value already known to hold no floats and no unsafe integers
    (an event the vocabulary accepted). If the encoding is pure ASCII every key is
    ASCII, so the standard encoder's bytes are canonical without walking the value."""
    try:
        text = _encoder.encode(value)
    except (TypeError, ValueError) as exc:
        raise CanonicalError(str(exc)) from exc
    if text.isascii():
        return text.encode("ascii")
    return canonicalize(value)


def _refuse_float(text: str) -> Any:
    raise CanonicalError(f"a non-integer number {text} (leaves hold integers only)")


def _safe_int(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_SAFE_INTEGER:
        raise CanonicalError(f"integer {text} is outside +-(2**53 - 1)")
    return value


_decoder = json.JSONDecoder(parse_float=_refuse_float, parse_int=_safe_int)


def loads_canonical(data: bytes) -> Any:
    """Parses `data` and checks that it is exactly RFC 8785 JSON; raises CanonicalError if not.

    Floats and unsafe integers are refused while parsing, so when the bytes are
    plain ASCII (hence every key is ASCII) the standard encoder's output is the
    canonical form and one comparison decides, without walking the value.
    """
    try:
        value = _decoder.decode(data.decode("utf-8"))
    except ValueError as exc:  # JSONDecodeError, or our CanonicalError (a ValueError)
        raise CanonicalError(str(exc)) from exc
    except RecursionError as exc:  # the parser's own limit (about 1,000 levels): not an entry
        raise CanonicalError("nested too deeply to parse") from exc
    if data.isascii():
        try:
            canonical = _encoder.encode(value).encode("utf-8")
        except UnicodeEncodeError as exc:  # an escaped lone surrogate
            raise CanonicalError(f"not valid Unicode: {exc.reason}") from exc
    else:
        canonical = canonicalize(value)
    if canonical != data:
        raise CanonicalError("not in RFC 8785 canonical form")
    return value
