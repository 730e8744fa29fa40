"""A day at the call center in a real headless Chromium (Debian's chromium + chromium-driver, no
download), against the real processes: `kansa ledger serve`, `kansa dialer run` (the simulated
telephony, every call answered) and `kansa console serve`, all three on one rehearsal clock
(`--start-at`, Thursday 2026-09-24, a calling day), over real HTTP.

The city orders a stop, gives the SMS list and approves the talk script; an operator signs in and
works five calls (a promise, a household member on a landline-only case, a callback inside the
period, one outside it: refused, then escalated, and a voicemail), with the ledger service stopped
after the second call and started again after the fifth; the manager raises the escalation; the
city watches the day's work without personal data. Then `kansa check` finds no violation, every
access.viewed precedes its outcome, and every outcome names the script's version. A failed sign-in
is shown in Japanese and signed by the console's device key.

Screenshots are saved under the module's folder (KANSA_CONSOLE_SHOTS=DIR keeps them in DIR).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from browser import headless_chromium, needs_chromium, severe_logs
from console_world import CALLER_IDS, MONTH, PASSPHRASES, RESIDENTS, TALK_SCRIPT, World, build_world, t
from processes import EXE, Served

from console.documents import Documents
from ledger import Ledger, read_key

pytestmark = needs_chromium

START = t("2026-09-24 10:00")  # a Thursday of the calling days; the first attempts (20th, 21st) are due
SCRIPT_VERSION = "TS-2026-09b"  # loaded by the manager, approved by the city in the walk
LOOP_TOKEN = "rehearsal-seats-token"
NAMES = [r[1] for r in RESIDENTS]
PHONES = [p for r in RESIDENTS for p in (r[2], r[3]) if p]


class Rehearsal:
    """The rehearsal's clock: every process is started with --start-at its `now()`, so they share it."""

    def __init__(self, start: datetime) -> None:
        self.start, self.wall = start, time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.wall)

    def arg(self) -> list[str]:
        return ["--start-at", self.now().isoformat()]


@dataclass
class Center:
    world: World
    clock: Rehearsal
    ledger: Served
    loop: Served
    console: Served
    shots: Path

    @property
    def url(self) -> str:
        return self.console.url

    def start_ledger(self) -> None:
        self.ledger.args = ["ledger", "serve", str(self.world.ledger_path), "--checkpoint-seconds", "1"]
        self.ledger.args += self.clock.arg()
        self.ledger.start()

    def start_loop(self) -> None:
        """`kansa dialer run`: it reads the ledger as it starts (stops, lines, the month's cases)."""
        self.loop.args = ["dialer", "run", str(self.world.root / "dialer.toml"), *self.clock.arg()]
        self.loop.start()

    def events(self) -> list[dict[str, Any]]:
        """The ledger file's events (with `_index` and `_key`, the key that signed it)."""
        with Ledger.open(self.world.ledger_path, readonly=True) as led:
            found = []
            for i, leaf, _ in led.leaves():
                entry = json.loads(leaf)
                found.append(
                    entry["event"]
                    | {"_index": i, "_key": entry["sig"]["key"], "_received": entry["received"]}
                )
            return found

    def wait_for_events(
        self, what: str, test: Callable[[list[dict[str, Any]]], bool], seconds: float = 20
    ) -> None:
        deadline = time.monotonic() + seconds
        while not test(self.events()):
            assert time.monotonic() < deadline, f"the ledger never got {what}"
            time.sleep(0.2)

    def stop(self) -> None:
        for served in (self.console, self.loop, self.ledger):
            served.stop()


