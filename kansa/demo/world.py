"""Months of a call center, simulated end to end into a real ledger (what `kansa demo` runs).

The dialing core writes call.dialed and the SMS pass; simulated operators
write call.outcome and escalations through the operators' client (signed with
their own keys, outbox first); the manager, the city and the custodian write
their events with the ledger's key. Every call goes through the scheduler's
guard before it is dialled.

Before the first month the manager loads version 1 of the talk script, the
manual and the FAQ and the city approves them; the manager records each
operator's training and pledge (the bootstrap manager's are recorded by the
system with the staff list). As the city would, each month's file lists again
a share of the residents the previous month did not complete (the same
案件番号, now and then with a new landline), so every run judges cases listed in
several months. The tax contract's data check marks a few cases unsuitable,
its SMS candidates go with the daily report after the last calling day, and
each batch is returned and destroyed after the month's work.

Two faults can be injected to show that the compliance engine, an independent
guard, catches what a broken dialer does: a clock running behind real time
(`clock_offset`), and a holiday calendar that forgets a day (`is_weekday`).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
from starlette.testclient import TestClient

from compliance.rules.attempts import ESCALATING_REQUESTS
from contract.calendar import TOKYO, add_business_days, month_days, previous_month
from contract.profile import Profile
from dialer_core.adapters import Simulator
from dialer_core.campaign import Campaign, IsWeekday, national_is_weekday, plan_days
from dialer_core.client import OperatorClient
from dialer_core.datastore import DataStore
from dialer_core.dialer import Dialer, Dialled
from dialer_core.lookup import LookupAnswer
from dialer_core.scheduler import CaseProgress, NumberProgress, Scheduler, Slot, later_calling_time
from dialer_core.targets import destroy_targets, import_targets
from ledger import Ledger, Signer, Submission
from ledger.commands import default_key_path
from ledger.event import envelope, uuid7
from ledger.service import ServiceConfig, create_app

FAMILY = [
    "佐藤",
    "鈴木",
    "高橋",
    "田中",
    "渡辺",
    "伊藤",
    "山本",
    "中村",
    "小林",
    "加藤",
    "吉田",
    "山田",
    "佐々木",
    "山口",
    "松本",
    "井上",
    "木村",
    "林",
    "斎藤",
    "清水",
    "五十嵐",
    "丸山",
    "星野",
    "小林",
]
GIVEN = [
    "太郎",
    "花子",
    "一郎",
    "美咲",
    "健太",
    "陽子",
    "翔",
    "由美",
    "大輔",
    "恵子",
    "誠",
    "直美",
    "悠斗",
    "愛",
]
CATEGORIES = ["初期滞納", "長期・高額滞納", "分納不履行", "その他"]
HEADER = ["案件番号", "氏名", "電話番号1", "電話番号2", "滞納区分", "滞納額", "住所"]
COURSES = ("laws_manual", "privacy", "phone")  # T §15(1) / N §13(1) ア, イ, ウ
DOCUMENTS = {
    "manual": "業務マニュアル 第1版\n架電の手順、記録、個人情報の取扱い、エスカレーションの手順。\n",
    "talk_script": "トークスクリプト 第1版\n1. 名乗り 2. ご本人確認 3. 納付のお願い 4. 納付予定日の確認\n",
    "faq": "FAQ 第1版\nQ. なぜ電話が来たのですか。 A. 市からの委託で納付のご案内をしています。\n",
}
SCRIPT_VERSION = "1"
STAFF = [("city01", "city"), ("mgr01", "manager"), ("cus01", "custodian")]
SERVICE_URL = "http://ledger.demo"  # the service's app, reached in-process (no socket)
OPERATORS = [f"op{i:02d}" for i in range(1, 6)]


def target_csv(
    rng: random.Random, month: str, cases: int, listed_again: Sequence[Sequence[str]] = ()
) -> bytes:
    """A city's target file for a month, in CP932 as the city's systems write it: the rows
    `listed_again` (residents still in arrears from earlier months) first, then new residents."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(listed_again)
    for i in range(max(0, cases - len(listed_again))):
        mobile = f"0{rng.choice('789')}0-{rng.randrange(1000, 10000)}-{rng.randrange(1000, 10000)}"
        landline = f"0258-{rng.randrange(10, 100)}-{rng.randrange(1000, 10000)}"
        shape = rng.random()
        phones = [mobile, landline] if shape < 0.45 else [mobile, ""] if shape < 0.85 else [landline, ""]
        writer.writerow(
            [
                f"{month.replace('-', '')}-{i + 1:05d}",
                f"{rng.choice(FAMILY)} {rng.choice(GIVEN)}",
                *phones,
                rng.choice(CATEGORIES),
                rng.randrange(1, 200) * 1000,
                f"新潟県長岡市{rng.choice(['幸町', '大手通', '東坂之上町', '城内町'])}{rng.randrange(1, 5)}-"
                f"{rng.randrange(1, 30)}",
            ]
        )
    return out.getvalue().encode("cp932")


