"""Importing the city's target file (架電対象データ): CSV with Japanese headers.

The layout is documented in docs/targets.md with a sample file. The file may be
UTF-8, UTF-8 with a BOM, or CP932 (Shift_JIS as Windows writes it); the
encoding is detected. Every bad row is reported with its line number, and
nothing is imported unless the whole file is good.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ledger.event import envelope
from ledger.vocabulary import EventError, load_vocabulary

from .datastore import DataStore, DataStoreError, Resident, new_ref

REQUIRED = ("案件番号", "氏名", "電話番号1", "電話番号2", "滞納区分", "滞納額")
OPTIONAL = ("住所", "生年月日", "備考")
CATEGORIES = {
    "初期滞納": "initial",
    "長期・高額滞納": "long_term_high",
    "分納不履行": "installment_default",
    "その他": "other",
}
MAX_NUMBERS = 2
_EXTRA_PHONE = re.compile(r"電話番号([3-9]|\d\d+)")


class TargetFileError(Exception):
    """What is wrong with the file, line by line. Nothing was imported."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def decode(raw: bytes) -> tuple[str, str]:
    """The text and the encoding it was in: UTF-8 with BOM, UTF-8, or CP932."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8"), "utf-8-sig"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp932"), "cp932"
    except UnicodeDecodeError as exc:
        raise TargetFileError(
            [
                f"文字コードを判別できません（UTF-8 でも CP932 でもない）: byte {exc.start}"
                " / the file is neither UTF-8 nor CP932"
            ]
        ) from exc


def normalise_phone(text: str) -> str:
    """Digits only, full-width and separators folded; +81 becomes 0."""
    folded = unicodedata.normalize("NFKC", text).strip()
    folded = re.sub(r"[\s\-‐‑–—ー－()（）]", "", folded)
    if folded.startswith("+81"):
        folded = "0" + folded[3:]
    return folded


def classify(number: str) -> str | None:
    """mobile (070/080/090), ip (050), landline (area code), tollfree (0120/0800); None if malformed."""
    # 0800 is free dial, though 080 begins mobile numbers: look at free dial first.
    if re.fullmatch(r"0120\d{6}|0800\d{7}", number):
        return "tollfree"
    if re.fullmatch(r"0[789]0\d{8}", number):
        return "mobile"
    if re.fullmatch(r"050\d{8}", number):
        return "ip"
    # Area codes never begin 050-090: a 10-digit "090..." is a malformed mobile number.
    if re.fullmatch(r"0(?![5-9]0)[1-9]\d{8}", number):
        return "landline"
    return None


# events.md's case.opened knows mobile, landline, ip and unknown: free dial is "unknown".
EVENT_KIND = {"mobile": "mobile", "landline": "landline", "ip": "ip", "tollfree": "unknown"}


@dataclass(frozen=True)
class ParsedFile:
    residents: list[Resident]
    kinds: dict[str, list[str]]  # case_ref -> kinds of its numbers, in the order of number_refs
    sha256: str
    encoding: str


def parse_targets(raw: bytes) -> ParsedFile:
    """The file's residents, checked. Their references here are random placeholders: an import
    gives each the contract's stable references (DataStore.add_batch)."""
    text, encoding = decode(raw)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration as exc:
        raise TargetFileError(["1行目: 見出し行がありません / the file is empty"]) from exc
    problems = [
        f"1行目: 必須の列「{name}」がありません / missing column {name}"
        for name in REQUIRED
        if name not in header
    ]
    if problems:
        raise TargetFileError(problems)
    extra_phones = [h for h in header if _EXTRA_PHONE.fullmatch(h)]
    residents: list[Resident] = []
    kinds: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(
                f"{line}行目: 列の数が {len(row)}（見出しは {len(header)}）/ {len(row)} columns,"
                f" the header has {len(header)}"
            )
            continue
        cells = {h: c.strip() for h, c in zip(header, row, strict=True)}
        number = cells["案件番号"]
        where = f"{line}行目（案件番号 {number or '空'}）"
        if not number:
            problems.append(f"{line}行目: 案件番号が空です / empty case number")
            continue
        if number in seen:
            problems.append(
                f"{where}: 案件番号が{seen[number]}行目と重複 / duplicate case number (line {seen[number]})"
            )
            continue
        seen[number] = line
        phones = [cells["電話番号1"], cells["電話番号2"]] + [cells[h] for h in extra_phones]
        phones = [p for p in phones if p]
        if len(phones) > MAX_NUMBERS:
            problems.append(
                f"{where}: 電話番号が{len(phones)}件（1案件につき最大{MAX_NUMBERS}件）/"
                f" {len(phones)} numbers, at most {MAX_NUMBERS} a case"
            )
            continue
        if not phones:
            problems.append(f"{where}: 電話番号がありません / no phone number")
            continue
        normalised, classes = [], []
        for phone in phones:
            digits = normalise_phone(phone)
            kind = classify(digits)
            if kind is None:
                problems.append(
                    f"{where}: 電話番号「{phone}」の形式が正しくありません / malformed phone number"
                )
            normalised.append(digits)
            classes.append(kind or "")
        if cells["滞納区分"] not in CATEGORIES:
            problems.append(
                f"{where}: 滞納区分「{cells['滞納区分']}」は {'・'.join(CATEGORIES)} のいずれか /"
                " unknown arrears category"
            )
        amount_text = unicodedata.normalize("NFKC", cells["滞納額"]).replace(",", "").replace("円", "")
        if not amount_text.isdigit():
            problems.append(
                f"{where}: 滞納額「{cells['滞納額']}」が数値ではありません / the amount is not a number"
            )
        if not cells["氏名"]:
            problems.append(f"{where}: 氏名が空です / empty name")
        if problems and problems[-1].startswith(where):
            continue
        ref = new_ref("C")
        residents.append(
            Resident(
                case_ref=ref,
                case_number=number,
                name=cells["氏名"],
                numbers=tuple(normalised),
                category=CATEGORIES[cells["滞納区分"]],
                amount=int(amount_text),
                extra={h: cells[h] for h in OPTIONAL if cells.get(h)},
            )
        )
        kinds[ref] = [EVENT_KIND[k] for k in classes]
    if problems:
        raise TargetFileError(problems)
    if not residents:
        raise TargetFileError(["対象者が1件もありません / no targets in the file"])
    return ParsedFile(residents, kinds, hashlib.sha256(raw).hexdigest(), encoding)


