"""`kansa dialer run CONFIG.toml`: the seats, the loop and the seats API, on the wall clock.

The configuration (docs/dialer.md, "Running a campaign") names the ledger
service, the data store, the contract and month, the telephony (baresip seats
through ctrl_tcp, or the simulator), the SMS settings and the seats. Secrets
(the API token, SIP and SMPP passwords, the lookup token) come from files or
environment variables named in the TOML, never from the TOML itself.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from contract.calendar import TOKYO
from contract.profile import load_profile

from .adapters import DialResult, SimulatedPhone, Simulator
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


def secret(section: dict[str, Any], name: str, where: str, base: Path | None = None) -> str:
    """A secret named by `<name>_file` (relative to `base`, the configuration's folder) or
    `<name>_env` (never the value itself)."""
    if f"{name}_file" in section:
        path = (base or Path()) / str(section[f"{name}_file"])
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
    simulator: dict[str, Any] = field(default_factory=dict)  # seed, answer_rate, realtime, ring_s
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
        for index, line in enumerate(raw.get("lines", []), 1):
            lines.append(
                {
                    "name": str(line.get("name", index)),
                    "ctrl": _address(line["ctrl"], "lines"),
                    "message_wav": base / line["message_wav"],
                    "guide_wav": base / line["guide_wav"],
                    "guide_s": float(line.get("guide_s", 20)),
                }
            )
        if lines and set(callback_uris) != set(seats):
            raise ConfigError("[[seats]] each seat needs a callback_uri when [[lines]] take callbacks")
        simulator: dict[str, Any] = {}
        if kind == "simulator":
            simulator = {
                "seed": int(tel.get("seed", 1)),
                "answer_rate": float(tel["answer_rate"]) if "answer_rate" in tel else None,
                "realtime": bool(tel.get("realtime", False)),
                "ring_s": float(tel.get("ring_s", 3)),
            }
            rate = simulator["answer_rate"]
            if rate is not None and not 0 <= rate <= 1:
                raise ConfigError(f"[telephony] answer_rate is between 0 and 1, not {rate}")
        token = secret(api, "token", "api", base)
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
                caller_id_aor=tel.get("caller_id_aor", ""),
            ),
            seats=seats,
            seat_callback_uris=callback_uris,
            lines=lines,
            poll_s=float(dialer.get("poll_s", 2.0)),
            simulator=simulator,
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
    _wake: threading.Event = field(default_factory=threading.Event)
    _record_lock: threading.Lock = field(default_factory=threading.Lock)

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
        # The seats commit call.dialed to the outbox (durable) and go on; the courier delivers,
        # so a ledger outage never stalls a seat (its events arrive, once, when it returns).
        self.client = OperatorClient(cfg.ledger_url, cfg.key, cfg.outbox, clock=self.clock)
        self.courier = OperatorClient(cfg.ledger_url, cfg.key, cfg.outbox, clock=self.clock)
        self.board = SeatBoard(list(cfg.seats))
        self.api = SeatsApi(self.board, cfg.api_token, *cfg.api_listen).__enter__()
        sim = cfg.simulator
        simulator = Simulator(seed=sim.get("seed", 1), answer_rate=sim.get("answer_rate"))
        shared = threading.Lock()
        for seat, address in cfg.seats.items():
            if address is None and not sim.get("realtime"):
                phone: Any = simulator  # every call's result at once: a smoke test of the loop
            elif address is None:
                phone = SimulatedPhone(
                    simulator,
                    self.clock,
                    ring_s=sim.get("ring_s", 3.0),
                    no_answer_s=profile.ring_seconds,
                    max_call_s=cfg.sip.max_call_s,
                    lock=shared,
                )
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
                identify=lambda number: found[0] if (found := store.caller(number)) else None,
                record=self._record,
                clock=self.clock,
                message_wav=line["message_wav"],
                guide_wav=line["guide_wav"],
                guide_s=line["guide_s"],
                name=line["name"],
            )
            self.lines.append(callback)
            self._spawn(callback.run, "callback line")
        self._spawn(self._follow, "ledger follower")
        self._spawn(self._deliver, "outbox courier")
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
        """Signed and committed to the outbox (durable) when this returns; delivered by `_deliver`."""
        with self._record_lock:
            self.client.record(kind, data, at=at)
        self._wake.set()

    def _deliver(self) -> None:
        """The courier: delivers the outbox whenever something was recorded, and every second
        while something is pending (one try per event a round; the service may be away)."""
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            with contextlib.suppress(Exception):
                self.courier.deliver(deadline=time.monotonic())

    def _done(self, planned: Planned, result: DialResult) -> None:
        self.plan.done(planned, result, result.ended_at)

    def stop(self) -> None:
        self._stop.set()
        for runner in self.runners:
            runner.stop()
            if isinstance(runner.phone, SimulatedPhone):
                runner.phone.hangup()  # a rehearsal's call in progress ends with the run
        for line in self.lines:
            line.stop()
        for thread in self._threads:
            thread.join(5)
        for runner in self.runners:  # the phones' control connections, and their reader threads
            ctrl = getattr(runner.phone, "ctrl", None)
            if isinstance(ctrl, CtrlTcp):
                ctrl.close()
        for line in self.lines:
            line.ctrl.close()
        if self.api is not None:
            self.api.__exit__(None, None, None)
        self._wake.set()
        with contextlib.suppress(Exception):  # a last try; what is left is delivered at the next start
            self.courier.deliver(deadline=time.monotonic() + 2)
        self.follower.close()
        self.client.close()
        self.courier.close()
        self.store.close()


def _in_hours(scheduler: Scheduler, at: datetime) -> bool:
    """The center takes callbacks in the calling hours of the day's type (N §8(6): the guide outside)."""
    start, end = scheduler.hours(at.date())
    return start <= at.time() < end


# -- the SMS pass: `kansa dialer sms` -------------------------------------------------------------------


def sms_settings(cfg: RunConfig) -> tuple[Any, Path, Any, str]:
    """(SmppConfig, journal path, lookup, message text) from the [sms] table."""
    from .lookup import HttpLookup, SimulatedLookup
    from .smpp import SmppConfig

    sms = cfg.raw.get("sms")
    if not sms:
        raise ConfigError("[sms] is required to send SMS")
    base = cfg.store.parent
    try:
        smpp = SmppConfig(
            host=sms["host"],
            port=int(sms.get("port", 2775)),
            system_id=sms["system_id"],
            password=secret(sms, "password", "sms", base),
            rate=float(sms.get("rate", 10)),
        )
        if sms.get("lookup_url") == "simulated":
            lookup: Any = SimulatedLookup()
        else:
            lookup = HttpLookup(sms["lookup_url"], token=secret(sms, "lookup_token", "sms", base))
        text = (base / sms["text_file"]).read_text(encoding="utf-8").strip()
    except KeyError as exc:
        raise ConfigError(f"[sms] missing {exc.args[0]}") from exc
    except OSError as exc:
        raise ConfigError(f"[sms] text_file: {exc}") from exc
    return smpp, base / sms.get("journal", "sms-journal.db"), lookup, text


@dataclass
class SmsReport:
    designated: int
    sent: int
    unconfirmed: int
    blocked: int
    already: int
    results: int


def run_sms(cfg: RunConfig, clock: Callable[[], datetime], *, receipts_for: float = 30.0) -> SmsReport:
    """The city's latest SMS list of the month, sent at its time: lookup, block or send, receipts.

    Refused outside the profile's tolerance around `send_at`. A case already in the journal
    (sent, unconfirmed, blocked by the SMSC) is never sent again.
    """
    from .smpp import Journal, SmppGateway, Sms, SmsPass

    smpp, journal_path, lookup, text = sms_settings(cfg)
    profile = load_profile(cfg.contract)
    follower = LedgerFollower(cfg.ledger_url)
    try:
        events = follower.poll()
    finally:
        follower.close()
    lists = [e for e in events if e["type"] == "sms.designated" and e["data"]["send_at"][:7] == cfg.month]
    if not lists:
        raise ConfigError(f"no sms.designated for {cfg.month} in the ledger")
    designation = lists[-1]["data"]
    send_at = datetime.fromisoformat(designation["send_at"])
    now = clock()
    tolerance = profile.sms_send_tolerance_minutes * 60
    if abs((now - send_at).total_seconds()) > tolerance:
        raise ConfigError(
            f"the city's time is {send_at.isoformat()}; now is {now.isoformat()} "
            f"(±{profile.sms_send_tolerance_minutes} min): not sending"
        )
    stopped = {e["data"]["case"] for e in events if e["type"] == "case.stop" and e["at"] <= now.isoformat()}
    mobile: dict[str, str] = {}
    for e in events:
        if e["type"] == "case.opened" and e["data"]["month"] == cfg.month:
            for n in e["data"]["numbers"]:
                if n["kind"] == "mobile":
                    mobile.setdefault(e["data"]["case"], n["ref"])
    key = read_key_bytes(cfg.key)
    journal = Journal(journal_path, key)
    # never twice: what the journal holds, and what the ledger already says of this list
    done = {str(r[0]) for r in journal.db.execute("SELECT case_ref FROM messages")}
    listed_at = lists[-1]["at"]
    done |= {
        e["data"]["case"] for e in events if e["type"] in ("sms.sent", "sms.blocked") and e["at"] >= listed_at
    }
    store = DataStore(cfg.store)
    client = OperatorClient(cfg.ledger_url, cfg.key, cfg.outbox)

    def record(kind: str, data: dict[str, Any], at: datetime) -> None:
        client.record(kind, data, at=at)
        client.deliver(deadline=None)

    gateway = SmppGateway(smpp, journal, record, clock)
    try:
        gateway.recover()
        items = []
        for case in designation["cases"]:
            if case in done or case not in mobile:
                continue
            phone = store.read(case).phone(mobile[case])
            items.append((Sms(case, mobile[case], phone, text, designation["sender_id"]), case in stopped))
        outcomes = SmsPass(gateway, lookup, record, clock).run(items)
        gateway.pump(receipts_for)
        results = journal.db.execute("SELECT count(*) FROM messages WHERE result IS NOT NULL").fetchone()
        return SmsReport(
            designated=len(designation["cases"]),
            sent=sum(o.state == "sent" for o in outcomes),
            unconfirmed=sum(o.state == "unconfirmed" for o in outcomes),
            blocked=sum(o.state == "blocked" for o in outcomes),
            already=len([c for c in designation["cases"] if c in done]),
            results=int(results[0]),
        )
    finally:
        gateway.close()
        journal.close()
        client.close()
        store.close()


def read_key_bytes(path: Path) -> bytes:
    """The journal's HMAC key: derived from the core's key file (no second secret to keep)."""
    import hashlib

    return hashlib.sha256(b"kansa/sms-journal\0" + path.read_bytes()).digest()
