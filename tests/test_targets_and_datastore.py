"""The city's target file in, encrypted out; nothing personal reaches the ledger; destroyed means gone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import NOW, ORIGIN

from dialer_core.datastore import DataStore, DataStoreError, Destroyed
from dialer_core.targets import TargetFileError, classify, import_targets, normalise_phone, parse_targets
from ledger import Ledger, Submission, verify_ledger

HEADER = "案件番号,氏名,電話番号1,電話番号2,滞納区分,滞納額,住所\n"
ROWS = [
    "2026-0001,長岡 太郎,090-1234-5678,0258-35-1234,初期滞納,12000,新潟県長岡市幸町2-1-1\n",
    '2026-0002,信濃 花子,０８０（９８７６）５４３２,,長期・高額滞納,"1,250,000",新潟県長岡市大手通1-1\n',
    "2026-0003,寺泊 次郎,050-1111-2222,,分納不履行,3400円,\n",
]


def target_file(
    tmp_path: Path,
    rows: list[str] | None = None,
    header: str = HEADER,
    encoding: str = "utf-8",
    bom: bool = False,
) -> Path:
    path = tmp_path / "targets.csv"
    text = header + "".join(ROWS if rows is None else rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    return path


@pytest.mark.parametrize("encoding, bom", [("utf-8", False), ("utf-8", True), ("cp932", False)])
def test_the_encoding_is_detected(tmp_path: Path, encoding: str, bom: bool) -> None:
    parsed = parse_targets(target_file(tmp_path, encoding=encoding, bom=bom).read_bytes())
    assert [r.name for r in parsed.residents] == ["長岡 太郎", "信濃 花子", "寺泊 次郎"]
    assert parsed.encoding == ("utf-8-sig" if bom else encoding)


def test_numbers_are_normalised_and_classified(tmp_path: Path) -> None:
    parsed = parse_targets(target_file(tmp_path).read_bytes())
    first, second, third = parsed.residents
    assert first.numbers == ("09012345678", "0258351234")
    assert parsed.kinds[first.case_ref] == ["mobile", "landline"]
    assert second.numbers == ("08098765432",) and second.amount == 1_250_000
    assert parsed.kinds[third.case_ref] == ["ip"] and third.amount == 3400
    assert first.category == "initial" and second.category == "long_term_high"
    assert first.extra == {"住所": "新潟県長岡市幸町2-1-1"}


@pytest.mark.parametrize(
    "number, kind",
    [
        ("090-1234-5678", "mobile"),
        ("070 1234 5678", "mobile"),
        ("+81-80-1234-5678", "mobile"),
        ("050-1234-5678", "ip"),
        ("0120-123-456", "tollfree"),
        ("0800-123-4567", "tollfree"),
        ("0258-35-1234", "landline"),
        ("03-1234-5678", "landline"),
        ("1234-5678", None),
        ("090-1234-567", None),
    ],
)
def test_classify(number: str, kind: str | None) -> None:
    assert classify(normalise_phone(number)) == kind


@pytest.mark.parametrize(
    "header, rows, expected",
    [
        (HEADER, [ROWS[0], ROWS[0]], "3行目（案件番号 2026-0001）: 案件番号が2行目と重複"),
        (
            "案件番号,氏名,電話番号1,電話番号2,電話番号3,滞納区分,滞納額\n",
            ["2026-0001,長岡 太郎,090-1234-5678,0258-35-1234,090-0000-0000,初期滞納,12000\n"],
            "2行目（案件番号 2026-0001）: 電話番号が3件（1案件につき最大2件）",
        ),
        ("案件番号,氏名,電話番号1,電話番号2,滞納額\n", [], "1行目: 必須の列「滞納区分」がありません"),
        (HEADER, ["2026-0009,長岡 太郎,12345,,初期滞納,100,\n"], "電話番号「12345」の形式が正しくありません"),
        (HEADER, ["2026-0009,長岡 太郎,090-1234-5678,,延滞,100,\n"], "滞納区分「延滞」"),
        (
            HEADER,
            ["2026-0009,長岡 太郎,090-1234-5678,,初期滞納,たくさん,\n"],
            "滞納額「たくさん」が数値ではありません",
        ),
    ],
)
def test_broken_files_name_each_problem_with_its_line(
    tmp_path: Path, header: str, rows: list[str], expected: str
) -> None:
    with pytest.raises(TargetFileError) as err:
        parse_targets(target_file(tmp_path, rows, header).read_bytes())
    assert any(expected in p for p in err.value.problems), err.value.problems


def test_bad_encoding_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(HEADER.encode() + b"\x81\xff\xfe\x00 broken\n")
    with pytest.raises(TargetFileError, match="文字コード"):
        parse_targets(path.read_bytes())


def importer(tmp_path: Path, ledger_signer):
    led = Ledger.create(tmp_path / "ledger.db", origin=ORIGIN, signer=ledger_signer, now=NOW)
    store = DataStore(tmp_path / "store.db")

    def run(path: Path, batch: str = "B2026-09") -> object:
        return import_targets(
            path,
            batch=batch,
            month="2026-09",
            store=store,
            append=lambda events: led.append([Submission(e) for e in events], now=NOW),
            custodian="cus01",
            received_from="city01",
            media="USB-1",
            encrypted=True,
            transport="hand_delivery",
            now=datetime(2026, 9, 1, 10, tzinfo=UTC),
            new_id=lambda: str(uuid.uuid4()),
        )

    return led, store, run


def test_import_appends_custody_and_cases_and_nothing_personal(tmp_path: Path, ledger_signer) -> None:
    led, store, run = importer(tmp_path, ledger_signer)
    parsed = run(target_file(tmp_path))
    types = [__import__("json").loads(led.leaf(i))["event"]["type"] for i in range(led.size)]
    assert types == ["custody.received", "custody.imported", "case.opened", "case.opened", "case.opened"]
    led.close()
    store.close()
    ledger_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("ledger.db*"))
    store_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("store.db*") if p.is_file())
    for resident in parsed.residents:
        for secret in (
            resident.name,
            *resident.numbers,
            resident.case_number,
            resident.extra.get("住所", ""),
        ):
            if secret:
                assert secret.encode() not in ledger_bytes, secret
                assert secret.encode() not in store_bytes, secret  # encrypted at rest too
    assert verify_ledger(tmp_path / "ledger.db").ok


def test_a_broken_file_imports_nothing(tmp_path: Path, ledger_signer) -> None:
    led, store, run = importer(tmp_path, ledger_signer)
    with pytest.raises(TargetFileError):
        run(target_file(tmp_path, [ROWS[0], ROWS[0]]))
    assert led.size == 0 and store.batches() == []


def test_destroying_a_batch_makes_it_unreadable_and_the_ledger_still_verifies(
    tmp_path: Path, ledger_signer
) -> None:
    led, store, run = importer(tmp_path, ledger_signer)
    parsed = run(target_file(tmp_path))
    ref = parsed.residents[0].case_ref
    assert store.read(ref).name == "長岡 太郎"
    key_files = list(store.key_dir.glob("*.key"))
    assert len(key_files) == 1 and oct(key_files[0].stat().st_mode & 0o777) == "0o600"
    key_id = store.destroy("B2026-09")
    led.append(
        [
            Submission(
                {
                    "id": "destroy-1",
                    "type": "custody.destroyed",
                    "at": "2026-10-31T10:00:00+09:00",
                    "actor": "cus01",
                    "data": {"batch": "B2026-09", "method": "crypto_shred", "keys": [key_id]},
                }
            )
        ],
        now=NOW,
    )
    with pytest.raises(Destroyed):
        store.read(ref)
    assert not list(store.key_dir.glob("*.key"))
    with pytest.raises(Destroyed):
        store.destroy("B2026-09")
    with pytest.raises(DataStoreError):
        store.read("C-nope")
    assert verify_ledger(tmp_path / "ledger.db").ok