Append = Callable[[list[dict[str, Any]]], Any]


def import_targets(
    path: Path | str,
    *,
    batch: str,
    month: str,
    store: DataStore,
    append: Append,
    custodian: str,
    received_from: str,
    media: str,
    encrypted: bool,
    transport: str,
    now: datetime,
    new_id: Callable[[], str] | None = None,
) -> ParsedFile:
    """Parses the file (all or nothing), encrypts it into the store, and appends
    custody.received, custody.imported and one case.opened per case (ids from `new_id`, or
    fresh UUIDv7s), all written by the custodian who imports. A resident listed in an earlier
    month keeps its case reference, and each of its numbers keeps its reference while it is
    the same number."""
    raw = Path(path).read_bytes()
    parsed = parse_targets(raw)
    received = {
        "batch": batch,
        "media": media,
        "sha256": parsed.sha256,
        "records": len(parsed.residents),
        "from": received_from,
        "encrypted": encrypted,
        "transport": transport,
    }
    imported = {"batch": batch, "records": len(parsed.residents), "sha256": parsed.sha256}
    # What the ledger would refuse (a month 2026-9, a batch of 65 characters) is refused before
    # the store takes the batch: its events could never be appended afterwards either.
    vocabulary = load_vocabulary()
    opened = {"case": "C0", "batch": batch, "month": month, "category": "other", "numbers": []}
    trial = (("custody.received", received), ("custody.imported", imported), ("case.opened", opened))
    for kind, data in trial:
        try:
            vocabulary.validate(envelope(kind, custodian, data, now))
        except EventError as exc:
            raise TargetFileError([f"{kind} {exc}"]) from exc
    _key_id, placed = store.add_batch(batch, month, parsed.residents)
    kinds = {
        new.case_ref: parsed.kinds[old.case_ref] for old, new in zip(parsed.residents, placed, strict=True)
    }
    parsed = replace(parsed, residents=placed, kinds=kinds)

    def event(kind: str, actor: str, data: dict[str, Any]) -> dict[str, Any]:
        return envelope(kind, actor, data, now, event_id=new_id() if new_id is not None else None)

    events = [event("custody.received", custodian, received), event("custody.imported", custodian, imported)]
    for resident in parsed.residents:
        numbers = [
            {"ref": ref, "kind": kind}
            for ref, kind in zip(resident.number_refs, parsed.kinds[resident.case_ref], strict=True)
        ]
        category = resident.category
        events.append(
            event(
                "case.opened",
                custodian,
                {
                    "case": resident.case_ref,
                    "batch": batch,
                    "month": month,
                    "category": category,
                    "numbers": numbers,
                },
            )
        )
    append(events)
    return parsed


def destroy_targets(
    store: DataStore,
    *,
    batch: str | None,
    custodian: str,
    now: datetime,
    new_id: Callable[[], str] | None = None,
) -> list[dict[str, Any]]:
    """Crypto-shreds one batch (`batch`), or the whole contract's data at its end (`batch` None):
    every batch not yet destroyed and the contract's secret that maps 案件番号 to references.
    Returns the custody.destroyed events to append, one per batch, with the ids of the keys
    destroyed; the secret's id (`S…`) is listed with the last batch destroyed, or, when every
    batch was destroyed before, in a custody.destroyed of the newest batch naming it alone."""

    def destroyed(of: str, keys: list[str]) -> dict[str, Any]:
        data = {"batch": of, "method": "crypto_shred", "keys": keys}
        return envelope("custody.destroyed", custodian, data, now, event_id=new_id() if new_id else None)

    if batch is not None:
        return [destroyed(batch, [store.destroy(batch)])]
    known = store.batches()
    if not known:
        raise DataStoreError("the store holds no batch: nothing to destroy")
    batches, secret_id = store.destroy_contract()
    events = [destroyed(b, [key_id]) for b, key_id in batches]
    if secret_id is not None:
        if events:
            events[-1]["data"]["keys"].append(secret_id)
        else:
            newest = max(known, key=lambda b: (b[1], b[0]))[0]
            events.append(destroyed(newest, [secret_id]))
    return events
