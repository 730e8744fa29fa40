"""The ledger service over real HTTP on a loopback port, and the operators' client."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import event, register
from processes import EXE, free_port

from dialer_core.client import OperatorClient
from ledger import Ledger, Signer, canonicalize, verify_ledger
from ledger.note import b64encode


class Server:
    def __init__(self, db: Path, port: int, log: Path | None = None) -> None:
        self.db, self.port = db, port
        self.log_path = log or Path(f"{db}.serve.log")
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 (closed by stop or kill)
        self.proc = subprocess.Popen(
            [EXE, "ledger", "serve", str(self.db), "--port", str(self.port), "--checkpoint-entries", "500"],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("server did not start: " + self.log_path.read_text())

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
            self.log.close()


@pytest.fixture
def operators() -> list[Signer]:
    return [Signer.generate(f"op{i:02d}") for i in range(50)]


def init_ledger(db: Path, signers: Iterable[Signer], origin: str = "t.example/svc") -> Path:
    """`kansa ledger init DB` (its key beside it), then one key.registered per signer."""
    subprocess.run(
        [EXE, "ledger", "init", str(db), "--origin", origin, "--contract", "x"],
        check=True,
        capture_output=True,
    )
    with Ledger.open(db, key_path=f"{db}.key") as led:
        led.append([register(s) for s in signers], now=datetime.now(UTC))
    return db


def serving(tmp_path: Path, signers: Iterable[Signer]) -> Iterator[Server]:
    """The `server` fixtures' body: a fresh ledger with `signers` registered, served until the test ends."""
    srv = Server(init_ledger(tmp_path / "ledger.db", signers), free_port())
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def server(tmp_path: Path, operators: list[Signer]) -> Iterator[Server]:
    yield from serving(tmp_path, operators)


def body(op: Signer, ev: dict) -> dict:
    return {"event": ev, "sig": {"key": op.verifier.key_ref, "ed25519": b64encode(op.sign(canonicalize(ev)))}}


def now_event(**kw) -> dict:
    return event(**{"at": datetime.now(UTC).isoformat(), **kw})


def id_counts(db: Path) -> dict[str, int]:
    return dict(sqlite3.connect(db).execute("SELECT id, count(*) FROM entries GROUP BY id"))


def test_50_concurrent_clients_x_200_events(server: Server, operators: list[Signer]) -> None:
    acknowledged: dict[str, int] = {}
    lock = threading.Lock()
    errors: list[str] = []

    def client(op: Signer) -> None:
        with httpx.Client(timeout=60) as http:
            for _ in range(200):
                ev = now_event(actor=op.name)
                r = http.post(f"{server.url}/v1/events", json=body(op, ev))
                if r.status_code != 201:
                    errors.append(r.text)
                    return
                with lock:
                    acknowledged[ev["id"]] = r.json()["index"]

    threads = [threading.Thread(target=client, args=(op,)) for op in operators]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(acknowledged) == 10_000
    counts = id_counts(server.db)
    assert all(counts.get(i) == 1 for i in acknowledged)
    assert len(set(acknowledged.values())) == 10_000
    server.stop()
    report = verify_ledger(server.db)
    assert report.ok and report.size == 10_050, report.summary()
    led = Ledger.open(server.db)
    assert led.checkpoints(), "the service signs checkpoints every N entries"


def test_sigkill_during_load_loses_nothing_acknowledged(
    server: Server, operators: list[Signer], tmp_path: Path
) -> None:
    clients = [
        OperatorClient(server.url, op, tmp_path / f"{op.name}.outbox", timeout=5) for op in operators[:20]
    ]
    recorded: list[str] = []
    delivered_before_kill: dict[str, int] = {}

    def work(c: OperatorClient) -> None:
        for _ in range(100):
            recorded.append(c.record("access.login", {"person": c.actor, "terminal": "t1", "success": True}))
            c.deliver(deadline=time.monotonic() + 60, base_delay=0.02, max_delay=0.3)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    time.sleep(1.5)
    server.kill()
    for c in clients:  # what was acknowledged before the kill, read through a connection of our own
        rows = sqlite3.connect(c.outbox).execute("SELECT id, entry FROM outbox WHERE state = 'delivered'")
        delivered_before_kill.update(dict(rows))
    assert delivered_before_kill, "the kill came before any delivery; the test proves nothing"
    time.sleep(0.5)
    server.start()
    for t in threads:
        t.join()
    for c in clients:
        assert c.deliver(deadline=time.monotonic() + 30).pending == 0
        assert not c.rejected()
        c.close()
    server.stop()
    counts = id_counts(server.db)
    assert len(recorded) == 2000
    assert all(counts.get(i) == 1 for i in recorded), "every recorded event exactly once"
    led = Ledger.open(server.db)
    for event_id, entry in delivered_before_kill.items():
        assert json.loads(led.leaf(entry))["event"]["id"] == event_id
    assert verify_ledger(server.db).ok


