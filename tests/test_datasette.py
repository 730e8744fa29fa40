"""The auditors' Datasette through Datasette's own test client (issue 6)."""

from __future__ import annotations

import asyncio
import html
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from auditor_site import MONTH, PASSWORD, access_entries, build_site
from click.testing import CliRunner
from datasette.utils import baseconv

from compliance import load_profile
from datasette_plugins import make_datasette
from datasette_plugins.access_log import default_access_log_path
from kansa.cli import main
from ledger import Ledger, verify_inclusion, verify_ledger
from ledger.access import MAX_FAILURES
from ledger.note import b64decode


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_site(tmp_path_factory.mktemp("auditors"))


class Client:
    """Datasette's in-process client, driven synchronously, with a cookie jar."""

    def __init__(self, datasette: Any) -> None:
        self.ds = datasette
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(datasette.invoke_startup())
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        cookies = {**self.cookies, **kwargs.pop("cookies", {})}
        response = self.loop.run_until_complete(
            self.ds.client.request(method, path, cookies=cookies, follow_redirects=False, **kwargs)
        )
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def csrf(self) -> tuple[str, dict[str, str]]:
        # Datasette 1.0a41 checks Sec-Fetch-Site/Origin rather than a token cookie; the
        # form still carries a token field, sent as a browser would.
        page = self.get("/-/login")
        token = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        return token, {}

    def login(self, name: str, password: str) -> Any:
        token, cookies = self.csrf()
        response = self.request(
            "POST",
            "/-/login",
            data={"username": name, "password": password, "csrftoken": token},
            cookies=cookies,
        )
        if "ds_actor" in response.cookies:
            self.cookies["ds_actor"] = response.cookies["ds_actor"]
        return response

    def close(self) -> None:
        self.ds.kansa_site.log.close()
        self.ds.kansa_site.sessions.close()
        self.loop.close()


@pytest.fixture
def client(site: dict[str, Any]) -> Iterator[Client]:
    c = Client(make_datasette(site["db"], secret="test-secret", verify_in_background=False))
    yield c
    c.close()


def read_paths(site: dict[str, Any]) -> list[str]:
    """Every kind of read page, in HTML, JSON and CSV where Datasette offers them."""
    idx = site["late_index"]
    paths = [
        "/",
        "/.json",
        "/-/",
        "/-/versions.json",
        "/-/plugins.json",
        "/-/settings.json",
        "/-/config.json",
    ]
    paths += ["/-/databases.json", "/-/schema", "/-/queries.json"]
    for database, tables in {
        "ledger": ["meta", "entries", "tree_nodes", "checkpoints"],
        "compliance": ["runs", "findings", "clauses", "kpis"],
        "access": ["meta", "entries", "checkpoints"],
    }.items():
        paths += [f"/{database}", f"/{database}.json", f"/{database}/-/schema"]
        for table in tables:
            paths += [f"/{database}/{table}", f"/{database}/{table}.json", f"/{database}/{table}.csv"]
    paths += ["/ledger/entries/1", "/ledger/entries/1.json", "/compliance/findings/1.json"]
    for query in ("sms_without_lookup", "sms_possibly_reassigned", "calls_by_hour"):
        paths += [f"/ledger/{query}", f"/ledger/{query}.json", f"/ledger/{query}.csv"]
    paths += [f"/ledger/custody_timeline?month={MONTH}", f"/ledger/custody_timeline.json?month={MONTH}"]
    for query in ("calls_outside_hours", "numbers_attempts_findings", "late_reports"):
        paths += [f"/compliance/{query}", f"/compliance/{query}.json", f"/compliance/{query}.csv"]
    paths += [
        "/-/kansa/status",
        "/-/kansa/status.json",
        f"/-/kansa/entry/{idx}",
        f"/-/kansa/entry/{idx}.json",
    ]
    paths += ["/-/kansa/findings", f"/-/kansa/findings?month={MONTH}", "/-/kansa/kpis"]
    paths += [f"/-/kansa/month/{MONTH}", f"/-/kansa/attempts?month={MONTH}", "/-/kansa/custody"]
    paths += [f"/-/kansa/case/{site['case']}"]
    return paths