@pytest.fixture(scope="module")
def center(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Center]:
    root = tmp_path_factory.mktemp("center")
    world = build_world(root)
    docs = Documents(root / "documents")  # the manager loaded the month's revised script
    revised = TALK_SCRIPT.replace("5. お礼", "5. 納付書の再発行を案内する\n6. お礼")
    docs.load("talk_script", SCRIPT_VERSION, "talk_script_b.md", revised.encode(), by="mgr01", now=START)
    docs.close()
    (root / "loop.token").write_text(LOOP_TOKEN)
    clock = Rehearsal(START)
    ledger = Served([], root / "ledger.log", "/healthz")
    loop = Served([], root / "dialer.log", "/v1/seats", port_option=False)
    console = Served([], root / "console.log", "/signin")
    (root / "dialer.toml").write_text(
        f"""[dialer]
ledger_url = "{ledger.url}"
store = "store.db"
key_file = "system.key"
outbox = "dialer.outbox"
contract = "nagaoka-nhi-2026"
month = "{MONTH}"
poll_s = 0.5

[api]
listen = "127.0.0.1:{loop.port}"
token_file = "loop.token"

[telephony]
kind = "simulator"
seed = 7
answer_rate = 1.0  # a training day: every call is answered
realtime = true  # it rings, and stays connected until the operator is done
ring_s = 2

[[seats]]
name = "s01"
""",
        encoding="utf-8",
    )
    (root / "console.toml").write_text(
        f"""[console]
ledger_url = "{ledger.url}"
ledger_copy = "ledger.db"
loop_url = "{loop.url}"
loop_token_file = "loop.token"
store = "store.db"
keys = "keys"
outboxes = "outboxes"
documents = "documents"
device_key = "console01.key"
results = "ledger.compliance.db"
""",
        encoding="utf-8",
    )
    shots = Path(os.environ.get("KANSA_CONSOLE_SHOTS") or root / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    center = Center(world, clock, ledger, loop, console, shots)
    try:
        center.start_ledger()
        console.args = ["console", "serve", str(root / "console.toml"), *clock.arg()]
        console.start()
        yield center  # the day's test starts the loop once the city's instructions are in
    finally:
        center.stop()


@pytest.fixture(scope="module")
def browser(center: Center) -> Iterator[Any]:
    with headless_chromium(
        center.world.root / "profile", "--window-size=1400,1300", "--lang=ja-JP"
    ) as driver:
        yield driver


class Walk:
    def __init__(self, driver: Any, center: Center) -> None:
        self.driver, self.center, self.shots = driver, center, center.shots
        self.n = len(list(self.shots.iterdir()))

    def shot(self, name: str, at: str | None = None) -> None:
        """A screenshot, with `at` (a selector) scrolled to the middle of the window first."""
        if at is not None:
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", self.css(at))
        self.n += 1
        self.driver.save_screenshot(str(self.shots / f"{self.n:02d}-{name}.png"))

    def wait_for(self, css: str, timeout: float = 20) -> Any:
        from selenium.webdriver.common.by import By

        deadline = time.time() + timeout
        while True:
            found = self.driver.find_elements(By.CSS_SELECTOR, css)
            if found:
                return found[0]
            assert time.time() < deadline, f"{css} never appeared on {self.driver.current_url}"
            time.sleep(0.05)

    def keys(self, *keys: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(*keys).perform()

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def errors(self) -> list[str]:
        return [e["message"] for e in severe_logs(self.driver)]

    def sign_in(self, person: str, role: str, seat: str = "", passphrase: str | None = None) -> None:
        from selenium.webdriver.support.ui import Select

        self.driver.get(f"{self.center.url}/signin")
        self.css("#person").send_keys(person)
        self.css("#passphrase").send_keys(passphrase or PASSPHRASES[person])
        Select(self.css("#role")).select_by_value(role)
        if seat:
            self.css("#seat").send_keys(seat)
        self.navigating(self.css("#signin-submit").click)

    def sign_out(self) -> None:
        self.navigating(self.css("#signout").click)
        self.wait_for("#signin-form")

    def navigating(self, act: Any) -> None:
        """Does `act` and waits until the browser has left the page it was on."""
        from selenium.common.exceptions import WebDriverException

        old = self.css("html")
        act()
        deadline = time.time() + 20
        while True:
            try:
                old.is_enabled()  # raises once the old document is gone
            except WebDriverException:
                return
            assert time.time() < deadline, "the page did not change"
            time.sleep(0.03)

    def fill(self, form: str, **values: str) -> None:
        for name, value in values.items():
            field = self.css(f"form[action='{form}'] [name={name}]")
            if field.get_attribute("type") == "datetime-local":
                self.set_value(field, value)
            else:
                field.clear()
                field.send_keys(value)

    def set_value(self, element: Any, value: str) -> None:
        self.driver.execute_script("arguments[0].value = arguments[1];", element, value)

    def tick(self, selector: str) -> None:
        box = self.css(selector)
        if not box.is_selected():
            box.click()

    def submit(self) -> None:
        self.navigating(self.css("#record").click)

    def personal_data_in_page(self) -> list[str]:
        page = self.driver.page_source
        return [x for x in [*NAMES, *(n.split()[0] for n in NAMES), *PHONES] if x in page]


def test_a_wrong_passphrase_is_refused_on_the_page_and_signed_by_the_device(
    center: Center, browser: Any
) -> None:
    walk = Walk(browser, center)
    walk.sign_in("op01", "operator", "s01", passphrase="まちがったパスフレーズ")
    error = walk.wait_for("#signin-error")
    assert error.text == "IDまたはパスフレーズが違います。"
    assert walk.css("#person").get_attribute("value") == "op01"  # kept; the passphrase is not
    assert walk.css("#passphrase").get_attribute("value") == ""
    walk.shot("signin-refused")
    assert [m for m in walk.errors() if "401" not in m] == []  # the refusal is the page answered with 401
    center.wait_for_events(
        "the failed sign-in",
        lambda es: any(e["type"] == "access.login" and e["data"]["success"] is False for e in es),
    )
    failed = [e for e in center.events() if e["type"] == "access.login" and not e["data"]["success"]]
    assert len(failed) == 1 and failed[0]["actor"] == "console01"
    assert failed[0]["data"] == {"person": "op01", "terminal": "console01", "success": False}
    assert failed[0]["_key"] == read_key(center.world.root / "console01.key").verifier.key_ref


def test_a_day_at_the_center(center: Center, browser: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    walk = Walk(browser, center)
    cases = center.world.cases
    by_name = dict(zip(NAMES, cases, strict=True))

    # -- the morning: the city's instructions --------------------------------------------------
    walk.sign_in("city01", "city")
    walk.wait_for("#documents")
    walk.shot("city-desk")
    assert walk.personal_data_in_page() == []
    # The clerk reads the revised script before approving it.
    walk.navigating(walk.css(f"a[href='/documents/talk_script/{SCRIPT_VERSION}']").click)
    assert "5. 納付書の再発行を案内する" in walk.wait_for("pre.document").text
    walk.shot("city-reads-the-script")
    walk.navigating(walk.css("#approve-form button").click)  # approved where it was read
    row = walk.wait_for("#documents").find_element("xpath", f".//tr[td/a[text()='{SCRIPT_VERSION}']]")
    assert "承認済" in row.text
    # The clerk knows the city's own 案件番号; the console finds the case's reference.
    number = {r[1]: r[0] for r in RESIDENTS}
    stopped = by_name["高橋 一郎"]  # paid at the counter yesterday
    walk.fill("/city/stop", case=number["高橋 一郎"], reason="窓口で納付済み")
    walk.shot("city-stop")
    walk.navigating(walk.css("form[action='/city/stop'] button").click)
    assert stopped in walk.wait_for("#stop").text
    texted = ("佐藤 太郎", "田中 美咲", "渡辺 健太")
    walk.fill("/city/sms", cases="\n".join(number[n] for n in texted), send_at="2026-09-25T12:00")
    walk.fill("/city/sms", sender_id=CALLER_IDS[0])
    walk.shot("city-sms")
    walk.navigating(walk.css("form[action='/city/sms'] button").click)
    assert "3件、9月25日（金）12:00 送信" in walk.wait_for("#sms").text
    walk.shot("city-done")
    assert walk.errors() == []
    walk.sign_out()
    center.wait_for_events(
        "the city's stop, SMS list and approval",
        lambda es: (
            count(es, "case.stop") == 1
            and count(es, "sms.designated") == 1
            and any(e["type"] == "document.approved" and e["data"]["version"] == SCRIPT_VERSION for e in es)
        ),
    )
    city = {e["type"]: e for e in center.events() if e["actor"] == "city01"}
    assert city["case.stop"]["data"]["case"] == stopped
    assert city["sms.designated"]["data"]["cases"] == [by_name[n] for n in texted]
    assert city["sms.designated"]["data"]["send_at"] == "2026-09-25T12:00:00+09:00"
    center.start_loop()  # the day's calling starts: the loop knows the stop from the ledger

    # -- the operator's morning --------------------------------------------------------------
    walk.sign_in("op01", "operator", "s01")
    walk.wait_for("#who")
    assert "発信の準備" in browser.page_source
    assert walk.css("#script-version").text == SCRIPT_VERSION
    walk.shot("operator-home")
    walk.navigating(lambda: walk.keys(Keys.ENTER))  # 受付開始, from the keyboard
    # Each call rings 2 s before the simulated resident answers: read the ringing page at once.
    assert "回目（最低 3 回）" in walk.wait_for("#attempt").text, browser.page_source
    walk.shot("ringing")

    done: list[str] = []
    for n in range(1, 6):
        card = walk.wait_for("#resident")
        name = card.find_element("css selector", "h1").text.removesuffix(" 様")
        assert name in NAMES and name not in done and name != "高橋 一郎", name
        walk.shot(f"{n}-resident")
        if name == "伊藤 陽子":  # an answering machine: the scripted message left
            walk.navigating(lambda: walk.keys("2"))
            walk.wait_for("#outcome-form")
            assert walk.css("#message-left").text == "残した"
            walk.shot(f"{n}-voicemail")
            walk.submit()
        else:
            walk.navigating(lambda: walk.keys("1"))  # a person answered
            walk.wait_for("#outcome-form")
            work_the_call(walk, name, n)
        done.append(name)
        if n == 2:  # the ledger service goes away (what was recorded so far is in)
            center.wait_for_events(
                "the first two calls",
                lambda es: count(es, "call.outcome") == 2 and count(es, "call.dialed") == 2,
            )
            center.ledger.stop()
    walk.wait_for("#waiting")
    assert walk.css("#fig-calls").text == "5" and walk.css("#fig-promises").text == "1"
    walk.shot("operator-day")
    assert walk.errors() == []
    walk.sign_out()

    # Nothing reached the ledger while the service was down; everything arrives, once, when it is back.
    held = center.events()
    assert count(held, "call.outcome") == 2 and count(held, "call.dialed") == 2
    center.start_ledger()
    center.wait_for_events(
        "the calls recorded while it was away",
        lambda es: count(es, "call.dialed") == 5 and count(es, "call.outcome") == 5,
    )

    # The morning's compliance run (the service signs a checkpoint each second while entries come),
    # into the results database the manager's desk reads.
    time.sleep(1.5)
    morning = check(center, "--results", str(center.world.root / "ledger.compliance.db"))
    assert morning == [], morning

    # -- the manager raises the escalation of the callback outside the period ---------------------
    late = by_name["渡辺 健太"]
    walk.sign_in("mgr01", "manager")
    assert walk.wait_for("#violations-total").text == "0"
    for _ in range(20):
        if walk.wait_for("#live-calls-today").text == "5":
            break
        time.sleep(1)
        walk.navigating(walk.driver.refresh)
    assert walk.css("#live-calls-today").text == "5"  # the loop's call.dialed, back from the outage
    row = walk.wait_for(f"tr[data-case='{late}'][data-reason='callback_outside_period']")
    assert "期間外の折り返し希望" in row.text
    walk.shot("manager-desk")
    walk.navigating(row.find_element("css selector", "button.raise").click)
    assert "済" in walk.wait_for(f"tr.done[data-case='{late}']").text
    walk.shot("manager-raised")
    assert walk.errors() == []
    walk.sign_out()

    # -- the city watches the day's work: figures, no personal data ------------------------------
    walk.sign_in("city01", "city")
    walk.wait_for("#live")
    walk.shot("city-live")
    assert walk.personal_data_in_page() == []
    assert late in walk.css("#raised").text
    assert walk.css("#live-calls-today").text == "5"
    assert walk.errors() == []
    walk.sign_out()

    center.wait_for_events("the escalation", lambda es: count(es, "escalation.raised") == 1)
    center.stop()  # every process ends (SIGTERM); what they held is delivered
    assert "kansa dialer: 5 calls" in (center.world.root / "dialer.log").read_text()  # a clean stop

    # Nothing left behind: every outbox (the people's, the console's device, the loop's) delivered
    # everything it recorded, and the service refused nothing.
    root = center.world.root
    for outbox in [*sorted((root / "outboxes").glob("*.outbox")), root / "dialer.outbox"]:
        with closing(sqlite3.connect(outbox)) as db:
            states = dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
        assert set(states) == {"delivered"}, (outbox.name, states)
    events = center.events()
    outcomes = [e for e in events if e["type"] == "call.outcome"]
    assert len(outcomes) == 5 and len({e["id"] for e in outcomes}) == 5
    assert len({e["data"]["call"] for e in outcomes}) == 5
    assert {e["data"]["case"] for e in outcomes} == {by_name[n] for n in done}
    assert count(events, "call.dialed") == 5 and count(events, "escalation.raised") == 1
    for outcome in outcomes:
        views = [
            e for e in events if e["type"] == "access.viewed" and e["data"]["case"] == outcome["data"]["case"]
        ]
        assert views and views[0]["_index"] < outcome["_index"] and views[0]["at"] <= outcome["at"]
        assert outcome["data"]["script_version"] == SCRIPT_VERSION
        assert outcome["at"].startswith("2026-09-24T10:")  # the rehearsal's clock
    with Ledger.open(center.world.ledger_path, key_path=center.world.key_path) as led:
        led.sign_checkpoint(now=center.clock.now())
    assert check(center) == []
    assert len(list(center.shots.iterdir())) >= 20


def check(center: Center, *args: str) -> list[dict[str, Any]]:
    """`kansa check` of the month: the findings that are due (not pending)."""
    done = subprocess.run(
        [EXE, "check", str(center.world.ledger_path), "--month", MONTH, "--format", "json", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return [f for f in json.loads(done.stdout)["findings"] if not f["pending"]]


def count(events: list[dict[str, Any]], kind: str) -> int:
    return sum(1 for e in events if e["type"] == kind)


def work_the_call(walk: Walk, name: str, n: int) -> None:
    """The outcome form of one answered call, as the operator fills it for this resident."""
    from selenium.webdriver.common.keys import Keys

    if name == "佐藤 太郎":  # the person, the script to the end, a promise
        assert walk.css("#amount").text == "48,000円"
        steps = [li.text for li in walk.driver.find_elements("css selector", "#checklist li")]
        assert steps[0] == "名乗り：「長岡市国民健康保険料納付コールセンターの○○です。」", (
            steps
        )  # as approved
        assert len(steps) == 6
        for box in walk.driver.find_elements("css selector", "#checklist input"):
            box.click()
        assert walk.css("input[name=script][value=completed]").is_selected()  # the checklist decided
        walk.css("input[name=party][value=self]").click()
        walk.keys("1")  # disposition 1: completed
        walk.set_value(walk.css("#promise_date"), "2026-10-05")
        walk.css("#promise_amount").send_keys("48000")
        walk.shot(f"{n}-outcome-promise")
        walk.navigating(lambda: walk.css("#promise_amount").send_keys(Keys.ENTER))
    elif name == "鈴木 花子":  # a landline only: a household member who does not take the message
        walk.css("input[name=party][value=household]").click()
        walk.keys("7")  # absent_now
        walk.tick("input[name=mobile_asked]")
        walk.shot(f"{n}-outcome-household", at="input[name=mobile_asked]")
        walk.submit()
    elif name == "田中 美咲":  # the family asks for a callback tomorrow at 14:00, inside the period
        walk.css("input[name=party][value=household]").click()
        walk.keys("7")
        walk.set_value(walk.css("#callback_at"), "2026-09-25T14:00")
        walk.shot(f"{n}-outcome-callback", at="#callback_at")
        walk.submit()
    elif name == "渡辺 健太":  # a callback on Saturday, outside the period: refused until escalated
        walk.css("input[name=party][value=household]").click()
        walk.keys("7")
        walk.set_value(walk.css("#callback_at"), "2026-09-26T10:00")
        walk.submit()
        assert walk.wait_for("#error-callback_at").text.startswith("架電期間・時間外の日時です。")
        assert "何も記録していません" in walk.css("#form-errors").text
        walk.shot(f"{n}-outcome-refused", at="#error-callback_at")
        assert [m for m in walk.errors() if "422" not in m] == []  # the refusal: the page with 422
        walk.tick("input[name=escalate_callback]")
        walk.submit()
    else:
        raise AssertionError(f"no call planned for {name}")
