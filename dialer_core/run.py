"""`kansa dialer run CONFIG.toml`: the seats, the loop and the seats API, on the wall clock.

The configuration (docs/dialer.md, "Running a campaign") names the ledger
service, the data store, the contract and month, the telephony (baresip seats
through ctrl_tcp, or the simulator), the SMS settings and the seats. Secrets
(the API token, SIP and SMPP passwords, the lookup token) come from files or
environment variables named in the TOML, never from the TOML itself.
"""

from __future__ import annotations

import os
import random
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from contract.calendar import TOKYO
from contract.profile import load_profile

from .adapters import DialResult, Simulator
from .callbacks import CallbackLine
from .campaign import plan_days
from .client import OperatorClient
from .datastore import DataStore
from .follow import Knowledge, LedgerFollower
from .realtime import CallerIds, SeatPlan
from .scheduler import CaseProgress, NumberProgress, Scheduler
from .seats import Planned, SeatBoard, SeatRunner, SeatsApi
from .sip import CtrlTcp, SipConfig, SipTelephony

SECRET_KEYS = ("password", "token", "secret")


class ConfigError(Exception):
    """The configuration is wrong; the message says what and where."""


def secret(section: dict[str, Any], name: str, where: str) -> str:
    """A secret named by `<name>_file` or `<name>_env` (never the value itself)."""
    if f"{name}_file" in section:
        path = Path(section[f"{name}_file"])
        if not path.exists():
            raise ConfigError(f"[{where}] {name}_file: {path} does not exist")
        return path.read_text().strip()
    if f"{name}_env" in section:
        value = os.environ.get(section[f"{name}_env"])
        if value is None:
            raise ConfigError(f"[{where}] {name}_env: ${section[f'{name}_env']} is not set")
        return value
    return ""


def _no_clear_secrets(table: Any, where: str) -> None:
    if isinstance(table, dict):
        for key, value in table.items():
            if key in SECRET_KEYS or (key.endswith(SECRET_KEYS) and not key.endswith(("_file", "_env"))):
                raise ConfigError(
                    f"[{where}] {key}: secrets never go in the TOML; use {key}_file or {key}_env"
                )
            _no_clear_secrets(value, f"{where}.{key}" if where else key)
    elif isinstance(table, list):
        for item in table:
            _no_clear_secrets(item, where)


@dataclass
class RunConfig:
    ledger_url: str
    store: Path
    key: Path  # the dialling core's signing key (holder "system"), registered in the ledger
    outbox: Path
    contract: str
    month: str
    api_listen: tuple[str, int]
    api_token: str
    telephony: str  # sip or simulator
    sip: SipConfig
    seats: dict[str, tuple[str, int] | None]  # seat -> its baresip's ctrl_tcp address
    seat_callback_uris: dict[str, str] = field(default_factory=dict)  # seat -> its auto-answer account
    lines: list[dict[str, Any]] = field(default_factory=list)  # the center's incoming lines
    poll_s: float = 2.0
    raw: dict[str, Any] = field(default_factory=dict)


def _address(text: str, where: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"[{where}] {text!r} is not host:port")
    return host, int(port)