def test_anonymous_is_refused_everything(site: dict[str, Any], client: Client) -> None:
    with Ledger.open(site["db"], readonly=True) as ledger:
        origin = ledger.origin
    for path in read_paths(site) + ["/ledger/-/query?sql=select+1", "/ledger/-/query.json?sql=select+1"]:
        response = client.get(path)
        assert response.status_code == 403, path
        assert origin not in response.text and site["case"] not in response.text, path
    assert client.get("/-/login").status_code == 200  # the one page an anonymous visitor needs


def test_auditor_reads_everything(site: dict[str, Any], client: Client) -> None:
    assert client.login("alice", PASSWORD).status_code == 302
    for path in read_paths(site):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
    rows = client.get("/ledger/entries.json?_shape=array&type=call.dialed&_size=max").json()
    assert any(row["idx"] == site["late_index"] for row in rows)
    assert client.get("/ledger/entries.csv?_stream=on").content.count(b"\n") > 200


def test_ad_hoc_sql_only_for_the_sql_role(client: Client) -> None:
    client.login("alice", PASSWORD)
    assert client.get("/ledger/-/query.json?sql=select+count(*)+from+entries").status_code == 403
    client.login("sam", PASSWORD)
    response = client.get("/ledger/-/query.json?sql=select+count(*)+as+n+from+entries&_shape=array")
    assert response.status_code == 200 and response.json()[0]["n"] > 100
    # ... and even that role cannot write: the connection is read-only and SELECT only.
    response = client.get("/ledger/-/query.json?sql=delete+from+meta")
    assert response.status_code in (400, 403)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/ledger/entries/-/insert", {"row": {"idx": 999999}}),
        ("POST", "/ledger/entries/-/upsert", {"rows": [{"idx": 1}]}),
        ("POST", "/ledger/entries/1/-/update", {"update": {"actor": "x"}}),
        ("POST", "/ledger/entries/1/-/delete", {}),
        ("POST", "/ledger/entries/-/drop", {"confirm": True}),
        ("POST", "/ledger/entries/-/alter", {"operations": []}),
        ("POST", "/ledger/-/create", {"table": "t", "columns": [{"name": "a"}]}),
        ("POST", "/ledger/-/execute-write", {"sql": "delete from meta"}),
        ("POST", "/ledger/-/queries/store", {"name": "q", "sql": "select 1"}),
        ("POST", "/compliance/findings/-/insert", {"row": {"rule": "X"}}),
        ("POST", "/access/entries/1/-/delete", {}),
        ("POST", "/-/create-token", {}),
    ],
)
def test_every_write_path_is_refused(
    site: dict[str, Any], client: Client, method: str, path: str, body: Any
) -> None:
    client.login("sam", PASSWORD)  # the widest role
    before = sqlite3.connect(site["db"]).execute("SELECT count(*) FROM entries").fetchone()
    response = client.request(method, path, json=body, headers={"content-type": "application/json"})
    assert response.status_code in (400, 403, 404, 405), (path, response.status_code, response.text[:200])
    after = sqlite3.connect(site["db"]).execute("SELECT count(*) FROM entries").fetchone()
    assert before == after
    assert verify_ledger(site["db"]).ok


def test_each_request_and_sign_in_is_in_the_access_log(site: dict[str, Any], client: Client) -> None:
    before = len(access_entries(site["db"]))
    assert client.login("alice", "wrong password!!").status_code == 200
    assert client.login("alice", PASSWORD).status_code == 302
    client.get("/ledger/entries?type=call.dialed")
    client.get("/-/kansa/kpis")
    client.get("/-/static/app.css")  # assets are not recorded
    new = access_entries(site["db"])[before:]
    logins = [e["data"] for e in new if e["type"] == "access.login"]
    assert logins == [
        {"person": "alice", "terminal": "127.0.0.1", "success": False},
        {"person": "alice", "terminal": "127.0.0.1", "success": True},
    ]
    requests = [
        (e["actor"], e["data"]["path"], e["data"].get("query"), e["data"]["status"])
        for e in new
        if e["type"] == "access.request"
    ]
    assert requests == [
        ("alice", "/ledger/entries", "type=call.dialed", 200),
        ("alice", "/-/kansa/kpis", None, 200),
    ]
    # The access log is a ledger of its own, with its own origin, and it verifies.
    report = verify_ledger(default_access_log_path(site["db"]))
    assert report.ok, report.reason
    with (
        Ledger.open(default_access_log_path(site["db"]), readonly=True) as log,
        Ledger.open(site["db"], readonly=True) as main_ledger,
    ):
        assert log.origin == main_ledger.origin + "/access-log" and log.vocabulary.name == "kansa-access-v1"
        assert log.verifier.vkey != main_ledger.verifier.vkey
    # ... and the contract's ledger got none of it.
    conn = sqlite3.connect(site["db"])
    assert conn.execute("SELECT count(*) FROM entries WHERE type = 'access.request'").fetchone() == (0,)


