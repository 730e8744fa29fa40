"""The city's target file in, encrypted out; nothing personal reaches the ledger; destroyed means gone."""

from __future__ import annotations

import base64
import hashlib
import json
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


def importer(tmp_path: Path, ledger_signer, led: Ledger | None = None):
    led = led or Ledger.create(tmp_path / "ledger.db", origin=ORIGIN, signer=ledger_signer, now=NOW)
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


@pytest.mark.parametrize(("option", "value"), [("month", "2026-9"), ("batch", "B" * 65), ("media", "")])
def test_what_the_ledger_would_refuse_is_refused_before_the_store_takes_the_batch(
    tmp_path: Path, ledger_signer, option: str, value: str
) -> None:
    """kansa custody import --month 2026-9 put the batch in the store, then the ledger refused
    its events (data.month: must be a month YYYY-MM), and would refuse them again."""
    led = Ledger.create(tmp_path / "ledger.db", origin=ORIGIN, signer=ledger_signer, now=NOW)
    store = DataStore(tmp_path / "store.db")
    given = {"batch": "B2026-09", "month": "2026-09", "media": "USB-1", option: value}
    with pytest.raises(TargetFileError, match=option):
        import_targets(
            target_file(tmp_path),
            **given,
            store=store,
            append=lambda events: led.append([Submission(e) for e in events], now=NOW),
            custodian="cus01",
            received_from="city01",
            encrypted=True,
            transport="hand_delivery",
            now=datetime(2026, 9, 1, 10, tzinfo=UTC),
        )
    assert led.size == 0 and store.batches() == []


def test_destroying_a_batch_makes_it_unreadable_and_the_ledger_still_verifies(
    tmp_path: Path, ledger_signer
) -> None:
    led, store, run = importer(tmp_path, ledger_signer)
    parsed = run(target_file(tmp_path))
    ref = parsed.residents[0].case_ref
    assert store.read(ref).name == "長岡 太郎"
    key_files = list(store.key_dir.glob("K*.key"))  # the batch's (S*.key is the contract's secret)
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
    assert not list(store.key_dir.glob("K*.key"))
    with pytest.raises(Destroyed):
        store.destroy("B2026-09")
    with pytest.raises(DataStoreError):
        store.read("C-nope")
    assert verify_ledger(tmp_path / "ledger.db").ok


# -- one case per resident for the whole contract (events.md "Cases") ---------------------

OCTOBER = [
    # The same resident, its mobile kept, its landline changed: ref 1 stays, the new number is 3.
    "2026-0001,長岡 太郎,090-1234-5678,0258-99-0000,初期滞納,9000,新潟県長岡市幸町2-1-1\n",
    "2026-0004,栃尾 三郎,090-5555-6666,,その他,5000,\n",
]


def opened(led: Ledger) -> list[dict]:
    events = [__import__("json").loads(led.leaf(i))["event"] for i in range(led.size)]
    return [e for e in events if e["type"] == "case.opened"]


def import_two_months(tmp_path: Path, ledger_signer):
    led, store, run = importer(tmp_path, ledger_signer)
    september = run(target_file(tmp_path), batch="B2026-09")
    (tmp_path / "oct").mkdir()
    october = run(target_file(tmp_path / "oct", OCTOBER), batch="B2026-10")
    return led, store, september, october


def test_a_resident_listed_again_is_the_same_case_and_keeps_its_numbers(
    tmp_path: Path, ledger_signer
) -> None:
    led, store, september, october = import_two_months(tmp_path, ledger_signer)
    sep, oct_ = september.residents[0], october.residents[0]
    assert sep.case_number == oct_.case_number == "2026-0001"
    assert sep.case_ref == oct_.case_ref
    assert october.residents[1].case_ref not in {r.case_ref for r in september.residents}
    assert sep.number_refs == ("1", "2") and oct_.number_refs == ("1", "3")
    cases = opened(led)
    relisted = [e for e in cases if e["data"]["case"] == sep.case_ref]
    assert [(e["data"]["batch"], e["data"]["numbers"]) for e in relisted] == [
        ("B2026-09", [{"ref": "1", "kind": "mobile"}, {"ref": "2", "kind": "landline"}]),
        ("B2026-10", [{"ref": "1", "kind": "mobile"}, {"ref": "3", "kind": "landline"}]),
    ]
    # Opaque: not the 案件番号, nor its plain hash; another contract's secret gives other refs.
    assert "2026" not in sep.case_ref
    assert hashlib.sha256(b"2026-0001").hexdigest()[:16] not in sep.case_ref
    other = DataStore(tmp_path / "other.db")
    assert other.case_ref("2026-0001") != sep.case_ref
    assert store.case_ref("2026-0001") == sep.case_ref
    # Once per batch in the store; a read is the newest batch's record.
    rows = store._db.execute("SELECT batch FROM records WHERE case_ref = ?", (sep.case_ref,)).fetchall()
    assert sorted(rows) == [("B2026-09",), ("B2026-10",)]
    assert store.read(sep.case_ref).amount == 9000
    assert store.read(sep.case_ref).phone("3") == "0258990000"
    secret = [p for p in store.key_dir.glob("S*.key")]
    assert len(secret) == 1 and oct(secret[0].stat().st_mode & 0o777) == "0o600"