def load_config(path: Path | str) -> RunConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    _no_clear_secrets(raw, "")
    base = path.parent
    try:
        dialer, api, tel = raw["dialer"], raw.get("api", {}), raw.get("telephony", {})
        seats_raw = raw["seats"]
        kind = tel.get("kind", "sip")
        if kind not in ("sip", "simulator"):
            raise ConfigError(f"[telephony] kind is sip or simulator, not {kind!r}")
        seats: dict[str, tuple[str, int] | None] = {}
        for seat in seats_raw:
            seats[seat["name"]] = _address(seat["ctrl"], f"seats.{seat['name']}") if kind == "sip" else None
        callback_uris = {seat["name"]: seat["callback_uri"] for seat in seats_raw if "callback_uri" in seat}
        lines = []
        for line in raw.get("lines", []):
            lines.append(
                {
                    "ctrl": _address(line["ctrl"], "lines"),
                    "message_wav": base / line["message_wav"],
                    "guide_wav": base / line["guide_wav"],
                    "guide_s": float(line.get("guide_s", 20)),
                }
            )
        if lines and set(callback_uris) != set(seats):
            raise ConfigError("[[seats]] each seat needs a callback_uri when [[lines]] take callbacks")
        token = secret(api, "token", "api")
        if not token:
            raise ConfigError("[api] token_file or token_env is required")
        return RunConfig(
            ledger_url=dialer["ledger_url"],
            store=base / dialer["store"],
            key=base / dialer["key_file"],
            outbox=base / dialer.get("outbox", "dialer.outbox"),
            contract=dialer["contract"],
            month=dialer["month"],
            api_listen=_address(api.get("listen", "127.0.0.1:8780"), "api"),
            api_token=token,
            telephony=kind,
            sip=SipConfig(
                uri_template=tel.get("uri_template", SipConfig.uri_template),
                ring_timeout_s=int(tel.get("ring_timeout_s", 40)),
                max_call_s=int(tel.get("max_call_s", 1800)),
            ),
            seats=seats,
            seat_callback_uris=callback_uris,
            lines=lines,
            poll_s=float(dialer.get("poll_s", 2.0)),
            raw=raw,
        )
    except KeyError as exc:
        raise ConfigError(f"{path}: missing {exc.args[0]}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


@dataclass
class Run:
    """Everything `kansa dialer run` starts; `stop()` ends it."""

    config: RunConfig
    clock: Callable[[], datetime] = lambda: datetime.now(TOKYO)
    classify_timeout_s: float = 600.0
    board: SeatBoard = field(init=False)
    plan: SeatPlan = field(init=False)
    runners: list[SeatRunner] = field(default_factory=list)
    lines: list[CallbackLine] = field(default_factory=list)
    api: SeatsApi | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Run:
        cfg = self.config
        profile = load_profile(cfg.contract)
        self.follower = LedgerFollower(cfg.ledger_url)
        events = self.follower.poll()
        cases: dict[str, CaseProgress] = {}
        for event in events:
            data = event.get("data") or {}
            if event.get("type") == "case.opened" and data.get("month") == cfg.month:
                numbers = {n["ref"]: NumberProgress(n["ref"], n["kind"]) for n in data["numbers"]}
                cases[data["case"]] = CaseProgress(data["case"], numbers)
        scheduler = Scheduler(profile, plan_days(profile, cfg.month), rng=random.Random())
        self.store = DataStore(cfg.store)
        store = self.store
        self.plan = SeatPlan(
            scheduler,
            cases,
            lambda case, number: store.read(case).phone(number),
            knowledge=Knowledge(),
            caller_ids=CallerIds(minimum=profile.callerid_lines_min or 1),
        )
        self._learn(events)
        self.client = OperatorClient(cfg.ledger_url, cfg.key, cfg.outbox)
        self.board = SeatBoard(list(cfg.seats))
        self.api = SeatsApi(self.board, cfg.api_token, *cfg.api_listen).__enter__()
        simulator = Simulator()
        for seat, address in cfg.seats.items():
            if address is None:
                phone: Any = simulator
            else:
                phone = SipTelephony(CtrlTcp(*address), cfg.sip)
            runner = SeatRunner(
                seat,
                phone,
                self.board,
                self.plan,
                self._record,
                self.clock,
                done=lambda planned, result: self._done(planned, result),
                give_back=self.plan.give_back,
                classify_timeout_s=self.classify_timeout_s,
            )
            self.runners.append(runner)
            self._spawn(runner.run, f"seat {seat}")
        for line in cfg.lines:
            callback = CallbackLine(
                CtrlTcp(*line["ctrl"]),
                self.board,
                seat_uri=cfg.seat_callback_uris.__getitem__,
                in_hours=lambda at: _in_hours(scheduler, at),
                identify=lambda number: (found[0] if (found := store.caller(number)) else None),
                record=self._record,
                clock=self.clock,
                message_wav=line["message_wav"],
                guide_wav=line["guide_wav"],
                guide_s=line["guide_s"],
            )
            self.lines.append(callback)
            self._spawn(callback.run, "callback line")
        self._spawn(self._follow, "ledger follower")
        return self

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _learn(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.plan.knowledge.apply(event)
            self.plan.caller_ids.apply(event)

    def _follow(self) -> None:
        while not self._stop.wait(self.config.poll_s):
            try:
                self._learn(self.follower.poll())
            except Exception:  # the service is away: the loop goes on with what it knows
                continue

    def _record(self, kind: str, data: dict[str, Any], at: datetime) -> None:
        self.client.record(kind, data, at=at)
        self.client.deliver(deadline=None)

    def _done(self, planned: Planned, result: DialResult) -> None:
        self.plan.done(planned, result, result.ended_at)

    def stop(self) -> None:
        self._stop.set()
        for runner in self.runners:
            runner.stop()
        for line in self.lines:
            line.stop()
        for thread in self._threads:
            thread.join(5)
        if self.api is not None:
            self.api.__exit__(None, None, None)
        self.follower.close()
        self.client.close()
        self.store.close()


def _in_hours(scheduler: Scheduler, at: datetime) -> bool:
    """The center takes callbacks in the calling hours of the day's type (N §8(6): the guide outside)."""
    start, end = scheduler.hours(at.date())
    return start <= at.time() < end


def running_clock(start: datetime | None) -> Callable[[], datetime]:
    """The wall clock in Asia/Tokyo; from `start`, a clock that runs at the wall's pace (rehearsals)."""
    if start is None:
        return lambda: datetime.now(TOKYO)
    offset = start - datetime.now(TOKYO)
    return lambda: datetime.now(TOKYO) + offset