def test_sign_out_is_logged_and_ends_the_session(site: dict[str, Any], client: Client) -> None:
    client.login("alice", PASSWORD)
    token, cookies = client.csrf()
    response = client.request("POST", "/-/logout", data={"csrftoken": token}, cookies=cookies)
    assert response.status_code == 302
    assert access_entries(site["db"])[-1]["type"] == "access.logout"


def test_sessions_expire(site: dict[str, Any], client: Client) -> None:
    client.login("alice", PASSWORD)
    signed = client.ds.unsign(client.cookies["ds_actor"], "actor")
    expires = baseconv.base62.decode(signed["e"])
    assert 0 < expires - time.time() <= client.ds.kansa_site.session_seconds
    assert client.get("/ledger").status_code == 200
    stale = client.ds.sign({"a": signed["a"], "e": baseconv.base62.encode(int(time.time()) - 1)}, "actor")
    assert client.get("/ledger", cookies={"ds_actor": stale}).status_code == 403
    forged = client.ds.sign({"a": {"id": "mallory", "roles": ["auditor"]}}, "actor")[:-2] + "xx"
    assert client.get("/ledger", cookies={"ds_actor": forged}).status_code == 403


def test_repeated_failed_sign_ins_lock_the_name(site: dict[str, Any], client: Client) -> None:
    for _ in range(MAX_FAILURES):
        assert client.login("sam", "not the password").status_code == 200
    assert client.login("sam", PASSWORD).status_code == 429
    assert "ds_actor" not in client.cookies
    assert access_entries(site["db"])[-1]["data"] == {
        "person": "sam",
        "terminal": "127.0.0.1",
        "success": False,
        "reason": "locked",
    }


def test_password_tool_is_not_served(client: Client) -> None:
    client.login("alice", PASSWORD)
    assert client.get("/-/password-tool").status_code == 404


def test_status_page_verifies_and_records_it(site: dict[str, Any], client: Client) -> None:
    client.login("alice", PASSWORD)
    page = client.get("/-/kansa/status")
    with Ledger.open(site["db"], readonly=True) as ledger:
        size, vkey, note = ledger.size, ledger.verifier.vkey, ledger.latest_checkpoint().note  # type: ignore[union-attr]
    assert f"全 {size} 件（台帳番号 0 〜 {size - 1}）" in page.text and 'id="verify-ok"' in page.text
    assert vkey in page.text and note.splitlines()[2] in page.text
    status = client.get("/-/kansa/status.json").json()
    assert status["verification"]["ok"] is True and status["verification"]["verified_size"] == size
    verified = [e for e in access_entries(site["db"]) if e["type"] == "ledger.verified"]
    assert verified[-1]["data"]["ok"] is True and verified[-1]["data"]["size"] == size