def test_destroying_a_batch_destroys_its_records_only(tmp_path: Path, ledger_signer) -> None:
    led, store, september, october = import_two_months(tmp_path, ledger_signer)
    ref = september.residents[0].case_ref
    store.destroy("B2026-10")
    assert store.read(ref).amount == 12000  # September's record, still readable
    with pytest.raises(Destroyed):
        store.read(october.residents[1].case_ref)
    store.destroy("B2026-09")
    with pytest.raises(Destroyed):
        store.read(ref)
    # The contract's secret stays: a resident listed again keeps its reference.
    assert store.case_ref("2026-0001") == ref and list(store.key_dir.glob("S*.key"))


def test_destroying_the_contract_destroys_its_secret(tmp_path: Path, ledger_signer) -> None:
    led, store, september, october = import_two_months(tmp_path, ledger_signer)
    store.destroy("B2026-09")
    batches, secret_id = store.destroy_contract()
    assert [b for b, _ in batches] == ["B2026-10"] and secret_id and secret_id.startswith("S")
    assert not list(store.key_dir.glob("*.key"))
    assert store._db.execute("SELECT count(*) FROM numbers").fetchone() == (0,)
    with pytest.raises(Destroyed):
        store.case_ref("2026-0001")
    with pytest.raises(Destroyed):
        store.destroy_contract()


def test_kansa_custody_destroy_contract_records_every_key(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kansa.cli import main
    from ledger.commands import init_ledger

    db = tmp_path / "ledger.db"
    led, _key = init_ledger(db, origin=ORIGIN, contract="nagaoka-nhi-2026", key_path=None, now=NOW)
    led, store, run = importer(tmp_path, None, led)
    for batch, rows in (("B2026-09", ROWS), ("B2026-10", OCTOBER)):
        (tmp_path / batch).mkdir()
        run(target_file(tmp_path / batch, rows), batch=batch)
    led.close()
    secret_id = store._db.execute("SELECT key_id FROM contract").fetchone()[0]
    store.close()
    args = ["--store", str(tmp_path / "store.db"), "--ledger", str(db), "--by", "cus01"]
    runner = CliRunner()
    one = runner.invoke(main, ["custody", "destroy", "B2026-09", *args])
    assert one.exit_code == 0, one.output
    assert runner.invoke(main, ["custody", "destroy", *args]).exit_code == 2  # BATCH or --contract
    end = runner.invoke(main, ["custody", "destroy", "--contract", *args])
    assert end.exit_code == 0, end.output
    assert "batch B2026-10: key K" in end.output and secret_id in end.output
    events = [
        json.loads(line) for line in runner.invoke(main, ["ledger", "export", str(db)]).output.splitlines()
    ]
    leaves = [json.loads(base64.b64decode(e["leaf"]))["event"] for e in events]
    destroyed = [e["data"] for e in leaves if e["type"] == "custody.destroyed"]
    assert [d["batch"] for d in destroyed] == ["B2026-09", "B2026-10"]
    assert destroyed[1]["keys"][-1] == secret_id and len(destroyed[1]["keys"]) == 2
    again = runner.invoke(main, ["custody", "destroy", "--contract", *args])
    assert again.exit_code == 1 and "already destroyed" in again.output
    with DataStore(tmp_path / "store.db") as store:
        assert not list(store.key_dir.glob("*.key"))


def test_kansa_custody_destroy_keeps_the_events_when_the_append_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keys are shredded before the ledger is written: if the append then fails, the
    custody.destroyed events wait in a file beside the store, and `kansa ledger append` takes
    them. (The failing append is a stand-in for a full disk, which cannot be made here.)"""
    from click.testing import CliRunner

    from kansa.cli import main
    from ledger import Ledger
    from ledger.commands import init_ledger

    db = tmp_path / "ledger.db"
    led, _key = init_ledger(db, origin=ORIGIN, contract="nagaoka-nhi-2026", key_path=None, now=NOW)
    led, store, run = importer(tmp_path, None, led)
    (tmp_path / "B2026-09").mkdir()
    run(target_file(tmp_path / "B2026-09", ROWS), batch="B2026-09")
    led.close()
    store.close()
    args = ["--store", str(tmp_path / "store.db"), "--ledger", str(db), "--by", "cus01"]
    runner = CliRunner()
    real_append = Ledger.append

    def full_disk(self: Ledger, *a: object, **k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Ledger, "append", full_disk)
    failed = runner.invoke(main, ["custody", "destroy", "B2026-09", *args])
    assert failed.exit_code == 1 and "No space left on device" in failed.output
    pending = tmp_path / "store.db.destroyed-pending.jsonl"
    assert str(pending) in failed.output
    kept = [json.loads(line) for line in pending.read_text(encoding="utf-8").splitlines()]
    assert [(e["type"], e["data"]["batch"]) for e in kept] == [("custody.destroyed", "B2026-09")]
    with DataStore(tmp_path / "store.db") as store:
        assert not list(store.key_dir.glob("K*.key"))  # the batch key is shredded all the same

    monkeypatch.setattr(Ledger, "append", real_append)
    # Until they are appended, no other destruction may run: its file would overwrite them.
    refused = runner.invoke(main, ["custody", "destroy", "--contract", *args])
    assert refused.exit_code == 1 and "holds events of an earlier run" in refused.output
    with DataStore(tmp_path / "store.db") as store:
        assert list(store.key_dir.glob("S*.key"))  # the contract's secret is still there
    later = runner.invoke(main, ["ledger", "append", str(db), str(pending)])
    assert later.exit_code == 0, later.output
    exported = runner.invoke(main, ["ledger", "export", str(db)]).output.splitlines()
    leaves = [json.loads(base64.b64decode(json.loads(e)["leaf"]))["event"] for e in exported]
    assert [e["id"] for e in leaves if e["type"] == "custody.destroyed"] == [kept[0]["id"]]
