"""An operator's morning in a real headless Chromium (Debian's chromium + chromium-driver, no
download): sign in, five calls against the simulated telephony with the ledger service stopped in
the middle, the manager raises the escalation; then `kansa check` finds no violation and every
access.viewed precedes its outcome. Screenshots are saved under the test's folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import headless_chromium, needs_chromium, severe_logs
from console_world import MONTH, PASSPHRASES, World, build_world

from ledger import Ledger

EXE = str(Path(sys.executable).parent / "kansa")
pytestmark = needs_chromium


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with headless_chromium(tmp_path / "profile", "--window-size=1400,1300", "--lang=ja-JP") as driver:
        yield driver


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path / "center")
    w.start(w.cases[:5], answer_after=1.5)  # long enough to see it ring on a loaded machine
    yield w
    w.stop()


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in severe_logs(driver)]


class Walk:
    def __init__(self, driver: Any, world: World, shots: Path) -> None:
        self.driver, self.world, self.shots = driver, world, shots
        self.n = 0

    def shot(self, name: str) -> None:
        self.n += 1
        self.driver.save_screenshot(str(self.shots / f"{self.n:02d}-{name}.png"))

    def wait_for(self, css: str, timeout: float = 15) -> Any:
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

    def sign_in(self, person: str, role: str, seat: str = "") -> None:
        from selenium.webdriver.support.ui import Select

        self.driver.get(f"{self.world.url}/signin")
        self.css("#person").send_keys(person)
        self.css("#passphrase").send_keys(PASSPHRASES[person])
        Select(self.css("#role")).select_by_value(role)
        if seat:
            self.css("#seat").send_keys(seat)
        self.shot(f"sign-in-{person}")
        self.css("#signin-submit").click()
        self.wait_for("#who")

    def answered(self, name: str) -> str:
        """Waits for the resident's card (the call was answered); returns the name shown."""
        card = self.wait_for("#resident")
        self.shot(f"{name}-resident")
        return str(card.find_element("css selector", "h1").text)

    def outcome(self) -> None:
        self.wait_for("#outcome-form")

    def tick(self, selector: str) -> None:
        box = self.css(selector)
        if not box.is_selected():
            box.click()

    def navigating(self, act: Any) -> None:
        """Does `act` and waits until the browser has left the page it was on."""
        from selenium.common.exceptions import WebDriverException

        old = self.css("html")
        act()
        deadline = time.time() + 15
        while True:
            try:
                old.is_enabled()  # raises once the old document is gone
            except WebDriverException:
                return
            assert time.time() < deadline, "the page did not change"
            time.sleep(0.03)

    def submit(self) -> None:
        self.navigating(self.css("#record").click)

    def set_value(self, selector: str, value: str) -> None:
        self.driver.execute_script("arguments[0].value = arguments[1];", self.css(selector), value)


