"""The auditors' status page and the monthly report under a tlog-policy: who cosigned, is it met."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from auditor_site import MONTH, PASSWORD, build_site
from conftest import event
from test_datasette import Client

from datasette_plugins import make_datasette
from kansa.report import render_report
from ledger import Ledger, Submission
from ledger.cosignature import Cosigner
from ledger.policy import load_policy
from ledger.witness import Witness

NOW = datetime(2026, 10, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("witnessed-site")
    built = build_site(root)
    db = built["db"]
    with Ledger.open(db) as ledger, Witness.init(root / "witness", "city.example/w") as witness:
        witness.add_log(ledger.origin, ledger.verifier.vkey, now=NOW)
        latest = ledger.latest_checkpoint()
        assert latest is not None
        answer = witness.add_checkpoint(f"old 0\n\n{latest.note}".encode(), now=NOW)
        ledger.add_cosigned_checkpoint(latest.note + answer.body, now=NOW)
        log_line = f"log {ledger.verifier.vkey}\n"
        other = Cosigner.generate("other.example/w").key.vkey
        (root / "met.policy").write_text(f"{log_line}witness city {witness.vkey}\nquorum city\n")
        both = f"witness city {witness.vkey}\nwitness other {other}\ngroup both all city other\nquorum both\n"
        (root / "unmet.policy").write_text(log_line + both)
    return {**built, "root": root}


def client_for(site: dict[str, Any], policy: str) -> Client:
    policy_path = site["root"] / f"{policy}.policy"
    return Client(
        make_datasette(site["db"], secret="s", verify_in_background=False, policy=load_policy(policy_path))
    )


@pytest.fixture
def met(site: dict[str, Any]) -> Iterator[Client]:
    c = client_for(site, "met")
    assert c.login("alice", PASSWORD).status_code == 302
    yield c
    c.close()


def test_status_page_shows_the_cosigners_and_the_quorum_met(site: dict[str, Any], met: Client) -> None:
    data = met.get("/-/kansa/status.json").json()["witnesses"]
    assert data["cosigners"] == ["city"] and data["met"] is True and data["quorum"] == "city"
    assert data["trusted_size"] == data["size"] and data["problem"] is None
    page = met.get("/-/kansa/status").text
    assert "証人の連署 Witness cosignatures" in page and "✔ 定足数を満たしています quorum met" in page
    assert "証人 city の連署（city）" in page  # the quorum in words beside the policy's name for it


def test_status_page_says_waiting_when_the_quorum_is_not_met(site: dict[str, Any]) -> None:
    c = client_for(site, "unmet")
    try:
        assert c.login("alice", PASSWORD).status_code == 302
        data = c.get("/-/kansa/status.json").json()["witnesses"]
        assert data["cosigners"] == ["city"] and data["met"] is False and data["quorum"] == "2 of city, other"
        page = c.get("/-/kansa/status").text
        assert "連署待ち waiting for cosignatures" in page
        assert "city・other の全員の連署（2 of city, other）" in page
    finally:
        c.close()


def test_report_footer_names_the_cosigners(site: dict[str, Any]) -> None:
    html = render_report(site["db"], MONTH, policy=load_policy(Path(site["root"]) / "met.policy")).html
    footer = html.split("<footer>")[1]
    line = "証人の連署 cosigned by: city（ポリシー policy: city、定足数を満たしています quorum met）"
    assert f'<p id="cosigners">{line}</p>' in footer


def test_quorum_in_words() -> None:
    from compliance.present import quorum_ja
    from ledger.policy import parse_policy

    keys = {n: Cosigner.generate(f"{n}.example/w").key.vkey for n in ("a", "b", "c")}
    witnesses = "".join(f"witness {n} {k}\n" for n, k in keys.items())
    assert quorum_ja(parse_policy("quorum none\n")) == "連署は不要"
    assert quorum_ja(parse_policy(witnesses + "quorum a\n")) == "証人 a の連署"
    two = witnesses + "group g 2 a b c\nquorum g\n"
    assert quorum_ja(parse_policy(two)) == "a・b・c のうち 2 者の連署"
    nested = witnesses + "group g any a b\ngroup h all g c\nquorum h\n"
    assert quorum_ja(parse_policy(nested)) == "グループ g・c の全員の連署"


def test_status_page_checks_the_policy_again_only_when_a_checkpoint_is_stored(
    site: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from datasette_plugins import pages

    for name in ("ledger.db", "ledger.db.key", "ledger.compliance.db", "ledger.auditors.json"):
        shutil.copy(site["db"].parent / name, tmp_path / name)
    calls: list[int] = []
    real = pages.witness_status

    def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pages, "witness_status", counted)
    policy = load_policy(site["root"] / "met.policy")
    c = Client(make_datasette(tmp_path / "ledger.db", secret="s", verify_in_background=False, policy=policy))
    try:
        assert c.login("alice", PASSWORD).status_code == 302
        first = c.get("/-/kansa/status.json").json()["witnesses"]
        assert c.get("/-/kansa/status.json").json()["witnesses"] == first and len(calls) == 1
        with Ledger.open(tmp_path / "ledger.db", key_path=tmp_path / "ledger.db.key") as ledger:
            ledger.append([Submission(event()) for _ in range(3)], now=NOW)
            ledger.sign_checkpoint(now=NOW)
        later = c.get("/-/kansa/status.json").json()["witnesses"]
        assert len(calls) == 2 and later["size"] == first["size"] + 3 and later["met"] is False
    finally:
        c.close()
