"""The operators' console under 200 simulated operators, over HTTP, against one console process.

    .venv/bin/python benchmarks/console_bench.py [--operators 200] [--calls 3] [--talk-seconds 6]

One `kansa console serve` process; the ledger service in this process; the dialling loop's
seats (dialer_core.seats with simulated phones that answer at once) in a process of their
own. Each simulated operator signs in, presses ready, and works its calls as the browser
would: the waiting page, the long poll of the seat, the resident's page (access.viewed made
durable first), the talk and wrap-up (--talk-seconds on average: a 3-minute call compressed
30 times by default; 0 for a saturation test), the classification, the outcome form. Prints
the pace and the offered load, calls/s, the load average, the CPU per call of the console
and of the seats, and p50/p95/max of

- ready -> call shown: from pressing ready (or the previous outcome's answer) until the
  resident's page arrived (target < 100 ms at 200 operators);
- submit -> recorded: the outcome form's POST until its answer (signed and durable in the
  operator's outbox; target < 100 ms);
- outbox lag: from that answer until the ledger service received the event (`received`).

Figures and what they mean: docs/console.md, "Speed".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from console_world import (  # noqa: E402
    LOOP_TOKEN,
    Loop,
    build_world,
    operator_passphrase,
)
from processes import ServedApp, free_port  # noqa: E402

from contract.calendar import TOKYO  # noqa: E402
from ledger import Ledger  # noqa: E402
from ledger.service import ServiceConfig  # noqa: E402
from ledger.service import create_app as create_service  # noqa: E402

# A call's talk and wrap-up, compressed: real ones last minutes (about 3 with the wrap-up);
# 6 s is 30 times faster, so 200 operators offer about 33 calls/s, some 30 times the real rate.
TALK_SECONDS = 6.0
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
CALL = re.compile(r'name="call" value="([^"]+)"')
VERSION = re.compile(r'data-poll-version="(\d+)"')


def wall() -> datetime:
    return datetime.now(TOKYO)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def report(name: str, values: list[float]) -> None:
    ms = [v * 1000 for v in values]
    print(
        f"{name:28s} n={len(ms):4d}  p50 {statistics.median(ms):7.1f} ms  p95 {pct(ms, 95):7.1f} ms"
        f"  max {max(ms):7.1f} ms"
    )


# The console's own time per answer (Server-Timing), and how much of it was waiting for the loop.
SERVER: dict[str, list[float]] = {
    "resident page": [],
    "resident: waiting for the loop": [],
    "submit": [],
    "submit: waiting for the loop": [],
}


def timing(response: httpx.Response, name: str) -> float:
    parts = dict(p.strip().split(";dur=") for p in response.headers["server-timing"].split(","))
    return float(parts[name]) / 1000


STAGE: dict[str, str] = {}  # person -> what it is doing (printed if the run hangs)


@dataclass
class Pace:
    """How the simulated people work: each call's talk and wrap-up lasts `talk` seconds on
    average (uniform between half and one and a half times it; 0: the next step at once, a
    saturation test), and everyone is signed in before anyone presses ready; with a pace,
    each presses ready at a random moment of the first `talk` seconds, as a room of people
    does, not all in the same millisecond."""

    talk: float
    rng: random.Random

    def talk_s(self) -> float:
        return self.talk * self.rng.uniform(0.5, 1.5) if self.talk else 0.0

    def first_s(self) -> float:
        return self.rng.uniform(0, self.talk) if self.talk else 0.0


async def sign_in(c: httpx.AsyncClient, person: str, seat: str) -> str:
    """Signs in as the browser does; returns the page's CSRF token."""
    pre = CSRF.search((await c.get("/signin")).text)
    assert pre
    answer = await c.post(
        "/signin",
        data={
            "csrf": pre.group(1),
            "person": person,
            "passphrase": operator_passphrase(person),
            "role": "operator",
            "seat": seat,
        },
    )
    assert answer.status_code == 303, answer.text[:300]
    home = CSRF.search((await c.get("/op")).text)
    assert home
    STAGE[person] = "signed in"
    return home.group(1)


