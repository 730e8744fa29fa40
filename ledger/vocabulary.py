"""Validation of event envelopes against a vocabulary (a JSON data file).

The ledger knows nothing of what the events mean; a vocabulary only says which
types exist and what fields they carry, so that nothing malformed is ever
signed into history. Errors name the field, e.g. `data.ring_s`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import resources
from typing import Any

from .canonical import MAX_SAFE_INTEGER

MAX_ID_LENGTH = 64
# Deeper nesting is refused before anything recursive (the canonical encoder) sees it.
MAX_DEPTH = 32
ENVELOPE_FIELDS = ("id", "type", "at", "actor", "data")

_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONTH = re.compile(r"\d{4}-\d{2}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEYREF = re.compile(r"[^+\s]+\+[0-9a-f]{8}")
# A reference is opaque. Anything shaped like a Japanese phone number (10 or 11
# digits once separators are dropped, starting with 0) is refused, so that a
# careless writer cannot put a resident's number into the ledger as a "ref".
_PHONE_LIKE = re.compile(r"\+?81\d{9,10}|0\d{9,10}")


class EventError(ValueError):
    """An event that does not fit the vocabulary; `field` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def is_rfc3339(value: str) -> bool:
    if not _TIME.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_day(value: str) -> bool:
    if not _DAY.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_month(value: str) -> bool:
    return bool(_MONTH.fullmatch(value)) and 1 <= int(value[5:]) <= 12


def _is_pubkey(value: str) -> bool:  # also a tree hash: 32 bytes in base64
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


_SEPARATORS = re.compile(r"[-()\s]")


def _is_ref(value: str) -> bool:
    if not 0 < len(value) <= MAX_ID_LENGTH:
        return False
    # A phone number has at least 10 digits, so a shorter reference needs no look.
    return len(value) < 10 or not _PHONE_LIKE.fullmatch(_SEPARATORS.sub("", value))


_SCALARS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "str": ("a non-empty string", lambda v: type(v) is str and v != ""),
    "ref": (
        "an opaque reference (1-64 characters, not a phone number)",
        lambda v: type(v) is str and _is_ref(v),
    ),
    "int": ("an integer", lambda v: type(v) is int and abs(v) <= MAX_SAFE_INTEGER),
    "nonneg": ("an integer >= 0", lambda v: type(v) is int and 0 <= v <= MAX_SAFE_INTEGER),
    "bool": ("true or false", lambda v: type(v) is bool),
    "time": ("an RFC 3339 time with an explicit offset", lambda v: type(v) is str and is_rfc3339(v)),
    "day": ("a day YYYY-MM-DD", lambda v: type(v) is str and _is_day(v)),
    "month": ("a month YYYY-MM", lambda v: type(v) is str and _is_month(v)),
    "day_or_month": (
        "a day YYYY-MM-DD or a month YYYY-MM",
        lambda v: type(v) is str and (_is_day(v) or _is_month(v)),
    ),
    "sha256": ("64 lowercase hex digits", lambda v: type(v) is str and bool(_SHA256.fullmatch(v))),
    "pubkey": ("a base64 Ed25519 public key (32 bytes)", lambda v: type(v) is str and _is_pubkey(v)),
    "treehash": ("a base64 SHA-256 tree hash (32 bytes)", lambda v: type(v) is str and _is_pubkey(v)),
    "keyref": ("a key id <name>+<8 hex digits>", lambda v: type(v) is str and bool(_KEYREF.fullmatch(v))),
}


def _first_non_integer_number(path: str, value: Any) -> str | None:
    """Floats and huge integers do not survive a JSON round trip exactly, so a leaf
    holding one could not be re-canonicalized to the same bytes by a verifier."""
    kind = type(value)
    if kind is float or (kind is int and abs(value) > MAX_SAFE_INTEGER):
        return path
    if kind is dict:
        for key, item in value.items():
            found = _first_non_integer_number(f"{path}.{key}", item)
            if found:
                return found
    elif kind is list:
        for i, item in enumerate(value):
            found = _first_non_integer_number(f"{path}[{i}]", item)
            if found:
                return found
    return None


Check = Callable[[Any, str], None]


def _scalar(spec: str) -> Check:
    what, predicate = _SCALARS[spec]

    def check(value: Any, path: str) -> None:
        if not predicate(value):
            raise EventError(path, f"must be {what}; got {value!r}")

    return check


def _enum(allowed: tuple[str, ...]) -> Check:
    members = frozenset(allowed)

    def check(value: Any, path: str) -> None:
        if type(value) is not str or value not in members:
            raise EventError(path, f"must be one of {', '.join(allowed)}; got {value!r}")

    return check


