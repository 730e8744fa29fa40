"""A small call center for the console's tests: a real ledger (set up for September 2026 of the
NHI contract), the ledger service and the console (uvicorn in threads), and the dialling loop's
seats (dialer_core.seats: SeatBoard, one SeatRunner per seat, the seats API on loopback) with a
simulated phone, all on one simulated clock. The loop runs on the ledger's host: it appends
`call.dialed` with the ledger's own key, as `system`."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nacl.pwhash
from processes import ServedApp

from console.app import Console, create_app
from console.config import ConsoleConfig
from console.documents import Documents
from console.keystore import write_sealed
from contract.calendar import TOKYO
from contract.profile import load_profile
from contract.staff import designated
from dialer_core.adapters import DialResult
from dialer_core.campaign import plan_days
from dialer_core.client import pending_events
from dialer_core.datastore import DataStore
from dialer_core.seats import Planned, SeatBoard, SeatRunner, SeatsApi
from dialer_core.targets import import_targets
from ledger import Ledger, Signer, Submission, write_key
from ledger.commands import init_ledger
from ledger.service import ServiceConfig
from ledger.service import create_app as create_service

CONTRACT = "nagaoka-nhi-2026"
MONTH = "2026-09"
PASSPHRASES = {"op01": "オペレータ01のパス", "mgr01": "manager-pass-01", "city01": "city-pass-0001"}
FAST = {"opslimit": nacl.pwhash.argon2id.OPSLIMIT_MIN, "memlimit": nacl.pwhash.argon2id.MEMLIMIT_MIN}
TALK_SCRIPT = """# 国民健康保険料 納付のご案内 トークスクリプト

1. 名乗り：「長岡市国民健康保険料納付コールセンターの○○です。」
2. 本人確認：お名前を確認する（ご家族の場合は続柄を伺う）
3. 用件：国民健康保険料が未納になっていることをお伝えする
4. 納付のお願い：納付方法と納付期限をご案内する
5. お礼とあいさつ：「お忙しいところありがとうございました。」
"""
FAQ = "# よくある質問\n\nQ. 分割で払えますか。\nA. 市の担当課にご相談ください。担当者から連絡します。\n"
MANUAL = "# 業務マニュアル\n\n架電の手順、個人情報の扱い、エスカレーションの手順。\n"

# The city's file: five residents to call and one more.
RESIDENTS = [
    ("202609-00001", "佐藤 太郎", "090-1234-5678", "", "初期滞納", 48000),
    ("202609-00002", "鈴木 花子", "0258-22-1234", "", "長期・高額滞納", 126000),
    ("202609-00003", "高橋 一郎", "080-2345-6789", "0258-33-2345", "分納不履行", 30000),
    ("202609-00004", "田中 美咲", "070-3456-7890", "", "初期滞納", 15000),
    ("202609-00005", "渡辺 健太", "090-4567-8901", "", "その他", 72000),
    ("202609-00006", "伊藤 陽子", "080-5678-9012", "", "初期滞納", 9000),
]


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TOKYO)


class SimClock:
    """One clock for every part: the tests move it."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self.now += timedelta(**delta)
            return self.now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self.now = moment



LOOP_TOKEN = "console-test-token"
SEATS = ["s01", "s02"]
CALLER_IDS = ("0258-39-1001", "0258-39-1002")


class SimPhone:
    """A seat's phone, simulated: it rings for `answer_after` wall seconds, the resident (or a
    voicemail box) answers, and hangs up once the operator has classified the call."""

    def __init__(
        self, board: SeatBoard, seat: str, clock: Callable[[], datetime], answer_after: float
    ) -> None:
        self.board, self.seat, self.clock, self.answer_after = board, seat, clock, answer_after
        self._hung = threading.Event()

    def dial(
        self,
        phone: str,
        at: datetime,
        *,
        weekday: bool = True,
        caller_id: str | None = None,
        progress: Any = None,
    ) -> DialResult:
        self._hung.clear()
        if progress is not None:
            progress("ringing", {})
        if phone.endswith(":no_answer"):  # nobody answers: 35 s of ringing, simulated at once
            return DialResult("no_answer", 35, self.clock())
        self._hung.wait(self.answer_after)
        answered = self.clock()
        if progress is not None:
            progress("connected", {})
        while not self._hung.is_set():
            if self.board.wait_classified(self.seat, 0.5) is not None:
                break
        return DialResult("answered", 8, self.clock(), answered_at=answered)

    def hangup(self) -> None:
        self._hung.set()


