"""The auditors' Datasette in a real headless Chromium (Debian's chromium + chromium-driver).

Selenium is given the driver's path, so Selenium Manager never downloads anything.
Skipped only where the Debian packages are missing (`make install` adds them as root).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from auditor_site import MONTH, PASSWORD, build_site
from browser import headless_chromium, needs_chromium, severe_logs
from processes import ServedApp

from datasette_plugins import make_datasette

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    site = build_site(tmp_path_factory.mktemp("browser"))
    datasette = make_datasette(site["db"], secret="browser-test")
    served = ServedApp(datasette.app).start()
    yield {**site, "url": served.url}
    served.stop()
    datasette.kansa_site.log.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with headless_chromium(tmp_path / "profile", "--window-size=1280,1600") as driver:
        yield driver


def test_sign_in_status_finding_and_proof(server: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    url = server["url"]
    shots = tmp_path / "screenshots"
    shots.mkdir()

    browser.get(f"{url}/-/kansa/status")
    assert "サインインが必要です" in browser.page_source  # anonymous: refused
    # ... which is the one console error expected: the 403 itself (reading the log clears it).
    assert [e["message"] for e in severe_logs(browser)] == [
        f"{url}/-/kansa/status - Failed to load resource:"
        " the server responded with a status of 403 (Forbidden)"
    ]
    browser.get(f"{url}/-/login")
    browser.find_element(By.ID, "id_username").send_keys("alice")
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.save_screenshot(str(shots / "1-sign-in.png"))
    browser.find_element(By.CSS_SELECTOR, "form.password-login input[type=submit]").click()
    assert browser.find_element(By.CSS_SELECTOR, ".actor").text == "alice"
    assert "台帳の状態と検証" in browser.page_source  # our links on the home page
    browser.save_screenshot(str(shots / "2-home.png"))

    # Status: the background verification may still be running; reload until it has a result.
    deadline = time.time() + 30
    while True:
        browser.get(f"{url}/-/kansa/status")
        if browser.find_elements(By.ID, "verify-ok") or browser.find_elements(By.ID, "verify-failed"):
            break
        assert time.time() < deadline, "verification never finished"
        time.sleep(0.5)
    assert browser.find_elements(By.ID, "verify-ok") and not browser.find_elements(By.ID, "verify-failed")
    assert "検証済み verified: 全" in browser.find_element(By.ID, "verify-ok").text
    assert browser.find_element(By.ID, "checkpoint-note").text.startswith("kansa.demo/")
    browser.save_screenshot(str(shots / "3-status.png"))

    # A finding, with its clause, then the entry it links to.
    browser.get(f"{url}/-/kansa/findings?month={MONTH}")
    group = browser.find_element(By.ID, "rule-CALL-HOURS")
    assert "平日" in group.find_element(By.TAG_NAME, "blockquote").text
    browser.save_screenshot(str(shots / "4-findings.png"))
    group.find_element(By.CSS_SELECTOR, "a.entry-link").click()
    assert f"台帳の記録 {server['late_index']}番" in browser.find_element(By.TAG_NAME, "h1").text
    assert browser.find_element(By.ID, "proof-ok").is_displayed()
    assert browser.find_element(By.ID, "signature-ok").is_displayed()
    assert browser.find_element(By.ID, "cited-findings").is_displayed()
    browser.find_element(By.CSS_SELECTOR, "#evidence summary").click()  # the evidence, collapsed by default
    assert '"hashes": [' in browser.find_element(By.ID, "proof").text
    browser.save_screenshot(str(shots / "5-entry-proof.png"))
    visible_texts = {"5-entry-proof": ""}  # the evidence is open here on purpose
    browser.find_element(By.ID, "case-link").click()
    assert "の経過" in browser.find_element(By.TAG_NAME, "h1").text
    browser.save_screenshot(str(shots / "6-case.png"))
    visible_texts["6-case"] = browser.find_element(By.TAG_NAME, "body").text

    for name, path in (
        ("7-month", f"/-/kansa/month/{MONTH}"),
        ("8-attempts", f"/-/kansa/attempts?month={MONTH}"),
        ("9-custody", "/-/kansa/custody"),
        ("10-kpis", "/-/kansa/kpis"),
        ("11-findings", f"/-/kansa/findings?month={MONTH}"),
    ):
        browser.get(url + path)
        browser.save_screenshot(str(shots / f"{name}.png"))
        visible_texts[name] = browser.find_element(By.TAG_NAME, "body").text
    assert "✘" in visible_texts["7-month"] and "仕様書6(2)イ" in visible_texts["7-month"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.kpi-chart")) == 0  # (on the findings page)
    browser.get(f"{url}/-/kansa/kpis")
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.kpi-chart")) >= 4
    # No English code in the visible text of any page Kansa renders.
    codes = ("number_unusable", "household", "violation", "judgement", "True", "False")
    leaks = {
        name: [c for c in codes if re.search(rf"\b{c}\b", text)] for name, text in visible_texts.items()
    }
    assert not any(leaks.values()), leaks

    assert sorted(p.name for p in shots.iterdir()) == sorted(
        [
            "1-sign-in.png",
            "2-home.png",
            "3-status.png",
            "4-findings.png",
            "5-entry-proof.png",
            "6-case.png",
            "7-month.png",
            "8-attempts.png",
            "9-custody.png",
            "10-kpis.png",
            "11-findings.png",
        ]
    )
    assert all(p.stat().st_size > 5000 for p in shots.iterdir())
    assert severe_logs(browser) == []