def test_bad_requests_get_their_status_and_change_nothing(server: Server, operators: list[Signer]) -> None:
    op = operators[0]
    url = f"{server.url}/v1/events"
    ok = now_event(actor=op.name)
    first = httpx.post(url, json=body(op, ok))
    assert first.status_code == 201 and set(first.json()) == {"index", "leaf_hash"}
    size = Ledger.open(server.db).size

    again = httpx.post(url, json=body(op, ok))
    assert again.status_code == 200 and again.json() == first.json()
    conflict = httpx.post(url, json=body(op, {**ok, "actor": "op01"}))
    assert conflict.status_code == 409 and "already entry" in conflict.json()["error"]
    invalid = httpx.post(url, json=body(op, now_event(kind="call.dialed", ring_s="long")))
    assert invalid.status_code == 422 and invalid.json()["field"] == "event.data.ring_s"
    stranger = Signer.generate("op99")
    unknown = httpx.post(url, json=body(stranger, now_event()))
    assert unknown.status_code == 401 and "unknown key" in unknown.json()["error"]
    forged = body(op, now_event())
    forged["event"]["actor"] = "op02"
    bad_sig = httpx.post(url, json=forged)
    assert bad_sig.status_code == 401 and "does not verify" in bad_sig.json()["error"]
    future = now_event(at=(datetime.now(UTC) + timedelta(minutes=6)).isoformat())
    ahead = httpx.post(url, json=body(op, future))
    assert ahead.status_code == 422 and ahead.json()["field"] == "event.at"
    not_json = httpx.post(url, content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and "not JSON" in not_json.json()["error"]
    shape = httpx.post(url, json={"event": ok})
    assert shape.status_code == 422
    batch = [body(op, now_event()), body(op, now_event(kind="call.dialed", result="x"))]
    refused = httpx.post(f"{server.url}/v1/events:batch", json={"events": batch})
    assert refused.status_code == 422 and refused.json()["position"] == 1
    assert refused.json()["field"] == "events[1].event.data.result"
    assert Ledger.open(server.db).size == size
    accepted = httpx.post(f"{server.url}/v1/events:batch", json={"events": batch[:1]})
    assert accepted.status_code == 201 and len(accepted.json()["entries"]) == 1


def test_a_number_only_unicode_calls_a_digit_is_a_422(server: Server) -> None:
    # '²' passes str.isdigit() but not int(): it was a 500 (ValueError) from the query parsing.
    for path in ("/v1/entries?from=%C2%B2&to=3", "/v1/proof/consistency?old=1&new=%C2%B2"):
        answer = httpx.get(server.url + path)
        assert answer.status_code == 422 and "whole number" in answer.json()["error"], (path, answer.text)


def test_reads_checkpoint_proofs_entries(server: Server, operators: list[Signer]) -> None:
    op = operators[0]
    for _ in range(600):  # the server checkpoints every 500 entries
        httpx.post(f"{server.url}/v1/events", json=body(op, now_event(actor=op.name)))
    note = httpx.get(f"{server.url}/v1/checkpoint")
    assert note.status_code == 200 and note.text.startswith("t.example/svc\n")
    size = int(note.text.split("\n")[1])
    proof = httpx.get(f"{server.url}/v1/proof/inclusion", params={"index": 3, "size": size}).json()
    assert proof["size"] == size and proof["hashes"]
    cons = httpx.get(f"{server.url}/v1/proof/consistency", params={"old": 10, "new": size}).json()
    assert cons["old"] == 10 and cons["hashes"]
    lines = httpx.get(f"{server.url}/v1/entries", params={"from": 0, "to": 5}).text.splitlines()
    assert [json.loads(x)["index"] for x in lines] == [0, 1, 2, 3, 4]
    bad = httpx.get(f"{server.url}/v1/proof/inclusion", params={"index": "x", "size": 3})
    assert bad.status_code == 422
    health = httpx.get(f"{server.url}/healthz").json()
    assert health["ok"] and health["size"] >= 650


def test_the_outbox_survives_its_process_being_killed(
    server: Server, operators: list[Signer], tmp_path: Path
) -> None:
    from ledger import write_key

    key = tmp_path / "op00.key"
    write_key(key, operators[0])
    outbox = tmp_path / "outbox.db"
    script = f"""
import sys, time
from dialer_core.client import OperatorClient
c = OperatorClient("http://127.0.0.1:9", {str(key)!r}, {str(outbox)!r}, timeout=0.2)
for i in range(50):
    c.record("access.login", {{"person": "op00", "terminal": "t%d" % i, "success": True}})
print("recorded", flush=True)
c.deliver(deadline=time.monotonic() + 600)
"""
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"recorded"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    result = subprocess.run(
        [EXE, "client", "deliver", "--url", server.url, "--key", str(key), "--outbox", str(outbox)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"delivered": 50, "rejected": 0, "pending": 0}
    terminals = [
        json.loads(Ledger.open(server.db).leaf(i))["event"]["data"]["terminal"] for i in range(50, 100)
    ]
    assert sorted(terminals) == sorted(f"t{i}" for i in range(50))


def test_keys_new_writes_a_key_and_prints_its_registration(tmp_path: Path) -> None:
    out = tmp_path / "op07.key"
    result = subprocess.run(
        [EXE, "keys", "new", "--holder", "op07", "--out", str(out), "--by", "mgr01"],
        capture_output=True,
        text=True,
        check=True,
    )
    registration = json.loads(result.stdout)
    assert registration["type"] == "key.registered" and registration["data"]["holder"] == "op07"
    assert oct(out.stat().st_mode & 0o777) == "0o600"
