"""Real SIP: each seat's phone is a baresip instance driven through its `ctrl_tcp` module.

baresip (Debian package `baresip-core`) is the operator's softphone: the loop
tells it to dial, and the audio is at the operator's headset from the first
ring, so no media bridge is needed. `ctrl_tcp` speaks netstring-framed JSON:

    command  {"command": "dial", "params": "sip:...", "token": "7"}
    response {"response": true, "ok": true, "data": "", "token": "7"}
    event    {"event": true, "class": "call", "type": "CALL_CLOSED",
              "param": "486 Busy Here", "direction": "outgoing", "id": "<Call-ID>", ...}

`SipTelephony` implements the `Telephony` protocol (adapters.py) for one seat:
it places the call, measures the ring time from the signalling (the first 180
or 183 to the 200 OK, or to the end of ringing), gives up after the ring
timeout (never before the profile's ring time) and maps the final SIP status
to the ledger's results. `Baresip` starts and stops an instance with its own
configuration directory, headless (no sound card: a sine tone or a WAV file is
the source, `aubridge` the player); the tests' residents are instances too.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .adapters import Conversation, DialResult

# -- ctrl_tcp ---------------------------------------------------------------------------------


class SipError(Exception):
    """baresip could not be started, reached, or refused a command."""


def netstring(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj).encode()
    return b"%d:%s," % (len(body), body)


class CtrlTcp:
    """A connection to one baresip's ctrl_tcp: commands answered in order, events on a queue."""

    def __init__(
        self, host: str, port: int, *, timeout: float = 30.0, alive: Callable[[], bool] | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        attempts = 0
        while True:
            attempts += 1
            try:
                # each try may wait for the rest of the time: on a loaded machine a fresh baresip
                # can take seconds to accept (CI saw 2 s connect timeouts at start-up)
                wait = max(1.0, deadline - time.monotonic())
                self.sock = socket.create_connection((host, port), timeout=wait)
                break
            except OSError as exc:
                gone = alive is not None and not alive()
                if time.monotonic() > deadline or gone:
                    why = "the process exited" if gone else f"nothing accepted within {timeout:g} s"
                    raise SipError(
                        f"baresip ctrl_tcp at {host}:{port} unreachable after {attempts} tries ({why}): {exc}"
                    ) from exc
                time.sleep(0.05)
        self.sock.settimeout(None)
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._responses: dict[str, queue.Queue[dict[str, Any] | None]] = {}
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()
        self.closed = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"ctrl_tcp:{port}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                buf += data
                while True:
                    head, sep, rest = buf.partition(b":")
                    if not sep:
                        break
                    if not head.isdigit():
                        raise SipError(f"ctrl_tcp: not a netstring: {buf[:40]!r}")
                    size = int(head)
                    if len(rest) < size + 1:
                        break
                    message = json.loads(rest[:size])
                    buf = rest[size + 1 :]
                    self._dispatch(message)
        except (OSError, ValueError, SipError):
            pass
        finally:
            with self._lock:
                self.closed.set()
                waiting = list(self._responses.values())
                self._responses.clear()
            for answer in waiting:  # a command waiting for its response learns the phone went away
                answer.put(None)
            self.events.put(None)  # wakes whoever waits on events: the phone went away

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("response"):
            waiting = self._responses.pop(str(message.get("token")), None)
            if waiting is not None:
                waiting.put(message)
        elif message.get("event"):
            self.events.put(message)

    def command(self, command: str, params: str = "", *, timeout: float = 5.0) -> dict[str, Any]:
        """Sends a command and waits for its response; raises SipError when it is refused,
        or when the connection is closed (before or while waiting): never a bare OSError."""
        token = str(next(self._tokens))
        answer: queue.Queue[dict[str, Any] | None] = queue.Queue()
        with self._lock:
            if self.closed.is_set():
                raise SipError(f"ctrl_tcp: {command} not sent: the connection is closed")
            self._responses[token] = answer
            try:
                self.sock.sendall(netstring({"command": command, "params": params, "token": token}))
            except OSError as exc:
                self._responses.pop(token, None)
                raise SipError(f"ctrl_tcp: {command} not sent: {exc}") from exc
        try:
            response = answer.get(timeout=timeout)
        except queue.Empty as exc:
            self._responses.pop(token, None)
            raise SipError(f"ctrl_tcp: no response to {command} within {timeout:g} s") from exc
        if response is None:
            raise SipError(f"ctrl_tcp: the connection closed before the response to {command}")
        if not response.get("ok"):
            raise SipError(f"baresip refused {command} {params}: {response.get('data')}")
        return response

    def close(self) -> None:
        """Closes the connection and waits for its reader thread to end (nothing runs on after it)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        if self._reader is not threading.current_thread():
            self._reader.join(5)


# -- a baresip instance -------------------------------------------------------------------------

BARESIP_MODULES = Path("/usr/lib/baresip/modules")


def baresip_available() -> bool:
    return shutil.which("baresip") is not None and (BARESIP_MODULES / "ctrl_tcp.so").exists()


def free_port() -> int:
    """A port free for both UDP and TCP on loopback (SIP listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise SipError("no free port on loopback")


@dataclass
class Baresip:
    """One headless baresip: its own config directory, SIP on `sip_port`, ctrl_tcp on `ctrl_port`.

    `accounts` are baresip account lines' users: `{"seat01": "manual"}` gives
    `<sip:seat01@127.0.0.1:PORT>;regint=0;answermode=manual`. `source` is the
    audio the instance sends: `ausine,440` or `aufile,/path/to.wav`.
    """

    home: Path
    accounts: dict[str, str]
    sip_port: int = 0
    ctrl_port: int = 0
    host: str = "127.0.0.1"
    source: str = "ausine,440"
    extra_accounts: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    ctrl: CtrlTcp | None = None

    def uri(self, user: str) -> str:
        return f"sip:{user}@{self.host}:{self.sip_port}"

    def write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.sip_port = self.sip_port or free_port()
        while not self.ctrl_port or self.ctrl_port == self.sip_port:
            self.ctrl_port = free_port()
        device = self.home.name
        (self.home / "config").write_text(
            "\n".join(
                [
                    "poll_method epoll",
                    f"sip_listen {self.host}:{self.sip_port}",
                    "call_local_timeout 600",
                    "call_max_calls 4",
                    "net_interface 127.0.0.1",
                    f"audio_player aubridge,{device}",
                    f"audio_source {self.source}",
                    f"audio_alert aubridge,{device}",
                    # ausine and aufile give 48 kHz stereo; baresip resamples to the codec
                    "ausrc_srate 48000",
                    "auplay_srate 48000",
                    "ausrc_channels 2",
                    "auplay_channels 2",
                    f"module_path {BARESIP_MODULES}",
                    "module g711.so",
                    "module aubridge.so",
                    "module ausine.so",
                    "module aufile.so",
                    "module_tmp account.so",
                    "module_app menu.so",
                    "module_app ctrl_tcp.so",
                    f"ctrl_tcp_listen {self.host}:{self.ctrl_port}",
                    "",
                ]
            )
        )
        lines = [
            f"<sip:{user}@{self.host}:{self.sip_port}>;regint=0;answermode={mode}"
            for user, mode in self.accounts.items()
        ]
        (self.home / "accounts").write_text("\n".join([*lines, *self.extra_accounts, ""]))

    def start(self, *, timeout: float = 30.0) -> Baresip:
        """Starts the instance; with ports chosen here (0), a port taken meanwhile is chosen again."""
        if not baresip_available():
            raise SipError("baresip is not installed (Debian package baresip-core)")
        chosen = not self.sip_port and not self.ctrl_port
        for attempt in range(3):
            try:
                return self._start(timeout)
            except SipError:
                if not chosen or attempt == 2:
                    raise
                self.sip_port = self.ctrl_port = 0
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> Baresip:
        self.write_config()
        log = (self.home / "baresip.log").open("wb")
        self.process = subprocess.Popen(
            ["baresip", "-f", str(self.home)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.home,
        )
        log.close()
        try:
            process = self.process
            self.ctrl = CtrlTcp(
                self.host, self.ctrl_port, timeout=timeout, alive=lambda: process.poll() is None
            )
        except SipError as exc:
            code = process.poll()
            self.stop()
            log_tail = (self.home / "baresip.log").read_text(errors="replace").strip().splitlines()[-3:]
            state = f"exited with {code}" if code is not None else "still running, not answering"
            tail = " | ".join(log_tail) or "(empty)"
            raise SipError(f"{exc}; baresip {state}; its log ends: {tail}") from exc
        return self

    def stop(self) -> None:
        if self.ctrl is not None:
            self.ctrl.close()
            self.ctrl = None
        if self.process is not None:
            self.process.terminate()  # baresip hangs up its calls and exits on SIGTERM
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def __enter__(self) -> Baresip:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- SIP status -> the ledger's results ------------------------------------------------------------

BUSY = {486, 600, 603}
INVALID = {404, 410, 484, 485, 604}


def sip_status(param: str) -> int | None:
    """The status of a CALL_CLOSED event's param ("486 Busy Here"), None for a local reason."""
    head = param.split(" ", 1)[0]
    return int(head) if head.isdigit() and len(head) == 3 else None


def result_of(status: int | None, *, rang_s: float, gave_up: bool, ring_seconds: int) -> str:
    """The result of a call that was never answered.

    `gave_up`: we hung up (cancelled) after the ring timeout; it is `no_answer`
    only when the phone rang at least the profile's ring time, else the line
    never signalled ringing and is `unavailable`.
    """
    if gave_up or status == 487:
        return "no_answer" if rang_s >= ring_seconds else "unavailable"
    if status in BUSY:
        return "busy"
    if status in INVALID:
        return "invalid"
    return "unavailable"  # 480, 408, 5xx, a transport error


# -- the Telephony adapter ---------------------------------------------------------------------------

Progress = Callable[[str, dict[str, Any]], None]


@dataclass
class SipConfig:
    """Settings of a seat's calls (docs/dialer.md, `[telephony]`)."""

    uri_template: str = "sip:{phone}@127.0.0.1:5060"  # how a number becomes a SIP URI (the trunk)
    ring_seconds: int = 35  # the profile's ring time: a no-answer never rings less
    ring_timeout_s: int = 40  # when we give up on a ringing phone (>= ring_seconds)
    no_signal_s: int = 15  # no 18x and no answer by then: unavailable
    max_call_s: int = 1800  # an answered call is hung up after this
    # The seat's account that shows the caller id, e.g. "sip:{caller_id}@10.0.0.21:5060": the seat's
    # baresip has one account per registered line and `uafind` picks it before each dial.
    caller_id_aor: str = ""

    def __post_init__(self) -> None:
        if self.ring_timeout_s < self.ring_seconds:
            raise ValueError(
                f"ring_timeout_s {self.ring_timeout_s} is less than the profile's ring time "
                f"{self.ring_seconds}"
            )


def digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit() or ch == "+")


@dataclass
class SipTelephony:
    """One seat's phone (a baresip) as a `Telephony`: `dial` places one call and returns when it ended.

    `progress(state, info)` is told `ringing`, `connected` and `ended` as they
    happen (the seats API shows them). `hangup()` may be called from another
    thread (the operator's hang-up button). The phone going away mid-call
    ends the call: the result still comes back (answered if it was).
    """

    ctrl: CtrlTcp
    config: SipConfig = field(default_factory=SipConfig)
    _hangup: threading.Event = field(default_factory=threading.Event)
    _busy: threading.Lock = field(default_factory=threading.Lock)

    def hangup(self) -> None:
        self._hangup.set()

    def dial(
        self,
        phone: str,
        at: datetime,
        *,
        weekday: bool = True,
        caller_id: str | None = None,
        progress: Progress | None = None,
    ) -> DialResult:
        with self._busy:
            return self._dial(phone, at, caller_id, progress or (lambda state, info: None))

    def _dial(self, phone: str, at: datetime, caller_id: str | None, progress: Progress) -> DialResult:
        cfg = self.config
        self._hangup.clear()
        self._drain()
        uri = cfg.uri_template.format(phone=digits(phone), caller_id=digits(caller_id or ""))
        if cfg.caller_id_aor and caller_id:  # the registered line this call shows (its From)
            self.ctrl.command("uafind", cfg.caller_id_aor.format(caller_id=digits(caller_id)))
        start = time.monotonic()
        self.ctrl.command("dial", uri)
        call_id: str | None = None
        rang_at: float | None = None
        answered_at: float | None = None
        gave_up = False
        status: int | None = None
        lost = False
        while True:
            now = time.monotonic()
            if answered_at is None:
                deadline = start + cfg.no_signal_s if rang_at is None else rang_at + cfg.ring_timeout_s
            else:
                deadline = answered_at + cfg.max_call_s
            if (now >= deadline or self._hangup.is_set()) and not gave_up:
                gave_up = answered_at is None
                self._send_hangup()
                deadline = now + 10  # the CALL_CLOSED follows
            try:
                event = self.ctrl.events.get(timeout=max(0.01, min(0.2, deadline - now)))
            except queue.Empty:
                if gave_up and time.monotonic() > deadline:
                    break
                continue
            if event is None:  # the phone's control connection went away
                lost = True
                break
            if event.get("direction") != "outgoing" or event.get("class") != "call":
                continue
            if call_id is None and event.get("id"):
                call_id = str(event["id"])
            elif event.get("id") and event["id"] != call_id:
                continue
            kind = event.get("type")
            if kind in ("CALL_RINGING", "CALL_PROGRESS") and rang_at is None and answered_at is None:
                rang_at = time.monotonic()
                progress("ringing", {"sip_call": call_id})
            elif kind == "CALL_ESTABLISHED" and answered_at is None:
                answered_at = time.monotonic()
                progress("connected", {"sip_call": call_id})
            elif kind == "CALL_CLOSED":
                status = sip_status(str(event.get("param", "")))
                break
        end = time.monotonic()
        ring = 0.0 if rang_at is None else (answered_at if answered_at is not None else end) - rang_at
        ring_s = round(ring)  # whole seconds as measured; the no-answer decision uses the exact time
        if answered_at is not None:
            result = "answered"
        elif lost:
            result = "no_answer" if ring >= cfg.ring_seconds else "unavailable"
        else:
            result = result_of(status, rang_s=ring, gave_up=gave_up, ring_seconds=cfg.ring_seconds)
        ended_at = at + timedelta(seconds=end - start)
        progress("ended", {"sip_call": call_id, "result": result, "status": status, "ring_s": ring_s})
        return DialResult(
            result,
            ring_s,
            ended_at,
            answered_at=at + timedelta(seconds=answered_at - start) if answered_at is not None else None,
            sip_status=status,
            lost=lost,
        )

    def _send_hangup(self) -> None:
        with contextlib.suppress(SipError):
            self.ctrl.command("hangup")

    def _drain(self) -> None:
        while True:
            try:
                if self.ctrl.events.get_nowait() is None:
                    self.ctrl.events.put(None)
                    raise SipError("the seat's phone went away")
            except queue.Empty:
                return

    def talk(self, case: str, number: str, at: datetime) -> Conversation:
        raise NotImplementedError("a real call's conversation is the operator's: see the seats API")


def seat_phone(home: Path, seat: str, **kwargs: Any) -> Baresip:
    """A seat's baresip with one account `seat` in manual answer mode (callbacks are offered)."""
    return Baresip(home, {seat: "manual"}, **kwargs)


__all__ = [
    "Baresip",
    "CtrlTcp",
    "SipConfig",
    "SipError",
    "SipTelephony",
    "baresip_available",
    "free_port",
    "result_of",
    "seat_phone",
    "sip_status",
]
