"""Real servers for tests on a free loopback port: a `kansa` subcommand run as a process (`Served`),
or an ASGI app under uvicorn in a thread (`ServedApp`)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

EXE = str(Path(sys.executable).parent / "kansa")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """`kansa ARGS --port P` running until stop(); ready once `probe` answers anything over HTTP."""

    def __init__(
        self,
        args: list[str],
        log: Path,
        probe: str = "/",
        *,
        start_seconds: float = 30,
        stop_seconds: float = 10,
        port_option: bool = True,
    ) -> None:
        self.port = free_port()  # given as --port, or (port_option False) written in its config by the caller
        self.url = f"http://127.0.0.1:{self.port}"
        self.args, self.log_path, self.probe = args, log, probe
        self.port_option = port_option
        self.start_seconds, self.stop_seconds = start_seconds, stop_seconds
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Served:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 (closed by stop)
        self.proc = subprocess.Popen(
            [EXE, *self.args, *(["--port", str(self.port)] if self.port_option else [])],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        deadline = time.monotonic() + self.start_seconds
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + self.probe, timeout=1)
                return self
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"kansa {' '.join(self.args)} did not start: " + self.log_path.read_text())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(self.stop_seconds)
        if self.proc is not None:
            self.log.close()
            self.proc = None


class ServedApp:
    """An ASGI app served by uvicorn in a thread on loopback; stoppable and restartable."""

    def __init__(self, make_app: Any, port: int | None = None) -> None:
        self.make_app = make_app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> ServedApp:
        config = uvicorn.Config(
            self.make_app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            assert time.time() < deadline, "the server did not start"
            assert self.thread.is_alive(), "the server died while starting"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(20)
            self.server = None