class Loop:
    """The dialling loop's seats with simulated phones; `queue` is the plan (case, number ref)."""

    def __init__(
        self,
        ledger_path: Path,
        key_path: Path,
        clock: Callable[[], datetime],
        answer_after: float,
        seats: list[str],
    ):
        self.board = SeatBoard(seats)
        self.api = SeatsApi(self.board, LOOP_TOKEN)
        self.queue: list[tuple[str, str]] = []
        self.unanswered: set[str] = set()  # cases whose phone nobody answers
        self._lock = threading.Lock()
        self._ledger = Ledger.open(ledger_path, key_path=key_path)
        self.clock = clock
        self.phones = [SimPhone(self.board, seat, clock, answer_after) for seat in seats]
        self.runners = [
            SeatRunner(seat, phone, self.board, self.plan, self.record, clock, idle_s=0.02)
            for seat, phone in zip(seats, self.phones, strict=True)
        ]
        self.threads = [threading.Thread(target=r.run, daemon=True) for r in self.runners]

    def plan(self, seat: str, now: datetime) -> Planned | None:
        with self._lock:
            if not self.queue:
                return None
            case, number = self.queue.pop(0)
        phone = f"simulated:{'no_answer' if case in self.unanswered else 'answer'}"
        return Planned(case, number, phone, CALLER_IDS[len(self.queue) % 2])

    def record(self, kind: str, data: dict[str, Any], at: datetime) -> None:
        event = {"id": str(uuid.uuid4()), "type": kind, "at": at.isoformat(), "actor": "system", "data": data}
        with self._lock:
            self._ledger.append([Submission(event)], now=self.clock())

    def start(self) -> Loop:
        self.api.__enter__()
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        for runner, phone in zip(self.runners, self.phones, strict=True):
            runner.stop()
            phone.hangup()
        for thread in self.threads:
            thread.join(5)
        self.api.__exit__(None, None, None)
        self._ledger.close()


@dataclass
class World:
    root: Path
    clock: SimClock
    ledger_path: Path
    key_path: Path
    config: ConsoleConfig
    cases: list[str]  # case refs in the order of RESIDENTS
    service: ServedApp | None = None
    loop: Loop | None = None
    console: Console | None = None
    console_server: ServedApp | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def start(
        self, plan: list[str] | None = None, answer_after: float = 0.3, seats: list[str] | None = None
    ) -> World:
        self.start_service()
        self.loop = Loop(self.ledger_path, self.key_path, self.clock, answer_after, seats or SEATS).start()
        self.loop.queue.extend((case, "1") for case in plan or [])
        assert self.service is not None
        token = self.root / "loop.token"
        token.write_text(LOOP_TOKEN)
        config = replace(
            self.config, loop_url=self.loop.api.url, ledger_url=self.service.url, loop_token_file=token
        )
        self.config = config
        self.console = Console(config, clock=self.clock)
        console = self.console
        self.console_server = ServedApp(lambda: create_app(console)).start()
        return self

    def start_service(self) -> None:
        port = self.service.port if self.service else None

        def make() -> Any:
            led = Ledger.open(self.ledger_path, key_path=self.key_path)
            self.extra["service_ledger"] = led
            return create_service(
                led,
                clock=self.clock,
                config=ServiceConfig(checkpoint_seconds=3600),
                key_policy=designated("manager"),
            )

        self.service = ServedApp(make, port).start()

    def stop_service(self) -> None:
        assert self.service is not None
        self.service.stop()
        led = self.extra.pop("service_ledger", None)
        if led is not None:
            led.close()

    def stop(self) -> None:
        if self.console_server is not None:
            self.console_server.stop()
        if self.loop is not None:
            self.loop.stop()
            self.loop = None
        if self.service is not None and self.service.server is not None:
            self.stop_service()

    @property
    def url(self) -> str:
        assert self.console_server is not None
        return self.console_server.url

    def ledger_events(self) -> list[dict[str, Any]]:
        import json

        with Ledger.open(self.ledger_path, readonly=True) as led:
            return [json.loads(leaf)["event"] | {"_index": i} for i, leaf, _ in led.leaves()]

    def wait_delivered(self, timeout: float = 15.0) -> None:
        """Until every outbox of the console is empty."""
        assert self.console is not None
        deadline = time.time() + timeout
        while True:
            pending = sum(w.client.pending() for w in list(self.console.writers.values()))
            # and the outboxes of people whose last session ended (their couriers deliver them)
            pending += sum(len(pending_events(c.outbox)) for c in list(self.console.leftover.values()))
            if pending == 0:
                return
            assert time.time() < deadline, f"{pending} events still in the outboxes"
            time.sleep(0.1)


def targets_csv(more: int = 0) -> bytes:
    """The city's file: RESIDENTS, then `more` made-up residents with a mobile number each."""
    rows = list(RESIDENTS) + [
        (
            f"202609-{i + 10:05d}",
            f"長岡 住民{i}",
            f"090-{i // 10000:04d}-{i % 10000:04d}",
            "",
            "初期滞納",
            1000 + i,
        )
        for i in range(more)
    ]
    lines = ["案件番号,氏名,電話番号1,電話番号2,滞納区分,滞納額,住所"]
    for number, name, one, two, category, amount in rows:
        lines.append(f"{number},{name},{one},{two},{category},{amount},新潟県長岡市幸町2-1")
    return ("\r\n".join(lines) + "\r\n").encode("cp932")


def operator_passphrase(person: str) -> str:
    return PASSPHRASES.get(person, f"pass-of-{person}")


