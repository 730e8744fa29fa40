"""A SIGKILL in the middle of a large append leaves a ledger that verifies, the file wholly in or out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import event

from ledger import Ledger, verify_ledger

BATCH = 20_000


def _kill_when_writing(cmd: list[str], wal: Path, threshold: int) -> bool:
    """Starts cmd and SIGKILLs it once the WAL passes `threshold` bytes; False if it finished first."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if wal.exists() and wal.stat().st_size > threshold:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    proc.wait()
    return False


@pytest.mark.parametrize("threshold", [1 << 20, 8 << 20])
def test_sigkill_during_a_large_append(tmp_path: Path, threshold: int) -> None:
    db = tmp_path / "l.db"
    exe = str(Path(sys.executable).parent / "kansa")
    subprocess.run(
        [exe, "ledger", "init", str(db), "--origin", "t.example/crash", "--contract", "x"],
        check=True,
        capture_output=True,
    )
    first = tmp_path / "first.jsonl"
    first.write_text("".join(json.dumps(event()) + "\n" for _ in range(50)))
    subprocess.run([exe, "ledger", "append", str(db), str(first)], check=True, capture_output=True)
    big = tmp_path / "big.jsonl"
    big.write_text("".join(json.dumps(event("call.dialed")) + "\n" for _ in range(BATCH)))
    wal = Path(f"{db}-wal")
    killed = _kill_when_writing([exe, "ledger", "append", str(db), str(big)], wal, threshold)
    assert killed, "the append finished before the WAL reached the threshold"
    size = Ledger.open(db).size
    assert size in (50, 50 + BATCH)
    assert size == 50  # killed before its commit: nothing of the file is in
    report = verify_ledger(db)
    assert report.ok, report.summary()
    # And the ledger takes the same file afterwards, whole.
    subprocess.run([exe, "ledger", "append", str(db), str(big)], check=True, capture_output=True)
    assert Ledger.open(db).size == 50 + BATCH
    assert verify_ledger(db).ok
