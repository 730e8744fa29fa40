"""A log and its witnesses, all real processes over loopback: quorum, a witness down, a fork, a rollback.

Two witnesses (`kansa witness serve`) cosign the checkpoints `kansa ledger checkpoint`
sends them; `kansa ledger verify --policy` holds the ledger to a C2SP tlog-policy.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import NOW, event
from processes import EXE, Served

from ledger import Checkpoint, Ledger, Submission
from ledger.cosignature import CosignerKey, cosignatures
from ledger.note import b64encode
from ledger.witness import Witness

ORIGIN = "city.example/kansa/test"


def kansa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120)


@dataclass
class Setup:
    db: Path
    witnesses: dict[str, Served]
    vkeys: dict[str, str]
    dirs: dict[str, Path]
    tmp: Path

    def policy(self, quorum: str, *, urls: bool = False) -> Path:
        lines = [f"log {kansa('ledger', 'vkey', str(self.db)).stdout.strip()}"]
        for name, vkey in self.vkeys.items():
            url = f" {self.witnesses[name].url}" if urls else ""
            lines.append(f"witness {name} {vkey}{url}")
        lines.append(f"group both {quorum} {' '.join(self.vkeys)}")
        lines.append("quorum both")
        path = self.tmp / f"policy-{quorum}-{urls}.txt"
        path.write_text("# the city's policy\n" + "\n".join(lines) + "\n")
        return path


def append(db: Path, n: int) -> None:
    with Ledger.open(db, key_path=f"{db}.key") as led:
        led.append([Submission(event()) for _ in range(n)], now=NOW)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    db = tmp_path / "ledger.db"
    assert kansa("ledger", "init", str(db), "--origin", ORIGIN, "--contract", "x").returncode == 0
    vkey = kansa("ledger", "vkey", str(db)).stdout.strip()
    served, vkeys, dirs = {}, {}, {}
    try:
        for name in ("A", "B"):
            directory = tmp_path / f"witness-{name}"
            vkeys[name] = kansa(
                "witness", "init", str(directory), "--name", f"city{name}.example/w"
            ).stdout.strip()
            assert (
                kansa("witness", "add-log", str(directory), "--origin", ORIGIN, "--vkey", vkey).returncode
                == 0
            )
            served[name] = Served(["witness", "serve", str(directory)], tmp_path / f"{name}.log").start()
            dirs[name] = directory
            added = kansa(
                "ledger", "witness", "add", str(db), "--name", f"city{name}.example/w",
                "--url", served[name].url, "--vkey", vkeys[name],
            )  # fmt: skip
            assert added.returncode == 0, added.stderr
        yield Setup(db, served, vkeys, dirs, tmp_path)
    finally:
        for s in served.values():
            s.stop()


def test_quorum_met_then_one_witness_down(setup: Setup) -> None:
    append(setup.db, 20)
    done = kansa("ledger", "checkpoint", str(setup.db), "--wait", "10")
    assert done.returncode == 0, done.stderr
    keys = [CosignerKey.parse(v) for v in setup.vkeys.values()]
    assert set(cosignatures(done.stdout, keys)) == {"cityA.example/w", "cityB.example/w"}
    for quorum in ("1", "2"):
        checked = kansa("ledger", "verify", str(setup.db), "--policy", str(setup.policy(quorum, urls=True)))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "trusted: checkpoint of size 20, cosigned by A, B" in checked.stdout
        assert "witness A: its latest cosigned checkpoint (size 20) is in the ledger" in checked.stdout

    # B goes down: the checkpoint is stored and printed with A's cosignature, exit 2.
    setup.witnesses["B"].stop()
    append(setup.db, 10)
    down = kansa("ledger", "checkpoint", str(setup.db), "--wait", "1")
    assert down.returncode == 2, down.stderr
    assert "unreachable: cityB.example/w could not be reached" in down.stderr
    assert set(cosignatures(down.stdout, keys)) == {"cityA.example/w"}
    one = kansa("ledger", "verify", str(setup.db), "--policy", str(setup.policy("1")))
    assert (
        one.returncode == 0
        and "trusted: checkpoint of size 30, cosigned by A (quorum 1 of A, B)" in one.stdout
    )
    both = kansa("ledger", "verify", str(setup.db), "--policy", str(setup.policy("all")))
    assert both.returncode == 0, both.stdout
    assert "trusted: checkpoint of size 20, cosigned by A, B (quorum 2 of A, B)" in both.stdout
    assert "waiting for cosignatures: checkpoint(s) of size 30" in both.stdout

    # B is back: the next checkpoint brings it up to date with a proof from 20, where it stopped.
    setup.witnesses["B"].start()
    append(setup.db, 5)
    back = kansa("ledger", "checkpoint", str(setup.db))
    assert back.returncode == 0, back.stderr
    both = kansa("ledger", "verify", str(setup.db), "--policy", str(setup.policy("all", urls=True)))
    assert both.returncode == 0 and "trusted: checkpoint of size 35" in both.stdout
    # Plain verify still holds: cosigned notes are new rows, checked with the log's key.
    assert kansa("ledger", "verify", str(setup.db)).returncode == 0


def test_a_forked_log_is_refused_and_the_evidence_kept(setup: Setup) -> None:
    append(setup.db, 10)
    assert kansa("ledger", "checkpoint", str(setup.db)).returncode == 0
    # A second history with the same key: a copy of the file at size 10 that diverges.
    fork = setup.tmp / "fork.db"
    with closing(sqlite3.connect(setup.db)) as src, closing(sqlite3.connect(fork)) as dst:
        src.backup(dst)
    shutil.copy(f"{setup.db}.key", f"{fork}.key")
    append(setup.db, 5)
    append(fork, 5)
    assert kansa("ledger", "checkpoint", str(setup.db)).returncode == 0
    refused = kansa("ledger", "checkpoint", str(fork))
    assert refused.returncode == 1, refused.stderr
    assert "refused: cityA.example/w answered 422" in refused.stderr
    assert "another root (a fork)" in refused.stderr
    with Ledger.open(fork) as forked, Ledger.open(setup.db) as honest:
        fork_body = Checkpoint(ORIGIN, 15, forked.root(15)).body
        honest_body = Checkpoint(ORIGIN, 15, honest.root(15)).body
    for directory in setup.dirs.values():
        with Witness(directory) as witness:
            evidence = witness.evidence(ORIGIN)
        assert len(evidence) == 1 and evidence[0].status == 422
        assert evidence[0].request.startswith(fork_body)  # the fork, signed by the log's key
        assert evidence[0].latest_note is not None and evidence[0].latest_note.startswith(honest_body)
    printed = kansa("witness", "evidence", str(setup.dirs["B"]), "--origin", ORIGIN)
    (kept,) = [json.loads(line) for line in printed.stdout.splitlines()]
    assert kept["status"] == 422 and kept["refused"].startswith(fork_body)
    assert kept["cosigned"].startswith(honest_body)
    # The honest ledger verifies under the policy; the fork does not: the witnesses remember otherwise.
    assert (
        kansa("ledger", "verify", str(setup.db), "--policy", str(setup.policy("2", urls=True))).returncode
        == 0
    )
    checked = kansa("ledger", "verify", str(fork), "--policy", str(setup.policy("1", urls=True)))
    assert checked.returncode == 1
    with Ledger.open(setup.db) as honest, Ledger.open(fork) as forked:
        ours, theirs = b64encode(honest.root(15)), b64encode(forked.root(15))
    assert (
        f"FAILED: witness A cosigned size 15 with root {ours}, but the ledger's root at that size is {theirs}"
        in (checked.stdout)
    )


HOLDER = textwrap.dedent(
    """
    import sys, time, uuid
    from datetime import UTC, datetime
    from ledger import Ledger, Submission
    db = sys.argv[1]
    led = Ledger.open(db, key_path=db + ".key")
    def ev():
        return {"id": str(uuid.uuid4()), "type": "access.login", "at": "2026-09-24T09:00:00+09:00",
                "actor": "op07", "data": {"person": "op07", "terminal": "t1", "success": True}}
    for _ in range(10):
        led.append([Submission(ev()) for _ in range(10)], now=datetime.now(UTC))
    print(led.size, flush=True)
    time.sleep(600)
    """
)


def test_rollback_replayed_the_witness_refuses_and_verify_policy_fails(setup: Setup) -> None:
    append(setup.db, 100)
    assert kansa("ledger", "checkpoint", str(setup.db)).returncode == 0
    # A running writer acknowledges 100 more; they are checkpointed and cosigned at 200 ...
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(setup.db)], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "200"
        cosigned = kansa("ledger", "checkpoint", str(setup.db))
        assert cosigned.returncode == 0 and "\n200\n" in cosigned.stdout
        # ... then the -wal file is deleted under it, and it dies.
        os.remove(f"{setup.db}-wal")
        os.remove(f"{setup.db}-shm")
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    with Ledger.open(setup.db) as led:
        assert led.size == 100  # the 100 acknowledged entries and their checkpoint are gone
    assert kansa("ledger", "verify", str(setup.db)).returncode == 0  # the file alone looks fine
    append(setup.db, 10)
    refused = kansa("ledger", "checkpoint", str(setup.db))
    assert refused.returncode == 1
    assert "has cosigned size 200 but this checkpoint has only 110 entries" in refused.stderr
    checked = kansa("ledger", "verify", str(setup.db), "--policy", str(setup.policy("any", urls=True)))
    assert checked.returncode == 1
    assert "FAILED: witness A cosigned size 200 with root " in checked.stdout
    assert "but the ledger has only 110 entries" in checked.stdout