def build_world(
    root: Path, *, start: datetime | None = None, operators: int = 1, more_residents: int = 0
) -> World:
    """The ledger as the month's first calling days left it: staff trained and pledged, keys,
    two outgoing landlines, the schedule, the city's file imported, the documents approved.
    Operators are op01 (and op002, op003, ... with `operators` > 1, for the benchmark)."""
    root.mkdir(parents=True, exist_ok=True)
    profile = load_profile(CONTRACT)
    setup_at = t("2026-09-18 09:00")
    clock = SimClock(start or t("2026-09-24 10:00"))
    ledger_path = root / "ledger.db"
    led, key_path = init_ledger(
        ledger_path, origin="nagaoka.example/kansa/nhi-2026", contract=CONTRACT, key_path=None, now=setup_at
    )
    keys = root / "keys"
    keys.mkdir()
    events: list[dict[str, Any]] = []

    def add(type_: str, actor: str, minutes: int = 0, /, **data: Any) -> None:
        at = setup_at + timedelta(minutes=minutes)
        events.append(
            {"id": str(uuid.uuid4()), "type": type_, "at": at.isoformat(), "actor": actor, "data": data}
        )

    ops = ["op01", *(f"op{i:03d}" for i in range(2, operators + 1))]
    for person, role in (
        ("city01", "city"),
        ("mgr01", "manager"),
        ("cus01", "custodian"),
        *((op, "operator") for op in ops),
    ):
        add("staff.designated", "system", person=person, role=role, by="city01")
    people = {}
    for person in (*ops, "mgr01", "city01"):
        signer = Signer.generate(person)
        write_sealed(keys / f"{person}.sealed", signer, operator_passphrase(person), **FAST)
        people[person] = signer
    newcomer = Signer.generate("op99")  # sealed but not registered: the manager registers it
    write_sealed(keys / "op99.sealed", newcomer, "op99-passphrase", **FAST)
    device = Signer.generate("console01")
    write_key(root / "console01.key", device)
    core = Signer.generate("system")  # the dialling core's key, for `kansa dialer run`
    write_key(root / "system.key", core)
    for signer in (*people.values(), device, core):
        v = signer.verifier
        add(
            "key.registered",
            "system",
            1,
            key=v.key_ref,
            public_key=base64.b64encode(v.public_key).decode(),
            holder=v.name,
        )
    for person in ("mgr01", *ops):
        for course in ("laws_manual", "privacy", "phone"):
            add("staff.trained", "system", 2, person=person, course=course, by="mgr01")
        add("staff.pledged", "system", 2, person=person, sha256="ab" * 32, to="city01")
    for number in CALLER_IDS:
        add("callerid.registered", "system", 3, number=number, kind="landline")
    campaign = plan_days(profile, MONTH)
    add(
        "campaign.scheduled",
        "system",
        4,
        month=MONTH,
        days=[d.isoformat() for d in campaign.days],
        excluded=[],
    )
    add("access.login", "cus01", 5, person="cus01", terminal="custody", success=True)
    targets = root / "targets.csv"
    targets.write_bytes(targets_csv(more_residents))
    store = DataStore(root / "store.db")
    parsed = import_targets(
        targets,
        batch="B2026-09",
        month=MONTH,
        store=store,
        append=events.extend,
        custodian="cus01",
        received_from="city01",
        media="USB-2026-09",
        encrypted=True,
        transport="hand_delivery",
        now=setup_at + timedelta(minutes=10),
        new_id=lambda: str(uuid.uuid4()),
    )
    store.close()
    add("custody.media_erased", "cus01", 20, batch="B2026-09", media="USB-2026-09", method="overwrite")
    documents = Documents(root / "documents")
    for doc_kind, version, text in (
        ("manual", "M1", MANUAL),
        ("faq", "F1", FAQ),
        ("talk_script", "TS-2026-09", TALK_SCRIPT),
    ):
        doc = documents.load(doc_kind, version, f"{doc_kind}.md", text.encode(), by="mgr01", now=setup_at)
        add("document.approved", "city01", 30, kind=doc_kind, version=version, sha256=doc.sha256, by="city01")
    documents.close()
    led.append([Submission(e) for e in events], now=setup_at + timedelta(minutes=31))
    led.sign_checkpoint(now=setup_at + timedelta(minutes=31))
    led.close()

    config = ConsoleConfig(
        ledger_url="http://127.0.0.1:1",  # set when the service starts
        ledger_copy=ledger_path,
        loop_url="http://127.0.0.1:1",
        store=root / "store.db",
        keys=keys,
        outboxes=root / "outboxes",
        documents=root / "documents",
        device_key=root / "console01.key",
        results=root / "ledger.compliance.db",
    )
    world = World(root, clock, ledger_path, key_path, config, [r.case_ref for r in parsed.residents])
    world.extra["people"] = people
    return world


def http_client(world: World) -> httpx.Client:
    return httpx.Client(base_url=world.url, follow_redirects=False, timeout=30)
