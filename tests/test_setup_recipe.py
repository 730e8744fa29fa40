"""docs/setup.md works: its commands and files, in its order, from an empty folder to an operator
pressing 受付開始. The shell lines of steps 1–11 run as real processes (`kansa` from this venv,
passphrases typed on stdin); the `&` lines (`kansa ledger serve`, `kansa dialer run` on the
simulator, `kansa console serve`, all with `--start-at`) are started in the background; the
bootstrap's, the month's and the erasure's events are commands (`kansa staff`, `kansa campaign`,
`kansa custody erased`); the files (`dialer.toml`, `console.toml`, the talk script) are taken
from the page's blocks; the city's file and the pledge's scan are stand-ins. The desk steps
(9–11) are done over plain HTTP, as the forms post them. Only the ports are changed (free ones
instead of 8730/8780/8740). About 15 s."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from processes import EXE, free_port

from ledger import Ledger

ROOT = Path(__file__).parent.parent
DOC = ROOT / "docs" / "setup.md"
DOCUMENTS = [
    ("talk_script", "TS-2026-09", "talk_script.md"),
    ("manual", "M1", "manual.md"),
    ("faq", "F1", "faq.md"),
]
PASSPHRASES = {"mgr01": "manager-pass-01", "city01": "city-pass-0001", "op01": "オペレータ01のパス"}


def rehearsal_part() -> str:
    return DOC.read_text(encoding="utf-8").split("## 12.", 1)[0]


def doc_files(text: str) -> dict[str, str]:
    """The blocks introduced by `<!-- file: NAME -->`."""
    return {
        name: body
        for name, body in re.findall(r"<!-- file: (\S+) -->\n```[a-z]*\n(.*?)```", text, flags=re.S)
    }


def doc_shell_lines(text: str) -> list[str]:
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        lines += [line.strip() for line in block.splitlines() if line.strip()]
    return lines


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


def wait_http(
    url: str, proc: subprocess.Popen[bytes], log: Path, headers: dict[str, str] | None = None
) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, f"{url}: the process ended:\n{log.read_text()}"
        try:
            httpx.get(url, timeout=2, headers=headers)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"{url} never answered:\n{log.read_text()}"
            time.sleep(0.1)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.terminate()
    for proc in started:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_setup_recipe_brings_an_operator_to_ready(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    text = rehearsal_part()
    ports = {"8730": str(free_port()), "8780": str(free_port()), "8740": str(free_port())}

    def ported(s: str) -> str:
        for old, new in ports.items():
            s = s.replace(old, new)
        return s

    files = doc_files(text)
    assert {"dialer.toml", "console.toml", "talk_script.md", "faq.md"} <= set(files)
    assert not any(name.endswith(".jsonl") for name in files)  # no event written by hand
    lines = doc_shell_lines(text)
    assert lines[0] == "mkdir centre && cd centre"
    centre = tmp_path / "centre"
    centre.mkdir()
    for name, body in files.items():  # the page's files, as the manager writes them
        (centre / name).write_text(ported(body), encoding="utf-8")
    shutil.copy(ROOT / "docs" / "sample-targets.csv", centre / "targets-2026-09.csv")  # the city's file
    (centre / "pledge-mgr01.pdf").write_bytes(b"%PDF the manager's signed pledge")  # its scan
    env = dict(os.environ, PATH=f"{Path(EXE).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    start: datetime | None = None
    wall = time.monotonic()
    ran: list[str] = []
    for line in lines[1:]:
        if line.startswith("T="):
            start = datetime.fromisoformat(line[2:])
            wall = time.monotonic()
            continue
        command = line
        if start is not None:  # one rehearsal clock: each process starts at its share of it
            command = command.replace("$T", (start + timedelta(seconds=time.monotonic() - wall)).isoformat())
        if command.endswith("&"):
            args = shlex.split(command[:-1])
            assert args[0] == "kansa"
            if args[1:3] == ["ledger", "serve"]:
                args += ["--port", ports["8730"]]
            log = centre / f"{args[1]}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [EXE, *args[1:]], cwd=centre, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            procs.append(proc)
            url = {
                "ledger": f"http://127.0.0.1:{ports['8730']}/healthz",
                "dialer": f"http://127.0.0.1:{ports['8780']}/v1/seats",
                "console": f"http://127.0.0.1:{ports['8740']}/signin",
            }[args[1]]
            wait_http(url, proc, log)
            ran.append(" ".join(args[:3]))
            continue
        holder = re.search(r"--holder (\S+) --passphrase", command)
        typed = f"{PASSPHRASES[holder.group(1)]}\n" * 2 if holder else ""
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=centre,
            env=env,
            input=typed.encode(),
            capture_output=True,
            start_new_session=True,  # no terminal: the passphrase prompt reads stdin
            timeout=120,
        )
        assert done.returncode == 0, f"{command}\n{done.stderr.decode()}"
        ran.append(command)
    for done_first in ("kansa staff designate", "kansa campaign schedule", "kansa custody import"):
        assert any(r.startswith(done_first) for r in ran), done_first
    assert [r for r in ran if r in ("kansa ledger serve", "kansa dialer run", "kansa console serve")] == [
        "kansa ledger serve",
        "kansa dialer run",
        "kansa console serve",
    ]
    assert (centre / "keys" / "op01.sealed").exists()

    console = f"http://127.0.0.1:{ports['8740']}"

    def sign_in(person: str, role: str, seat: str = "", wait: float = 0) -> tuple[httpx.Client, str]:
        """Signs in; with `wait`, tries again until then (a designation or a key registered on
        the desk reaches the ledger through the manager's outbox)."""
        deadline = time.monotonic() + wait
        while True:
            client = httpx.Client(base_url=console, timeout=30)
            pre = csrf_of(client.get("/signin").text)
            form = {"csrf": pre, "person": person, "passphrase": PASSPHRASES[person], "role": role}
            answer = client.post("/signin", data=form | {"seat": seat})
            if answer.status_code == 303:
                return client, csrf_of(client.get(answer.headers["location"]).text)
            client.close()
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.5)

    # 9. the manager's desk
    manager, csrf = sign_in("mgr01", "manager")
    steps = [
        ("/manager/staff", {"action": "designate", "person": "op01", "role": "operator"}, None),
        ("/manager/keys", {"action": "register", "person": "op01"}, None),
        *(
            ("/manager/staff", {"action": "trained", "person": "op01", "course": course}, None)
            for course in ("laws_manual", "privacy", "phone")
        ),
        (
            "/manager/staff",
            {"action": "pledged", "person": "op01", "to": "city01"},
            ("pledge", "pledge-op01.pdf", b"%PDF scan"),
        ),
        *(
            ("/manager/documents", {"kind": kind, "version": version}, ("file", name, files[name].encode()))
            for kind, version, name in DOCUMENTS
        ),
    ]
    for path, data, upload in steps:
        answer = manager.post(
            path,
            data={"csrf": csrf, **data},
            files={upload[0]: (upload[1], upload[2], "application/octet-stream")} if upload else None,
        )
        assert answer.status_code == 303, f"{path} {data}: {answer.status_code} {answer.text[-2000:]}"
    # 10. the city's approval
    city, city_csrf = sign_in("city01", "city")
    assert "TS-2026-09" in city.get("/city").text
    for kind, version, _name in DOCUMENTS:
        answer = city.post("/city/approve", data={"csrf": city_csrf, "kind": kind, "version": version})
        assert answer.status_code == 303, answer.text
    # 11. the operator
    client, op_csrf = sign_in("op01", "operator", "s01", wait=20)
    ready = client.post("/op/ready", data={"csrf": op_csrf})
    assert ready.status_code == 303, ready.text
    deadline = time.monotonic() + 30  # the simulator rings 2 s, then the resident is on the line
    while 'id="resident"' not in (page := client.get("/op/call").text):
        assert time.monotonic() < deadline, f"no call reached the seat:\n{page[-1500:]}"
        time.sleep(0.2)
    for c in (manager, city, client):
        c.close()
    # what the desks wrote reached the ledger (the outboxes deliver in the background)
    deadline = time.monotonic() + 20
    while True:
        with Ledger.open(centre / "ledger.db", readonly=True) as led:
            events = [json.loads(leaf)["event"] for _i, leaf, _ in led.leaves()]
        found = {(e["type"], e["actor"]) for e in events}
        wanted = {
            ("staff.designated", "mgr01"),
            ("staff.designated", "system"),  # the bootstrap's (step 4)
            ("staff.pledged", "system"),
            ("campaign.scheduled", "mgr01"),  # step 5
            ("callerid.registered", "mgr01"),
            ("key.registered", "system"),
            ("staff.trained", "mgr01"),
            ("staff.pledged", "mgr01"),
            ("document.approved", "city01"),
            ("case.opened", "cus01"),
            ("custody.media_erased", "cus01"),
            ("access.login", "op01"),
        }
        if wanted <= found and sum(e["type"] == "document.approved" for e in events) == 3:
            break
        assert time.monotonic() < deadline, wanted - found
        time.sleep(0.3)