def at(day: date, clock: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), TOKYO)


@dataclass
class MonthReport:
    month: str
    campaign: Campaign
    cases: int
    calls: int
    refused: list[tuple[Slot, str]]
    sms_sent: int
    sms_blocked: int
    relisted: int = 0  # residents of earlier months listed again in this month's file
    unsuitable: int = 0  # cases the data check found unsuitable (tax)


@dataclass
class World:
    """Everything a simulated month writes to, and the knobs of the simulation."""

    ledger: Ledger
    store: DataStore
    profile: Profile
    out: Path
    seed: int = 1
    scale: float = 1.0
    relist_share: float = 0.5  # of a month's residents not completed, listed again the next month
    clock_offset: timedelta = timedelta(0)
    is_weekday: IsWeekday = national_is_weekday
    key_path: Path | None = None  # the ledger's key (default: beside it), for the service
    service: TestClient | None = None
    operators: dict[str, OperatorClient] = field(default_factory=dict)
    pending: list[tuple[datetime, int, Submission]] = field(default_factory=list)
    sim: Simulator = field(init=False)
    rng: random.Random = field(init=False)
    _n: int = 0

    def __post_init__(self) -> None:
        self.sim = Simulator(self.seed)
        self.rng = random.Random(self.seed + 1)
        self._lines: list[str] = []  # the center's outgoing numbers in use
        self._listed_again: list[list[str]] = []  # rows the city lists again next month
        self._month_done: str | None = None  # the last month simulated
        self._last_results: dict[tuple[str, str], str] = {}  # (case, number) -> last result that month
        self.clock = datetime(2000, 1, 1, tzinfo=TOKYO)  # simulated time, as the ledger sees it

    # -- writing ----------------------------------------------------------------------

    def new_id(self, moment: datetime) -> str:
        """An event id (ledger.event's UUIDv7) whose random part comes from the seed."""
        return uuid7(moment, self.rng.getrandbits(128))

    def new_call_id(self, moment: datetime) -> str:
        """A call's reference: a UUIDv7, as the seats write them, with bits from the seed."""
        return uuid7(moment, self.rng.getrandbits(128))

    def write(self, kind: str, moment: datetime, actor: str, /, **data: Any) -> None:
        """An event of the core, the manager, the city or the custodian (the ledger's key signs)."""
        self._n += 1
        event = envelope(kind, actor, data, moment, event_id=self.new_id(moment))
        self.pending.append((moment, self._n, Submission(event)))

    def flush(self, now: datetime | None = None) -> None:
        """Appends what the core wrote, in time order, then lets the operators' clients deliver.

        The ledger's clock (`received`) follows simulated time: the latest event written so far.
        """
        self.pending.sort(key=lambda item: (item[0], item[1]))
        latest = max([self.clock, *(moment for moment, _, _ in self.pending)])
        self.clock = now or latest
        if self.pending:
            self.ledger.append([sub for _, _, sub in self.pending], now=self.clock)
        self.pending = []
        for client in self.operators.values():
            report = client.deliver(deadline=None)
            if report.rejected:
                raise RuntimeError(f"the ledger refused an operator's event: {client.rejected()}")

    def login(self, person: str, moment: datetime, logged: set[tuple[str, date]]) -> None:
        if (person, moment.date()) not in logged:
            logged.add((person, moment.date()))
            if person in self.operators:
                self.operators[person].record(
                    "access.login", {"person": person, "terminal": f"t-{person}", "success": True}, at=moment
                )
            else:
                self.write(
                    "access.login", moment, person, person=person, terminal=f"t-{person}", success=True
                )

    # -- set-up ---------------------------------------------------------------------------

    def start_service(self) -> None:
        """The ledger service's own ASGI app (lifespan included), in this process, on simulated time.

        The operators' clients deliver through it exactly as over the network: its
        answers, its group commit and its clock-skew check (against the simulated
        clock) are the real ones. It signs no checkpoints of its own: the demo signs
        one at the end of each month.
        """
        key_path = self.key_path or default_key_path(self.ledger.path)
        self._service_ledger = Ledger.open(self.ledger.path, key_path=key_path)
        config = ServiceConfig(checkpoint_seconds=math.inf, checkpoint_entries=sys.maxsize)
        app = create_app(self._service_ledger, clock=lambda: self.clock, config=config)
        self.service = TestClient(app, base_url=SERVICE_URL, raise_server_exceptions=True)
        self.service.__enter__()  # runs the lifespan: the writer thread starts

    def close(self) -> None:
        """Stops the service (its writer thread), then closes the operators' clients."""
        if self.service is not None:
            self.service.__exit__(None, None, None)
            self.service = None
            self._service_ledger.close()
        for client in self.operators.values():
            client.close()

    def set_up(self, first: date, keys_dir: Path) -> None:
        self.start_service()
        assert self.service is not None
        start = at(first - timedelta(days=1), "09:00")
        for person, role in STAFF:
            self.write("staff.designated", start, "system", person=person, role=role, by="city01")
        # The bootstrap manager's training and pledge come with the staff list, before any work.
        self._ready("mgr01", start - timedelta(minutes=30), "system")
        for op in OPERATORS:
            self.write(
                "staff.designated",
                start + timedelta(minutes=1),
                "mgr01",
                person=op,
                role="operator",
                by="mgr01",
            )
        for op in OPERATORS:
            self._ready(op, start + timedelta(minutes=3), "mgr01")
        # The manager loads version 1 of the manual, the talk script and the FAQ; the city approves.
        folder = self.out / "documents"
        folder.mkdir(exist_ok=True)
        for kind, text in DOCUMENTS.items():
            (folder / f"{kind}-v{SCRIPT_VERSION}.txt").write_text(text, "utf-8")
            digest = hashlib.sha256(text.encode()).hexdigest()
            self.write(
                "document.approved",
                start + timedelta(minutes=5),
                "city01",
                kind=kind,
                version=SCRIPT_VERSION,
                sha256=digest,
                by="city01",
            )
        for op in OPERATORS:
            signer = Signer.generate(op)
            verifier = signer.verifier
            self.write(
                "key.registered",
                start + timedelta(minutes=2),
                "mgr01",
                key=verifier.key_ref,
                public_key=base64.b64encode(verifier.public_key).decode(),
                holder=op,
            )
            self.operators[op] = OperatorClient(
                SERVICE_URL,
                signer,
                keys_dir / f"{op}.outbox",
                clock=lambda: self.clock,
                http=cast(httpx.Client, self.service),
            )
        self.login("mgr01", start - timedelta(minutes=10), set())
        self.flush()

    def _ready(self, person: str, moment: datetime, by: str) -> None:
        """Training on each of the contract's subjects, and the signed pledge handed to the city."""
        for course in COURSES:
            self.write("staff.trained", moment, by, person=person, course=course, by="mgr01")
        pledge = hashlib.sha256(f"誓約書 {person}".encode()).hexdigest()
        self.write("staff.pledged", moment, by, person=person, sha256=pledge, to="city01")

    # -- a month --------------------------------------------------------------------------

    def run_month(self, month: str, progress: Callable[[str], None] | None = None) -> MonthReport:
        p, rng = self.profile, self.rng
        first = month_days(month)[0]
        logged: set[tuple[str, date]] = set()
        volume = max(3, round(p.calls_expected.get(month, 300) * self.scale))
        sms_volume = max(1, round(p.sms_expected.get(month, 300) * self.scale))
        campaign = plan_days(p, month, is_weekday=self.is_weekday)
        scheduler = Scheduler(
            p,
            campaign,
            rng=random.Random(self.seed * 1_000_000 + int(month.replace("-", ""))),
            is_weekday=self.is_weekday,
        )

        # The 1st: lines, schedule, the city's file, its import, the media erased.
        self.login("mgr01", at(first, "07:50"), logged)
        for number in self._lines:
            self.write("callerid.retired", at(first, "07:55"), "mgr01", number=number)
        self._lines = [f"0258-{rng.randrange(20, 99)}-{rng.randrange(1000, 10000)}" for _ in range(2)]
        for number in self._lines:
            self.write("callerid.registered", at(first, "07:56"), "mgr01", number=number, kind="landline")
        self.write(
            "campaign.scheduled",
            at(first, "08:00"),
            "mgr01",
            month=month,
            days=[d.isoformat() for d in campaign.days],
            excluded=[d.isoformat() for d in campaign.excluded],
        )
        self.login("cus01", at(first, "08:30"), logged)
        path = self.out / f"targets-{month}.csv"
        listed_again, self._listed_again = self._listed_again, []
        path.write_bytes(target_csv(rng, month, volume, listed_again))
        batch = f"B{month}"
        imported_at = at(first, "09:00")

        def append(events: list[dict[str, Any]]) -> None:
            for e in events:
                self.write(e["type"], datetime.fromisoformat(e["at"]), e["actor"], **e["data"])

        parsed = import_targets(
            path,
            batch=batch,
            month=month,
            store=self.store,
            custodian="cus01",
            received_from="city01",
            media=f"USB-{month}",
            encrypted=True,
            transport="hand_delivery",
            now=imported_at,
            new_id=lambda: self.new_id(imported_at),
            append=append,
        )
        self.write(
            "custody.media_erased",
            at(first, "10:00"),
            "cus01",
            batch=batch,
            media=f"USB-{month}",
            method="overwrite",
        )
        # The tax contract's data check (§10(2)): a few cases reported unsuitable before calling.
        unsuitable: set[str] = set()
        if p.applies("UNSUITABLE-NOT-CALLED"):
            for resident in parsed.residents[:: max(1, len(parsed.residents) // 2)][:2]:
                unsuitable.add(resident.case_ref)
                self.write(
                    "case.unsuitable",
                    at(first, "10:30"),
                    "mgr01",
                    case=resident.case_ref,
                    reason="生活保護受給中",
                )
        # Last month's result on the same number (同一番号) for the tax contract's two-call rule.
        previous = self._last_results if self._month_done == previous_month(month) else {}
        cases: dict[str, CaseProgress] = {}
        rows: dict[str, list[str]] = {}
        csv_rows = list(csv.reader(io.StringIO(path.read_bytes().decode("cp932"))))[1:]
        for resident, row in zip(parsed.residents, csv_rows, strict=True):
            if resident.case_ref in unsuitable:
                continue
            kinds = parsed.kinds[resident.case_ref]
            numbers = {
                ref: NumberProgress(ref, kind, previous_month_result=previous.get((resident.case_ref, ref)))
                for ref, kind in zip(resident.number_refs, kinds, strict=True)
            }
            cases[resident.case_ref] = CaseProgress(
                resident.case_ref, numbers, landline_only=all(k == "landline" for k in kinds)
            )
            rows[resident.case_ref] = row

        # The city's SMS list: cases with a mobile number, sent on the 4th calling day.
        days = campaign.calling_days()
        send_day = days[min(3, len(days) - 1)]
        sms_cases = [c for c, pr in cases.items() if any(n.kind == "mobile" for n in pr.numbers.values())]
        sms_cases = sms_cases[:sms_volume]
        send_at = at(send_day, "10:00")
        self.write(
            "sms.designated",
            at(first, "11:00"),
            "city01",
            batch=batch,
            cases=sms_cases,
            send_at=send_at.isoformat(),
            sender_id="0258-39-2000",
        )
        self.flush()

        lines = self._lines
        dialer = Dialer(
            scheduler,
            cases,
            self.sim,
            phone_of=lambda case, number: self.store.read(case).phone(number),
            record=lambda kind, moment, data: self.write(kind, moment, "system", **data),
            hand_over=lambda dialled: self._operator(scheduler, dialled),
            caller_id=lambda: lines[self.rng.randrange(2)],
            call_id=self.new_call_id,
            is_weekday=self.is_weekday,
            actual_time=lambda planned: planned + self.clock_offset,
        )
        sms_sent = sms_blocked = 0
        stop_day = days[1]
        for day in days:
            if progress is not None:
                progress(f"{month} {day:%m-%d}")
            self.login("mgr01", at(day, "08:40"), logged)
            for op in OPERATORS:
                self.login(op, at(day, "08:50"), logged)
            if day == stop_day:  # the city orders a few cases stopped
                for ref in list(cases)[:: max(1, len(cases) // 3)][:3]:
                    cases[ref].stopped_at = at(day, "12:00")
                    self.write(
                        "case.stop", at(day, "12:00"), "city01", case=ref, by="city01", reason="納付済み"
                    )
            if day == send_day:
                sent, blocked = self._sms_pass(cases, sms_cases, send_at, batch)
                sms_sent, sms_blocked = sms_sent + sent, sms_blocked + blocked
            dialer.run_day(day)
            self._callbacks_after_hours(day, cases)
            # The manager's daily report, the next morning (N: by 12:00 the next day).
            report_day = day + timedelta(days=1)
            self.login("mgr01", at(report_day, "09:00"), logged)
            self._report("daily", day.isoformat(), at(report_day, "09:30"), {"day": day.isoformat()})
            self.flush()
        # The SMS report within 3 business days, the monthly report within 2 after the last calling day.
        sms_report_day = add_business_days(send_day, 1)
        self.login("mgr01", at(sms_report_day, "09:00"), logged)
        self._report("sms", send_day.isoformat(), at(sms_report_day, "10:00"), {"sent": sms_sent})
        monthly_day = add_business_days(days[-1], 1)  # the work ends on the last scheduled day
        self.login("mgr01", at(monthly_day, "09:00"), logged)
        self._report("monthly", month, at(monthly_day, "15:00"), {"calls": dialer.calls})
        if p.applies("REPORT-SMS-CANDIDATES"):  # with the daily report after the last calling day
            self._report("sms_candidates", month, at(days[-1] + timedelta(days=1), "09:35"), {"month": month})
        if p.return_required:  # tax: the media back to the city, then the data destroyed (§11(4))
            self.login("cus01", at(monthly_day, "15:30"), logged)
            self.write(
                "custody.returned",
                at(monthly_day, "16:00"),
                "cus01",
                batch=batch,
                media=f"USB-{month}",
                sha256=parsed.sha256,
                records=len(parsed.residents),
                encrypted=True,
                to="city01",
            )
            destroyed_at = at(monthly_day, "16:30")
            for event in destroy_targets(
                self.store,
                batch=batch,
                custodian="cus01",
                now=destroyed_at,
                new_id=lambda: self.new_id(destroyed_at),
            ):
                self.write(event["type"], destroyed_at, event["actor"], **event["data"])
        self.flush()
        self.ledger.sign_checkpoint(now=self.clock)
        self._month_done = month
        self._last_results = {
            (ref, n.ref): n.attempts[-1].result
            for ref, c in cases.items()
            for n in c.numbers.values()
            if n.attempts
        }
        self._listed_again = self._list_again(cases, rows)
        return MonthReport(
            month,
            campaign,
            len(cases),
            dialer.calls,
            dialer.refused,
            sms_sent,
            sms_blocked,
            len(listed_again),
            len(unsuitable),
        )

    def _list_again(self, cases: dict[str, CaseProgress], rows: dict[str, list[str]]) -> list[list[str]]:
        """The residents the city lists again next month: a share of those not completed (nor
        stopped), as the city's next file would carry them; now and then with a new landline."""
        rng = self.rng
        again = []
        for ref, progress in cases.items():
            if progress.completed or progress.stopped_at is not None or rng.random() >= self.relist_share:
                continue
            row = list(rows[ref])
            if row[3] and rng.random() < 0.3:  # the city has a new landline for the resident
                row[3] = f"0258-{rng.randrange(10, 100)}-{rng.randrange(1000, 10000)}"
            again.append(row)
        return again

    def _report(self, kind: str, covers: str, moment: datetime, body: dict[str, Any]) -> None:
        digest = hashlib.sha256(json.dumps({"kind": kind, "covers": covers, **body}).encode()).hexdigest()
        self.write("report.submitted", moment, "mgr01", kind=kind, covers=covers, sha256=digest, to="city01")

    def _operator(self, scheduler: Scheduler, dialled: Dialled) -> list[Slot]:
        """A simulated operator takes the ended call: talks, records, escalates; returns callback slots."""
        sim, slot, day, real, result = self.sim, dialled.slot, dialled.day, dialled.at, dialled.result
        progress, number, call_id = dialled.case, dialled.number, dialled.call
        operator = OPERATORS[self.rng.randrange(len(OPERATORS))]
        written = result.ended_at + timedelta(minutes=1)
        outcome: dict[str, Any] = {
            "case": slot.case,
            "call": call_id,
            "party": "none",
            "proxy_consent": False,
            "script": "not_started",
            "disposition": "no_contact",
            "promise": None,
            "callback_at": None,
            "mobile_asked": False,
            "requests": [],
            "script_version": SCRIPT_VERSION,  # the approved talk script the operator follows
        }
        new: list[Slot] = []
        if result.result == "invalid":
            outcome["disposition"] = "number_unusable"
            number.ended = True
        elif result.result == "answered":
            # The operator sees the resident's data on screen: that is logged first.
            self.store.read_case(
                slot.case,
                person=operator,
                purpose="架電対応 call handling",
                log=lambda data: self.operators[operator].record("access.viewed", data, at=real),
            )
            talk = sim.talk(slot.case, slot.number, real)
            outcome.update(
                party=talk.party,
                proxy_consent=talk.proxy_consent,
                script=talk.script,
                disposition=talk.disposition,
                requests=list(talk.requests),
                mobile_asked=progress.landline_only and talk.party in ("self", "household"),
            )
            if talk.promise_days:
                outcome["promise"] = {
                    "date": (day + timedelta(days=talk.promise_days)).isoformat(),
                    "amount": talk.promise_amount,
                }
            if talk.disposition in ("completed", "refused"):
                progress.completed = True
            if talk.disposition == "number_unusable":
                number.ended = True
            if talk.wants_callback:
                asked = later_calling_time(scheduler, slot.at, self.rng)
                if asked is None or self.rng.random() < 0.1:
                    asked = at(scheduler.days[-1] + timedelta(days=3), "10:00")  # after the calling period
                outcome["callback_at"] = asked.isoformat()
                if scheduler.in_period(asked):
                    new.append(Slot(asked, slot.case, slot.number, callback=True))
                else:
                    self.operators[operator].record(
                        "escalation.raised",
                        {"case": slot.case, "reason": "callback_outside_period", "to": "city01"},
                        at=written + timedelta(minutes=1),
                    )
        if any(r in ESCALATING_REQUESTS for r in outcome["requests"]):
            reason = next(r for r in outcome["requests"] if r in ESCALATING_REQUESTS)
            self.operators[operator].record(
                "escalation.raised",
                {"case": slot.case, "reason": reason, "to": "city01"},
                at=written + timedelta(minutes=2),
            )
        self.operators[operator].record("call.outcome", outcome, at=written)
        if result.result in ("no_answer", "voicemail") and self.rng.random() < 0.05:
            self._callback_in(slot.case, real + timedelta(minutes=self.rng.randrange(30, 120)), scheduler)
        return new

    def _callback_in(self, case: str, moment: datetime, scheduler: Scheduler) -> None:
        handled = "operator" if scheduler.in_period(moment) else "voice_guide"
        self.write(
            "callback.received",
            moment,
            "system",
            case=case,
            queued_s=self.rng.randrange(0, 90),
            handled=handled,
        )

    def _callbacks_after_hours(self, day: date, cases: dict[str, CaseProgress]) -> None:
        if cases and self.rng.random() < 0.7:
            self.write(
                "callback.received", at(day, "20:40"), "system", case=None, queued_s=0, handled="voice_guide"
            )

    def _sms_pass(
        self, cases: dict[str, CaseProgress], designated: list[str], send_at: datetime, batch: str
    ) -> tuple[int, int]:
        sent = blocked = 0
        lookup_at = send_at - timedelta(hours=18)
        for i, ref in enumerate(designated):
            progress = cases[ref]
            number = next(n for n in progress.numbers.values() if n.kind == "mobile")
            moment = send_at + timedelta(seconds=10 * i % 1800)
            if progress.stopped_at is not None and progress.stopped_at <= moment:
                self.write("sms.blocked", moment, "system", case=ref, number=number.ref, reason="stopped")
                blocked += 1
                continue
            carrier, reassigned = self.sim.lookup(ref, number.ref)
            self.write(
                "sms.lookup",
                lookup_at,
                "system",
                case=ref,
                number=number.ref,
                carrier=carrier,
                reassigned=reassigned,
            )
            # The product's rule decides (dialer_core.lookup): the demo's numbers are mobiles.
            reason = LookupAnswer(carrier, True, reassigned).block_reason()
            if reason is not None:
                self.write("sms.blocked", moment, "system", case=ref, number=number.ref, reason=reason)
                blocked += 1
                continue
            message, status = self.sim.send(ref, number.ref, moment)
            self.write(
                "sms.sent",
                moment,
                "system",
                case=ref,
                number=number.ref,
                message=message,
                sender_id="0258-39-2000",
                chars=68,
                segments=1,
                carrier=carrier,
            )
            self.write(
                "sms.result",
                moment + timedelta(minutes=5),
                "system",
                message=message,
                status=status,
                carrier=carrier,
            )
            sent += 1
        return sent, blocked