def test_status_page_cannot_miss_a_tampered_ledger(site: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    for name in ("ledger.db", "ledger.compliance.db", "ledger.auditors.json"):
        shutil.copy(site["db"].parent / name, tmp_path / name)
    db = tmp_path / "ledger.db"
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute(
        "UPDATE entries SET leaf = replace(leaf, '\"ring_s\":35', '\"ring_s\":30') WHERE idx = ?",
        (site["late_index"],),
    )
    conn.commit()
    conn.close()
    c = Client(make_datasette(db, secret="t", verify_in_background=False))
    try:
        c.login("alice", PASSWORD)
        page = c.get("/-/kansa/status").text
        assert 'id="verify-failed"' in page and "検証に失敗しました" in page
        assert f"index {site['late_index']}" in page
        assert c.get("/-/kansa/status.json").json()["verification"]["ok"] is False
    finally:
        c.close()


def test_entry_page_proof_verifies_independently(site: dict[str, Any], client: Client) -> None:
    client.login("alice", PASSWORD)
    idx = site["late_index"]
    page = client.get(f"/-/kansa/entry/{idx}").text
    assert 'id="signature-ok"' in page and 'id="proof-ok"' in page
    bundle = client.get(f"/-/kansa/entry/{idx}.json").json()
    with Ledger.open(site["db"], readonly=True) as ledger:
        cp = ledger.latest_checkpoint()
        assert cp is not None and bundle["checkpoint"] == cp.note and bundle["vkey"] == ledger.verifier.vkey
        assert b64decode(bundle["leaf"]) == ledger.leaf(idx)
        from ledger import leaf_hash

        hashes = [b64decode(h) for h in bundle["proof"]["hashes"]]
        verify_inclusion(idx, cp.size, leaf_hash(b64decode(bundle["leaf"])), hashes, cp.root)
        assert f"kansa ledger prove ledger.db {idx} --size {cp.size}" in page
    assert client.get("/-/kansa/entry/99999999").status_code == 404


def test_findings_quote_the_contract_and_link_the_entries(site: dict[str, Any], client: Client) -> None:
    client.login("alice", PASSWORD)
    page = client.get(f"/-/kansa/findings?month={MONTH}").text
    quote = load_profile("nagaoka-nhi-2026").quotes["CALL-HOURS"]
    assert 'id="rule-CALL-HOURS"' in page and quote in page
    assert f'href="/-/kansa/entry/{site["late_index"]}"' in page
    only = client.get(f"/-/kansa/findings?month={MONTH}&rule=CALL-HOURS").text
    assert 'id="rule-CALL-HOURS"' in only and 'id="rule-REPORT-DAILY"' not in only


def test_kpis_page_charts_against_targets(client: Client) -> None:
    client.login("alice", PASSWORD)
    page = client.get("/-/kansa/kpis").text
    assert page.count("<svg") >= 4 and "目標 50.0%" in page and "接触率" in page and "納付了承率" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_stored_queries_take_the_month_and_explain_themselves(site: dict[str, Any], client: Client) -> None:
    client.login("alice", PASSWORD)
    rows = client.get(f"/ledger/custody_timeline.json?month={MONTH}&_shape=array").json()
    assert [r["手順"] for r in rows][:2] == ["データの受領", "データの取込"]
    outside = client.get(f"/compliance/calls_outside_hours.json?month={MONTH}&_shape=array").json()
    assert [json.loads(r["根拠の記録"]) for r in outside] == [[site["late_index"]]]
    assert client.get("/compliance/calls_outside_hours.json?month=2026-01&_shape=array").json() == []
    by_hour = client.get(f"/ledger/calls_by_hour.json?month={MONTH}&_shape=array").json()
    conn = sqlite3.connect(site["db"])
    calls = conn.execute(
        "SELECT count(*) FROM entries WHERE type = 'call.dialed' AND substr(at, 1, 7) = ?", (MONTH,)
    ).fetchone()[0]
    assert sum(r["架電件数"] for r in by_hour) == calls and {r["曜日"] for r in by_hour} <= set(
        "日月火水木金土"
    )
    # The old 1,000-row list of every month is gone (the attempts page replaces it).
    assert client.get("/ledger/numbers_under_three_attempts").status_code == 404
    page = client.get("/ledger/calls_by_hour").text
    assert "対象月" in page and "SELECT" not in visible(page)  # the explanation, not the SQL, up front
    home = client.get("/").text
    for name in ("calls_by_hour", "sms_without_lookup", "calls_outside_hours", "late_reports"):
        assert f"/{name}" in home
    assert "_memory" not in home and client.get("/_memory").status_code == 404


def test_csv_exports_start_with_a_bom(client: Client) -> None:
    client.login("alice", PASSWORD)
    for path in (
        "/ledger/entries.csv",
        "/ledger/entries.csv?_dl=1",
        f"/compliance/calls_outside_hours.csv?month={MONTH}",
        "/compliance/findings.csv?_stream=on",
    ):
        response = client.get(path)
        assert response.status_code == 200 and response.content.startswith("\ufeff".encode()), path
        assert response.content.count("\ufeff".encode()) == 1


def test_metadata_describes_every_table_and_column(site: dict[str, Any]) -> None:
    from datasette_plugins.site import load_yaml

    metadata = load_yaml("metadata.yaml")["databases"]
    for name, path in (("ledger", site["db"]), ("compliance", site["db"].with_suffix(".compliance.db"))):
        conn = sqlite3.connect(path)
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            described = metadata[name]["tables"][table]
            assert described["title"] and described["description"], (name, table)
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            assert set(columns) == set(described["columns"]), (name, table)


def test_cli_auditor_add_list_remove_and_serve_errors(tmp_path: Path, site: dict[str, Any]) -> None:
    runner = CliRunner()
    db = tmp_path / "ledger.db"
    import shutil

    shutil.copy(site["db"], db)
    result = runner.invoke(main, ["serve", str(db)])
    assert result.exit_code != 0 and "kansa check" in result.output
    shutil.copy(site["db"].with_suffix(".compliance.db"), tmp_path / "ledger.compliance.db")
    result = runner.invoke(main, ["serve", str(db)])
    assert result.exit_code != 0 and "kansa auditor add" in result.output
    result = runner.invoke(
        main, ["auditor", "add", "carol", "--ledger", str(db), "--password-stdin"], input="short\n"
    )
    assert result.exit_code != 0 and "12 characters" in result.output
    result = runner.invoke(
        main,
        ["auditor", "add", "carol", "--ledger", str(db), "--password-stdin", "--sql"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    stored = (tmp_path / "ledger.auditors.json").read_text()
    assert PASSWORD not in stored and "pbkdf2_sha256$" in stored
    assert (tmp_path / "ledger.auditors.json").stat().st_mode & 0o077 == 0
    assert runner.invoke(main, ["auditor", "list", "--ledger", str(db)]).output == "carol\tauditor,sql\n"
    assert runner.invoke(main, ["auditor", "remove", "carol", "--ledger", str(db)]).exit_code == 0
    assert runner.invoke(main, ["auditor", "list", "--ledger", str(db)]).output == ""


def test_kansa_serve_signs_the_access_log_when_stopped(site: dict[str, Any], tmp_path: Path) -> None:
    """SIGTERM ends `kansa serve` gracefully: Datasette's shutdown hook signs the access log's
    closing checkpoint over everything recorded, so the log's tail is covered too."""
    import shutil
    import signal
    import socket
    import subprocess
    import sys

    import httpx

    shutil.copytree(site["db"].parent, tmp_path / "w")
    db = tmp_path / "w" / "ledger.db"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kansa = Path(sys.executable).parent / "kansa"
    server = subprocess.Popen(
        [str(kansa), "serve", str(db), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/-/login", timeout=1)
                break
            except httpx.TransportError:
                assert time.time() < deadline and server.poll() is None, "kansa serve did not start"
                time.sleep(0.2)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as web:
            assert web.post("/-/login", data={"username": "alice", "password": PASSWORD}).status_code == 302
            assert web.get("/ledger").status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    log = default_access_log_path(db)
    with Ledger.open(log, readonly=True) as access:
        latest = access.latest_checkpoint()
        assert latest is not None and latest.size == access.size >= 2
    assert verify_ledger(log).ok


def visible(page: str) -> str:
    """The text a reader sees: no tags, scripts, styles or collapsed evidence (<details>)."""
    page = re.sub(r"<(script|style|details)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


ENGLISH_CODES = ("number_unusable", "household", "violation", "judgement", "True", "False", "no_answer")


def test_month_page_accounts_for_every_clause(site: dict[str, Any], client: Client) -> None:
    client.login("alice", PASSWORD)
    assert client.get("/-/kansa/month").headers["location"] == f"/-/kansa/month/{MONTH}"
    page = client.get(f"/-/kansa/month/{MONTH}").text
    profile = load_profile("nagaoka-nhi-2026")
    for rule in profile.clauses:  # every rule of the profile, with its clause quoted
        row = page.split(f'id="rule-{rule}"', 1)[1].split("</tr>", 1)[0]
        assert profile.quotes[rule][:20] in html.unescape(row), rule
        assert any(mark in row for mark in ("✔", "✘", "△", "⏳", "－")), rule
    hours = page.split('id="rule-CALL-HOURS"', 1)[1].split("</tr>", 1)[0]
    assert "✘" in hours and "仕様書6(2)イ" in hours and "違反 1 件" in hours
    conn = sqlite3.connect(site["db"])
    calls = conn.execute(
        "SELECT count(*) FROM entries WHERE type = 'call.dialed' AND substr(at, 1, 7) = ?", (MONTH,)
    ).fetchone()[0]
    assert f"架電 {calls:,} 件の開始時刻を確認" in hours
    # The link lists exactly the records counted.
    link = html.unescape(re.search(r'class="examined-link" href="([^"]+)"', hours).group(1))  # type: ignore[union-attr]
    listed = client.get(link.replace("/ledger/entries?", "/ledger/entries.json?") + "&_shape=array&_size=max")
    assert len(listed.json()) == calls
    held = page.split('id="rule-RING-35"', 1)[1].split("</tr>", 1)[0]
    assert "✔</span> 適合" in held and "確認した記録の一覧" in held
    signoff = page.split('id="signoff"', 1)[1]
    root = sqlite3.connect(site["db"].with_suffix(".compliance.db")).execute(
        "SELECT root FROM runs WHERE month = ? ORDER BY size DESC", (MONTH,)
    ).fetchone()[0]
    assert "確認者" in signoff and root in signoff  # the sign-off names the checkpoint it covers
    lookup = page.split('id="rule-SMS-LOOKUP"', 1)[1].split("</tr>", 1)[0]
    sent = conn.execute(
        "SELECT count(*) FROM entries WHERE type = 'sms.sent' AND substr(at, 1, 7) = ?", (MONTH,)
    ).fetchone()[0]
    assert f"SMS {sent:,} 件の事前のキャリア判定を確認（すべて送信前にキャリア判定あり）" in lookup
    text = visible(page)
    assert not [code for code in ENGLISH_CODES if re.search(rf"\b{code}\b", text)]


def test_case_page_tells_the_story_and_entries_link_back(site: dict[str, Any], client: Client) -> None:
    client.login("alice", PASSWORD)
    conn = sqlite3.connect(site["db"])
    idx, case = conn.execute(
        "SELECT idx, case_ref FROM entries WHERE idx = ?", (site["late_index"],)
    ).fetchone()
    page = client.get(f"/-/kansa/case/{case}").text
    assert f'href="/-/kansa/entry/{idx}"' in page and "架電" in page and "時間帯" in page
    assert "仕様書6(2)イ" in page  # the CALL-HOURS finding that cites the late call
    entry = client.get(f"/-/kansa/entry/{idx}").text
    assert f'href="/-/kansa/case/{case}"' in entry and "rule=CALL-HOURS" in entry
    for text in (visible(page), visible(entry)):
        assert not [code for code in ENGLISH_CODES if re.search(rf"\b{code}\b", text)]
    assert client.get("/-/kansa/case/nope").status_code == 404


def test_attempts_and_custody_pages(site: dict[str, Any], client: Client) -> None:
    client.login("alice", PASSWORD)
    page = client.get(f"/-/kansa/attempts?month={MONTH}").text
    conn = sqlite3.connect(site["db"])
    pairs = conn.execute(
        "SELECT count(DISTINCT case_ref || '/' || json_extract(leaf, '$.event.data.number')) FROM entries"
        " WHERE type = 'call.dialed' AND substr(at, 1, 7) = ?",
        (MONTH,),
    ).fetchone()[0]
    assert page.count('<tr><td><a href="/-/kansa/case/') == pairs
    custody = client.get("/-/kansa/custody").text
    assert 'id="batch-B2026-09"' in custody and "データの受領" in custody
    assert "custody.received" not in custody
    for text in (visible(page), visible(custody)):
        assert not [code for code in ENGLISH_CODES if re.search(rf"\b{code}\b", text)]


def test_raw_tables_show_jst_and_words_beside_the_stored_values(client: Client) -> None:
    client.login("alice", PASSWORD)
    page = client.get("/ledger/entries?type=call.dialed&_size=5").text
    assert "架電<br><small>call.dialed</small>" in page
    received = re.search(r"(\d{4})年(\d+)月(\d+)日 (\d\d:\d\d:\d\d)<br><small>([^<]+Z)</small>", page)
    assert received is not None  # the UTC receipt shown in JST, the stored text beside it
    findings = client.get("/compliance/findings").text
    assert "違反<br><small>violation</small>" in findings


def test_access_purposes_written_by_kansa_read_in_words() -> None:
    from datasette_plugins.audit_pages import describe

    def viewed(purpose: str) -> str:
        data = {"person": "op07", "case": "c1", "purpose": purpose}
        return describe({"type": "access.viewed", "data": data})

    # the console writes 'call' and 'callback', kansa report --store 'report'; other purposes
    # are free text
    assert viewed("call") == "op07 が個人情報を閲覧（目的：架電対応）"
    assert viewed("callback") == "op07 が個人情報を閲覧（目的：折り返し電話への対応）"
    assert viewed("report") == "op07 が個人情報を閲覧（目的：報告書の作成（案件番号の記入））"
    assert viewed("架電対応 call handling") == "op07 が個人情報を閲覧（目的：架電対応 call handling）"


def test_attempts_count_days_and_bands_in_jst_whatever_the_offset() -> None:
    from datasette_plugins.audit_pages import attempts_rows_from

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE entries (idx INTEGER, type TEXT, case_ref TEXT, at TEXT, leaf TEXT)")
    # Thursday 13:30 JST written in UTC, Saturday 10:00 JST
    for idx, at in enumerate(["2026-09-24T04:30:00Z", "2026-09-26T10:00:00+09:00"]):
        data = {"case": "c1", "number": "n1", "call": f"k{idx}", "result": "no_answer"}
        leaf = json.dumps({"event": {"type": "call.dialed", "at": at, "data": data}})
        conn.execute("INSERT INTO entries VALUES (?, 'call.dialed', 'c1', ?, ?)", (idx, at, leaf))
    bands = [("09:00", "12:00"), ("12:00", "17:00"), ("17:00", "20:00")]
    (row,) = attempts_rows_from(conn, "2026-09", 2, bands)
    assert (row["attempts"], row["days"], row["bands"], row["weekend"]) == (2, 2, 2, 1)


def test_a_case_completed_on_a_residents_callback_reads_so() -> None:
    """The attempts page says why a number with one call needs no more (T §10(4)キ, N §8(4)キ);
    the case page words the callback and its outcome."""
    from datasette_plugins.audit_pages import attempts_rows_from, describe

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE entries (idx INTEGER, type TEXT, case_ref TEXT, at TEXT, leaf TEXT)")
    events = [
        ("call.dialed", "2026-09-24T10:00:00+09:00", {"number": "n1", "call": "k1", "result": "voicemail"}),
        ("call.outcome", "2026-09-24T10:01:00+09:00", {"call": "k1", "disposition": "no_contact"}),
        ("callback.received", "2026-09-24T15:00:00+09:00", {"call": "b1", "handled": "operator"}),
        ("callback.outcome", "2026-09-24T15:06:00+09:00", {"call": "b1", "disposition": "completed"}),
    ]
    for idx, (kind, at, data) in enumerate(events):
        leaf = json.dumps({"event": {"type": kind, "at": at, "data": {"case": "c1", **data}}})
        conn.execute("INSERT INTO entries VALUES (?, ?, 'c1', ?, ?)", (idx, kind, at, leaf))
    bands = [("09:00", "12:00"), ("12:00", "17:00"), ("17:00", "20:00")]
    (row,) = attempts_rows_from(conn, "2026-09", 4, bands)
    assert (row["attempts"], row["why"]) == (1, "折り返し電話で完了")
    assert attempts_rows_from(conn, "2026-09", 3, bands)[0]["why"] == ""  # before the outcome
    outcome = {
        "case": "c1",
        "call": "b1",
        "party": "self",
        "disposition": "completed",
        "promise": {"date": "2026-09-30", "amount": 48000},
        "requests": [],
    }
    assert describe({"type": "callback.outcome", "data": outcome}) == (
        "折り返し電話の結果：相手：本人、処理：完了（本人等に説明済み）、"
        "納付の了承（2026年9月30日（水）、48,000 円）"
    )
    # the resident called and talked: a callback's no_contact is not 応答なし・留守電
    talked = {**outcome, "party": "household", "disposition": "no_contact", "promise": None}
    assert describe({"type": "callback.outcome", "data": talked}) == (
        "折り返し電話の結果：相手：同一世帯の方、処理：不完了（説明を最後まで伝えられず）"
    )
    absent = {**talked, "disposition": "absent_now"}
    described = describe({"type": "callback.outcome", "data": absent})
    assert "処理：不完了（本人以外からの電話で本人に伝わらず）" in described
    received = {"case": "c1", "queued_s": 12, "handled": "operator", "call": "b1"}
    assert describe({"type": "callback.received", "data": received}) == (
        "折り返し電話（待ち 12 秒、オペレータが対応、着信 b1）"
    )


def test_stored_queries_take_month_weekday_and_hour_in_tokyo_whatever_the_offset() -> None:
    """The stored queries' SQL itself, on a small entries table: a call written in UTC at
    15:30 on Wednesday 30 September is Thursday 1 October 00:30 in Tokyo."""
    import yaml

    yaml_file = Path(__file__).parent.parent / "datasette_plugins" / "datasette.yaml"
    config = yaml.safe_load(yaml_file.read_text(encoding="utf-8"))
    queries = config["databases"]["ledger"]["queries"]
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE entries (idx INTEGER, type TEXT, case_ref TEXT, at TEXT, leaf TEXT)")
    rows = [
        ("call.dialed", "c1", "2026-09-30T19:00:00+09:00", "{}"),
        ("call.dialed", "c2", "2026-09-30T15:30:00Z", "{}"),
        ("sms.sent", "c3", "2026-09-30T15:30:00+00:00", '{"event": {"data": {"number": "1"}}}'),
    ]
    conn.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?)", [(i, *r) for i, r in enumerate(rows)])
    by_hour = conn.execute(queries["calls_by_hour"]["sql"], {"month": "2026-09"}).fetchall()
    assert by_hour == [("水", 19, 1)]
    assert conn.execute(queries["calls_by_hour"]["sql"], {"month": "2026-10"}).fetchall() == [("木", 0, 1)]
    unchecked = queries["sms_without_lookup"]["sql"]
    assert conn.execute(unchecked, {"month": "2026-09"}).fetchall() == []
    assert [r[2] for r in conn.execute(unchecked, {"month": "2026-10"})] == ["c3"]


def test_entry_page_on_a_tampered_ledger_says_what_it_cannot_show(
    site: dict[str, Any], tmp_path: Path
) -> None:
    """A damaged key record or a leaf that is no longer an entry: the entry page says so in
    words (it answered 500 before), and the JSON bundle refuses with 409."""
    import shutil

    for name in ("ledger.db", "ledger.compliance.db", "ledger.auditors.json"):
        shutil.copy(site["db"].parent / name, tmp_path / name)
    db = tmp_path / "ledger.db"
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER entries_no_update")
    rows = conn.execute("SELECT idx, type, leaf FROM entries ORDER BY idx").fetchall()
    first_key = next(idx for idx, kind, _ in rows if kind == "key.registered")
    outcome = next(idx for idx, kind, _ in rows if kind == "call.outcome")
    conn.execute(
        "UPDATE entries SET leaf = replace(leaf, '\"public_key\":\"', '\"public_key\":\"!') WHERE idx = ?",
        (first_key,),
    )
    conn.execute("UPDATE entries SET leaf = CAST('not an entry' AS BLOB) WHERE idx = ?", (outcome + 1,))
    conn.commit()
    conn.close()
    c = Client(make_datasette(db, secret="t", verify_in_background=False))
    try:
        c.login("alice", PASSWORD)
        signed = c.get(f"/-/kansa/entry/{outcome}")
        assert signed.status_code == 200
        assert 'id="signature-unknown"' in signed.text
        assert f"鍵の記録（{first_key}番）が読めない" in signed.text
        broken = c.get(f"/-/kansa/entry/{outcome + 1}")
        assert broken.status_code == 200 and 'id="entry-unreadable"' in broken.text
        assert "not an entry" in broken.text
        bundle = c.get(f"/-/kansa/entry/{outcome + 1}.json")
        assert bundle.status_code == 409 and "unreadable entry" in bundle.json()["error"]
    finally:
        c.close()