async def work(
    c: httpx.AsyncClient,
    person: str,
    csrf: str,
    calls: int,
    shown: list[float],
    recorded: list[float],
    submitted: dict[str, float],
    pace: Pace,
) -> None:
    """Presses ready and works `calls` calls: the waiting page and its long poll, the
    resident's page, the talk and wrap-up (`pace`), the classification, the outcome form."""
    await asyncio.sleep(pace.first_s())
    start = time.perf_counter()
    STAGE[person] = "ready"
    assert (await c.post("/op/ready", data={"csrf": csrf})).status_code == 303
    for k in range(calls):
        STAGE[person] = f"call {k}: waiting"
        last = await c.get("/op/call")
        page = last.text
        while 'id="resident"' not in page:
            version = VERSION.search(page)
            params = {"version": version.group(1)} if version else {}
            await c.get("/op/seat.json", params=params)
            last = await c.get("/op/call")
            page = last.text
        shown.append(time.perf_counter() - start)
        SERVER["resident page"].append(timing(last, "app"))
        SERVER["resident: waiting for the loop"].append(timing(last, "loop"))
        STAGE[person] = f"call {k}: talking"
        await asyncio.sleep(pace.talk_s())  # the talk, then the wrap-up (the form filled in)
        STAGE[person] = f"call {k}: classify"
        assert (await c.post("/op/classify", data={"csrf": csrf, "kind": "person"})).status_code == 303
        form = CALL.search((await c.get("/op/call")).text)
        assert form
        t0 = time.perf_counter()
        STAGE[person] = f"call {k}: outcome"
        answer = await c.post(
            "/op/outcome",
            data={
                "csrf": csrf,
                "call": form.group(1),
                "party": "other",
                "disposition": "number_unusable",
            },
        )
        assert answer.status_code == 303, answer.text[:500]
        recorded.append(time.perf_counter() - t0)
        SERVER["submit"].append(timing(answer, "app"))
        SERVER["submit: waiting for the loop"].append(timing(answer, "loop"))
        submitted[form.group(1)] = time.time()
        start = time.perf_counter()
    STAGE[person] = "done"