def test_custody_import_refuses_a_bad_file_whole(tmp_path: Path) -> None:
    """A bad row: its line reported, nothing in the store's batch, nothing in the ledger."""
    env = dict(os.environ)
    run = [EXE, "ledger", "init", "ledger.db", "--origin", "t.example/x", "--contract", "nagaoka-nhi-2026"]
    assert subprocess.run(run, cwd=tmp_path, env=env, capture_output=True).returncode == 0
    bad = (ROOT / "docs" / "sample-targets.csv").read_text(
        encoding="utf-8"
    ) + "202609-00009,長岡 次郎,12345,,初期滞納,100,,,\n"
    (tmp_path / "bad.csv").write_text(bad, encoding="utf-8")
    args = ["--store", "targets.db", "--ledger", "ledger.db", "--batch", "B1", "--month", "2026-09"]
    args += ["--by", "cus01", "--from", "city01", "--media", "USB-1"]
    done = subprocess.run(
        [EXE, "custody", "import", "bad.csv", *args], cwd=tmp_path, env=env, capture_output=True
    )
    assert done.returncode == 1 and "5行目" in done.stderr.decode(), done.stderr.decode()
    nobody = [*args[:-6], "--by", "", *args[-4:]]  # no custodian named: refused before the store
    done = subprocess.run(
        [EXE, "custody", "import", "bad.csv", *nobody], cwd=tmp_path, env=env, capture_output=True
    )
    assert done.returncode == 2 and not (tmp_path / "targets.db.imported-pending.jsonl").exists()
    export = subprocess.run(
        [EXE, "ledger", "export", "ledger.db"], cwd=tmp_path, env=env, capture_output=True
    )
    assert export.returncode == 0 and export.stdout == b""
    good = subprocess.run(
        [EXE, "custody", "import", str(ROOT / "docs" / "sample-targets.csv"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
    )
    assert good.returncode == 0 and "3 cases imported" in good.stdout.decode(), good.stderr.decode()