def _list(item: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if type(value) is not list:
            raise EventError(path, "must be a list")
        for i, element in enumerate(value):
            item(element, f"{path}[{i}]")

    return check


def _object(fields: list[tuple[str, str, Check]]) -> Check:
    known = frozenset(name for name, _, _ in fields)

    def check(value: Any, path: str) -> None:
        if type(value) is not dict:
            raise EventError(path, "must be a JSON object")
        for name, modifier, field_check in fields:
            if name not in value:
                if modifier == "optional":
                    continue
                raise EventError(f"{path}.{name}", "is required")
            item = value[name]
            if item is None and modifier == "nullable":
                continue
            field_check(item, f"{path}.{name}")
        if len(value) > len(fields) or not known.issuperset(value):
            # Writers may add fields of their own; they are held to JSON's exact subset.
            for name in value.keys() - known:
                bad = _first_non_integer_number(f"{path}.{name}", value[name])
                if bad is not None:
                    raise EventError(
                        bad,
                        "numbers in events must be integers within +-(2**53 - 1)"
                        " (write other numbers as strings)",
                    )

    return check


def _split(spec: str) -> tuple[str, str]:
    modifier, _, base = spec.partition(" ") if " " in spec else ("", "", spec)
    if modifier not in ("", "optional", "nullable"):
        raise ValueError(f"unknown modifier {modifier!r}")
    return modifier, base


def _compile(spec: str, objects: Mapping[str, Mapping[str, str]]) -> Check:
    if spec.startswith("list:"):
        return _list(_compile(spec[5:], objects))
    if spec.startswith("object:"):
        if spec[7:] not in objects:
            raise ValueError(f"unknown object {spec[7:]!r}")
        return _compile_fields(objects[spec[7:]], objects)
    if spec.startswith("enum:"):
        return _enum(tuple(spec[5:].split(",")))
    if spec not in _SCALARS:
        raise ValueError(f"unknown field type {spec!r}")
    return _scalar(spec)


def _compile_fields(fields: Mapping[str, str], objects: Mapping[str, Mapping[str, str]]) -> Check:
    compiled = []
    for name, spec in fields.items():
        modifier, base = _split(spec)
        compiled.append((name, modifier, _compile(base, objects)))
    return _object(compiled)


@dataclass(frozen=True)
class Vocabulary:
    """Event types and their fields, compiled once into checking functions."""

    name: str
    types: Mapping[str, Mapping[str, str]]
    objects: Mapping[str, Mapping[str, str]]
    checks: Mapping[str, Check] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            checks = {kind: _compile_fields(fields, self.objects) for kind, fields in self.types.items()}
        except ValueError as exc:
            raise ValueError(f"vocabulary {self.name}: {exc}") from exc
        object.__setattr__(self, "checks", checks)

    def validate(self, envelope: Any) -> None:
        """Raises EventError naming the first field that does not fit."""
        if type(envelope) is not dict:
            raise EventError("event", "must be a JSON object")
        if len(envelope) != len(ENVELOPE_FIELDS) or not all(f in envelope for f in ENVELOPE_FIELDS):
            for name in ENVELOPE_FIELDS:
                if name not in envelope:
                    raise EventError(name, "is required")
            extra = sorted(set(envelope) - set(ENVELOPE_FIELDS))
            raise EventError(extra[0], "is not an envelope field (put it in data)")
        event_id = envelope["id"]
        if type(event_id) is not str or not 0 < len(event_id) <= MAX_ID_LENGTH:
            raise EventError("id", f"must be a string of 1 to {MAX_ID_LENGTH} characters")
        if not is_unicode(event_id):
            raise EventError("id", "must be valid Unicode (no lone surrogates)")
        deep = _too_deep(envelope["data"], "data")
        if deep is not None:
            raise EventError(deep, f"is nested deeper than {MAX_DEPTH} levels")
        check = self.checks.get(envelope["type"]) if type(envelope["type"]) is str else None
        if check is None:
            raise EventError("type", f"unknown event type {envelope['type']!r}")
        if type(envelope["at"]) is not str or not is_rfc3339(envelope["at"]):
            raise EventError("at", _SCALARS["time"][0] + f", got {envelope['at']!r}")
        if type(envelope["actor"]) is not str or not envelope["actor"]:
            raise EventError("actor", "must be a non-empty string")
        check(envelope["data"], "data")


def is_unicode(value: str) -> bool:
    """Whether the string can be written as UTF-8 (no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _too_deep(value: Any, path: str) -> str | None:
    """The path of the first container nested deeper than MAX_DEPTH (iteratively: no recursion)."""
    stack: list[tuple[Any, str, int]] = [(value, path, 1)]
    while stack:
        item, where, depth = stack.pop()
        if type(item) not in (dict, list):
            continue
        if depth > MAX_DEPTH:
            return where
        children = item.items() if type(item) is dict else enumerate(item)
        for key, child in children:
            if type(child) in (dict, list):
                stack.append(
                    (child, f"{where}.{key}" if type(item) is dict else f"{where}[{key}]", depth + 1)
                )
    return None


def load_vocabulary(name: str = "kansa-events-v1") -> Vocabulary:
    """A vocabulary shipped with the ledger package, by name."""
    text = resources.files("ledger").joinpath("vocabularies", f"{name}.json").read_text("utf-8")
    raw = json.loads(text)
    return Vocabulary(raw["name"], raw["types"], raw["objects"])