def serve_loop(root: Path, n: int) -> None:
    """--loop-only: the seats with simulated phones, until terminated; prints the API's URL."""
    import signal

    loop = Loop(root / "center" / "ledger.db", root / "center" / "ledger.db.key", wall, 0.0, seats_of(n))
    loop.queue.extend((case, "1") for case in json.loads((root / "queue.json").read_text()))
    loop.start()
    print(loop.api.url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    loop.stop()


def cpu_s(pid: int) -> float:
    """The process's CPU seconds so far (user and system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def seats_of(n: int) -> list[str]:
    return [f"b{i:03d}" for i in range(n)]


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--loop-only":
        serve_loop(Path(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--operators", type=int, default=200)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument(
        "--talk-seconds",
        type=float,
        default=TALK_SECONDS,
        help=f"mean talk and wrap-up per call, uniform in 0.5-1.5 times it (default {TALK_SECONDS}: "
        "a 3-minute call compressed 30 times); 0: no pause at all, a saturation test",
    )
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    n, calls = args.operators, args.calls
    pace = Pace(args.talk_seconds, random.Random(args.seed))
    with tempfile.TemporaryDirectory(prefix="console-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        # A seat dials once more after its operator's last call: one case more each.
        world = build_world(root / "center", operators=n, more_residents=n * (calls + 1))
        print(f"set-up: {n} operators, {len(world.cases)} cases in {time.perf_counter() - t0:.1f} s")

        def make_service() -> object:
            led = Ledger.open(world.ledger_path, key_path=world.key_path)
            return create_service(led, clock=wall, config=ServiceConfig(checkpoint_seconds=3600))

        service = ServedApp(make_service).start()
        seats = seats_of(n)
        # The dialling loop in a process of its own, so its hundreds of seat threads do not
        # share a GIL with the simulated browsers.
        (root / "queue.json").write_text(json.dumps(world.cases[6:]))
        loop_proc = subprocess.Popen(
            [sys.executable, __file__, "--loop-only", str(root), str(n)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert loop_proc.stdout is not None
        loop_url = loop_proc.stdout.readline().strip()
        (root / "loop.token").write_text(LOOP_TOKEN)
        port = free_port()
        c = world.config
        config = root / "console.toml"
        config.write_text(
            "[console]\n"
            + "".join(
                f"{k} = {json.dumps(str(v))}\n"
                for k, v in {
                    "ledger_url": service.url,
                    "ledger_copy": c.ledger_copy,
                    "loop_url": loop_url,
                    "loop_token_file": root / "loop.token",
                    "store": c.store,
                    "keys": c.keys,
                    "outboxes": c.outboxes,
                    "documents": c.documents,
                    "device_key": c.device_key,
                }.items()
            )
            + f"port = {port}\n",
            encoding="utf-8",
        )
        exe = str(Path(sys.executable).parent / "kansa")
        command = [exe, "console", "serve", str(config)]
        if os.environ.get("CONSOLE_BENCH_PROFILE"):  # the console's main thread under cProfile
            command = [sys.executable, "-m", "cProfile", "-o", os.environ["CONSOLE_BENCH_PROFILE"], *command]
        log = open(root / "console.log", "wb")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(
            command,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 60
            while True:
                try:
                    httpx.get(f"{url}/signin", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.time() < deadline and proc.poll() is None, "the console did not start"
                    time.sleep(0.2)
            shown: list[float] = []
            recorded: list[float] = []
            submitted: dict[str, float] = {}
            people = ["op01", *(f"op{i:03d}" for i in range(2, n + 1))]

            # uvicorn closes a connection idle for 5 s; a client reusing it at that moment got a
            # ReadError: the simulated browsers let theirs go after 4 s of talk.
            limits = httpx.Limits(keepalive_expiry=4.0)
            clients = [httpx.AsyncClient(base_url=url, timeout=120, limits=limits) for _ in people]
            phase: dict[str, float] = {}

            async def everyone() -> None:
                try:
                    phase["sign-in"] = time.perf_counter()
                    tokens = await asyncio.gather(
                        *(sign_in(c, p, s) for c, p, s in zip(clients, people, seats, strict=True))
                    )
                    phase["work"] = time.perf_counter()
                    phase["console cpu"], phase["loop cpu"] = cpu_s(proc.pid), cpu_s(loop_proc.pid)
                    await asyncio.gather(
                        *(
                            work(c, p, token, calls, shown, recorded, submitted, pace)
                            for c, p, token in zip(clients, people, tokens, strict=True)
                        )
                    )
                    phase["done"] = time.perf_counter()
                    phase["console cpu"] = cpu_s(proc.pid) - phase["console cpu"]
                    phase["loop cpu"] = cpu_s(loop_proc.pid) - phase["loop cpu"]
                finally:
                    await asyncio.gather(*(c.aclose() for c in clients))

            def watchdog() -> None:
                time.sleep(float(os.environ.get("CONSOLE_BENCH_WATCHDOG", "600")))
                stuck = {p: st for p, st in STAGE.items() if st != "done"}
                print(f"still running after the watchdog: {len(stuck)}, e.g. {list(stuck.items())[:5]}")
                print("console log:", (root / "console.log").read_text(errors="replace")[-2500:])

            threading.Thread(target=watchdog, daemon=True).start()
            load_before = os.getloadavg()[0]
            try:
                asyncio.run(everyone())
            except BaseException:
                print(f"the console exited with {proc.poll()}; its log ends with:")
                print((root / "console.log").read_text(errors="replace")[-3000:])
                raise
            took = phase["done"] - phase["work"]
            rate = n * calls / took
            print(f"sign-in: {n} operators at once in {phase['work'] - phase['sign-in']:.1f} s")
            if pace.talk:
                print(
                    f"pace: talk and wrap-up {pace.talk:g} s a call on average (uniform "
                    f"{pace.talk / 2:g}-{pace.talk * 1.5:g} s), phones answer at once: "
                    f"offered at most {n / pace.talk:.0f} calls/s"
                )
            else:
                print("pace: none (each step the moment the previous answer arrives: a saturation test)")
            print(
                f"{n} operators x {calls} calls: {n * calls} calls in {took:.1f} s ({rate:.1f} calls/s);"
                f" load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
                f" ({os.cpu_count()} cores)"
            )
            print(
                f"CPU per call: console {phase['console cpu'] / (n * calls) * 1000:.1f} ms, "
                f"seats {phase['loop cpu'] / (n * calls) * 1000:.1f} ms"
            )
            report("ready -> call shown", shown)
            report("submit -> recorded", recorded)
            for name, values in SERVER.items():
                report(f"  console: {name}", values)
            # Outbox lag: until the ledger service received each outcome.
            received: dict[str, float] = {}
            deadline = time.time() + 120
            while len(received) < len(submitted) and time.time() < deadline:
                time.sleep(0.5)
                with Ledger.open(world.ledger_path, readonly=True) as led:
                    for _i, leaf, _h in led.leaves():
                        entry = json.loads(leaf)
                        if entry["event"]["type"] == "call.outcome":
                            received[entry["event"]["data"]["call"]] = datetime.fromisoformat(
                                entry["received"]
                            ).timestamp()
            lags = [received[call] - at for call, at in submitted.items() if call in received]
            report("outbox lag (to the ledger)", lags)
            if len(lags) < len(submitted):
                print(f"  {len(submitted) - len(lags)} outcomes had not reached the ledger after 120 s")
        finally:
            proc.terminate()
            try:
                proc.wait(30)  # uvicorn lets open long polls finish first
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
            loop_proc.terminate()
            try:
                loop_proc.wait(30)  # its seats' threads stop one by one
            except subprocess.TimeoutExpired:
                loop_proc.kill()
                loop_proc.wait()
            service.stop()


if __name__ == "__main__":
    main()