def test_an_operators_five_calls_and_the_managers_escalation(
    world: World, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.keys import Keys

    # Under the test's folder; KANSA_CONSOLE_SHOTS keeps them somewhere to look at afterwards.
    shots = Path(os.environ.get("KANSA_CONSOLE_SHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    walk = Walk(browser, world, shots)
    clock = world.clock

    walk.sign_in("op01", "operator", "s01")
    assert "発信の準備" in browser.page_source and "TS-2026-09" in walk.css("#script-version").text
    walk.shot("operator-home")
    walk.navigating(lambda: walk.keys(Keys.ENTER))  # 受付開始, from the keyboard

    # 1. 佐藤 太郎: the person, the script to the end, a promise.
    walk.wait_for("#call-state")
    walk.shot("1-ringing")
    assert "回目（最低 3 回）" in walk.wait_for("#attempt").text, browser.page_source
    assert walk.answered("1") == "佐藤 太郎 様"
    assert walk.css("#amount").text == "48,000円"
    clock.advance(minutes=3)
    walk.navigating(lambda: walk.keys("1"))  # a person answered
    walk.outcome()
    for box in browser.find_elements("css selector", "#checklist input"):
        box.click()
    assert walk.css("input[name=script][value=completed]").is_selected()  # the checklist decided it
    walk.css("input[name=party][value=self]").click()
    walk.keys("1")  # disposition 1: completed
    walk.set_value("#promise_date", "2026-10-05")
    walk.css("#promise_amount").send_keys("48000")
    walk.shot("1-outcome")
    walk.navigating(lambda: walk.css("#promise_amount").send_keys(Keys.ENTER))

    # 2. 鈴木 花子 (a landline only): a household member who does not take the message.
    clock.advance(minutes=2)
    assert walk.answered("2") == "鈴木 花子 様"
    walk.navigating(lambda: walk.keys("1"))
    walk.outcome()
    walk.css("input[name=party][value=household]").click()
    walk.keys("7")  # absent_now
    walk.tick("input[name=mobile_asked]")
    walk.shot("2-outcome")
    walk.submit()

    # The ledger service goes away in the middle of the morning (what was recorded so far is in).
    world.wait_delivered()
    world.stop_service()

    # 3. 高橋 一郎: the family asks for a callback tomorrow at 14:00, inside the calling period.
    clock.advance(minutes=3)
    assert walk.answered("3") == "高橋 一郎 様"
    walk.navigating(lambda: walk.keys("1"))
    walk.outcome()
    walk.css("input[name=party][value=household]").click()
    walk.keys("7")
    walk.set_value("#callback_at", "2026-09-25T14:00")
    walk.submit()

    # 4. 田中 美咲: a callback on Saturday, outside the period: refused until escalated.
    clock.advance(minutes=3)
    assert walk.answered("4") == "田中 美咲 様"
    walk.navigating(lambda: walk.keys("1"))
    walk.outcome()
    walk.css("input[name=party][value=household]").click()
    walk.keys("7")
    walk.set_value("#callback_at", "2026-09-26T10:00")
    walk.submit()
    error = walk.wait_for("#error-callback_at")
    assert error.text.startswith("架電期間・時間外の日時です。")
    assert "何も記録していません" in walk.css("#form-errors").text
    walk.shot("4-refused")
    # The refusal is the page answered with 422: the one console error expected, read here.
    assert [m for m in console_errors(browser) if "422" not in m] == []
    walk.tick("input[name=escalate_callback]")
    walk.submit()

    # 5. 渡辺 健太: voicemail, the scripted message left.
    clock.advance(minutes=3)
    assert walk.answered("5") == "渡辺 健太 様"
    walk.navigating(lambda: walk.keys("2"))
    walk.outcome()
    assert walk.css("#message-left").text == "残した"
    walk.shot("5-voicemail")
    walk.submit()
    walk.wait_for("#waiting")
    assert walk.css("#fig-calls").text == "5" and walk.css("#fig-promises").text == "1"
    walk.shot("operator-day")
    assert console_errors(browser) == []

    # Nothing reached the ledger while the service was down; it all arrives when it returns.
    outcomes_before = [e for e in world.ledger_events() if e["type"] == "call.outcome"]
    assert len(outcomes_before) == 2
    world.start_service()
    world.wait_delivered()
    walk.css("#signout").click()
    walk.wait_for("#signin-form")

    # The manager raises the escalation the Saturday callback needs.
    clock.advance(minutes=10)
    walk.sign_in("mgr01", "manager")
    row = walk.wait_for(f"tr[data-case='{world.cases[3]}'][data-reason='callback_outside_period']")
    assert "期間外の折り返し希望" in row.text
    walk.shot("manager-desk")
    row.find_element("css selector", "button.raise").click()
    done = walk.wait_for(f"tr.done[data-case='{world.cases[3]}']")
    assert "済" in done.text
    walk.shot("manager-raised")
    walk.css("#signout").click()
    walk.wait_for("#signin-form")
    assert console_errors(browser) == []
    world.wait_delivered()
    world.stop()

    # The ledger as kansa check sees it: no violation, every view before its outcome.
    events = world.ledger_events()
    kinds = [e["type"] for e in events]
    assert kinds.count("call.dialed") == 5 and kinds.count("call.outcome") == 5
    assert kinds.count("escalation.raised") == 1
    for outcome in (e for e in events if e["type"] == "call.outcome"):
        views = [
            e for e in events if e["type"] == "access.viewed" and e["data"]["case"] == outcome["data"]["case"]
        ]
        assert views and views[0]["_index"] < outcome["_index"] and views[0]["at"] <= outcome["at"]
        assert outcome["data"]["script_version"] == "TS-2026-09"
    with Ledger.open(world.ledger_path, key_path=world.key_path) as led:
        led.sign_checkpoint(now=clock())
    done_check = subprocess.run(
        [EXE, "check", str(world.ledger_path), "--month", MONTH, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    findings = json.loads(done_check.stdout)["findings"]
    violations = [f for f in findings if not f["pending"]]
    assert violations == [], violations
    assert len(list(shots.iterdir())) >= 12
