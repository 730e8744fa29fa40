"""Red-team figures for the append service (issue 11): SIGKILL cycles under load.

    .venv/bin/python benchmarks/service_faults.py [--cycles 10] [--clients 10] [--events 60]

Operators' clients (each with its own outbox) record and deliver events while
`kansa ledger serve` is killed with SIGKILL and restarted, `--cycles` times.
Prints how many events were acknowledged (a 2xx read back from each outbox
right after each kill) and how many of them the ledger holds at the same
index afterwards, how many recorded events ended in the ledger, and how many
ids appear twice. Nothing acknowledged may be lost and nothing may be doubled.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from dialer_core.client import OperatorClient
from ledger import Ledger, Signer, Submission, verify_ledger
from ledger.note import b64encode

EXE = str(Path(sys.executable).parent / "kansa")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(db: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [EXE, "ledger", "serve", str(db), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return server
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the service did not start")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--events", type=int, default=60, help="events per client")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kansa-faults-"))
    db = work / "ledger.db"
    subprocess.run(
        [EXE, "ledger", "init", str(db), "--origin", "faults.example/l", "--contract", "x"], check=True
    )
    operators = [Signer.generate(f"op{i:02d}") for i in range(args.clients)]
    with Ledger.open(db, key_path=f"{db}.key") as led:
        led.append(
            [
                Submission(
                    {
                        "id": str(uuid.uuid4()),
                        "type": "key.registered",
                        "at": datetime.now(UTC).isoformat(),
                        "actor": "mgr01",
                        "data": {
                            "key": op.verifier.key_ref,
                            "public_key": b64encode(op.verifier.public_key),
                            "holder": op.name,
                        },
                    }
                )
                for op in operators
            ],
            now=datetime.now(UTC),
        )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start(db, port)
    recorded: list[str] = []
    lock = threading.Lock()
    done = threading.Event()

    def operator(op: Signer) -> None:
        with OperatorClient(url, op, work / f"{op.name}.outbox", timeout=5) as client:
            for i in range(args.events):
                event_id = client.record(
                    "access.login", {"person": op.name, "terminal": f"t{i}", "success": True}
                )
                with lock:
                    recorded.append(event_id)
                client.deliver(deadline=time.monotonic() + 120, base_delay=0.02, max_delay=0.3)
            client.deliver(deadline=time.monotonic() + 120)

    threads = [threading.Thread(target=operator, args=(op,)) for op in operators]
    for t in threads:
        t.start()
    acknowledged: dict[str, int] = {}
    for _ in range(args.cycles):
        time.sleep(0.8)
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        for op in operators:  # what clients hold as acknowledged, right after the kill
            path = work / f"{op.name}.outbox"
            if path.exists():
                conn = sqlite3.connect(path)
                acknowledged.update(conn.execute("SELECT id, entry FROM outbox WHERE state = 'delivered'"))
                conn.close()
        server = start(db, port)
    for t in threads:
        t.join()
    done.set()
    server.send_signal(signal.SIGTERM)
    server.wait(30)
    conn = sqlite3.connect(db)
    held: dict[str, list[int]] = {}
    for event_id, idx in conn.execute("SELECT id, idx FROM entries"):
        held.setdefault(event_id, []).append(idx)
    conn.close()
    kept = sum(1 for i, entry in acknowledged.items() if held.get(i) == [entry])
    doubled = sum(1 for indexes in held.values() if len(indexes) > 1)
    in_ledger = sum(1 for i in recorded if i in held)
    print(
        json.dumps(
            {
                "sigkill_cycles": args.cycles,
                "acknowledged_at_kills": len(acknowledged),
                "acknowledged_found_at_same_index": kept,
                "recorded": len(recorded),
                "recorded_in_ledger": in_ledger,
                "doubled_ids": doubled,
                "verify_ok": verify_ledger(db).ok,
            }
        )
    )


if __name__ == "__main__":
    main()
