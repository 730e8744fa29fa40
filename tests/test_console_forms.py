"""The operators' console over plain HTTP: sign-in, the call, every form's refusals (422, in
Japanese, beside the field, all at once, nothing written), the desks' forms, sessions.

A real ledger service, the dialling loop's seats API (the stand-in until `kansa dialer run`
lands) and the console, each served by uvicorn over loopback, on one simulated clock.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from console_world import PASSPHRASES, World, build_world, http_client

from console.app import MAX_FORM, MAX_UPLOAD
from console.keystore import SealedKeyError, read_sealed
from ledger import Ledger

STEPS = ["1", "2", "3", "4", "5"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(tmp_path_factory.mktemp("console-forms"))
    w.start(answer_after=0.05)
    yield w
    w.stop()


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


def errors_of(page: str) -> dict[str, str]:
    return dict(re.findall(r'class="field-error" id="error-([a-z0-9_]+)" role="alert">([^<]+)<', page))


OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close()


def sign_in(world: World, person: str, role: str, seat: str = "") -> tuple[httpx.Client, str]:
    client = http_client(world)
    OPEN.append(client)
    pre = csrf_of(client.get("/signin").text)
    answer = client.post(
        "/signin",
        data={"csrf": pre, "person": person, "passphrase": PASSPHRASES[person], "role": role, "seat": seat},
    )
    assert answer.status_code == 303, answer.text
    home = client.get(answer.headers["location"])
    return client, csrf_of(home.text)


def written(world: World) -> int:
    """Events anywhere: in the ledger or in any of the console's outboxes (counted once)."""
    return len(written_ids(world))


def written_ids(world: World) -> set[str]:
    ids = {e["id"] for e in world.ledger_events()}
    for path in world.config.outboxes.glob("*.outbox"):
        conn = sqlite3.connect(path)
        ids.update(i for (i,) in conn.execute("SELECT id FROM outbox"))
        conn.close()
    return ids


def answered_call(world: World, client: httpx.Client, csrf: str, case: int, kind: str = "person") -> str:
    """Puts a call to RESIDENTS[case] on the seat, waits for the answer, classifies it."""
    assert world.loop is not None
    world.loop.queue.append((world.cases[case], "1"))
    answer = client.post("/op/ready", data={"csrf": csrf})
    assert answer.status_code == 303
    deadline = time.time() + 10
    while True:
        page = client.get("/op/call").text
        if 'id="resident"' in page:
            break
        assert time.time() < deadline, "the call was never answered"
        time.sleep(0.05)
    assert client.post("/op/classify", data={"csrf": csrf, "kind": kind}).status_code == 303
    page = client.get("/op/call").text
    match = re.search(r'name="call" value="([^"]+)"', page)
    assert match
    # The loop writes call.dialed once the call has ended: wait for it, so it is not counted
    # as something a refused form wrote.
    while not any(
        s["call"] and s["call"]["call"] == match.group(1) and s["call"]["recorded"]
        for s in world.loop.board.all()
    ):
        assert time.time() < deadline, "the loop never recorded the call"
        time.sleep(0.02)
    return match.group(1)


@pytest.fixture
def operator(world: World) -> Iterator[tuple[httpx.Client, str]]:
    client, csrf = sign_in(world, "op01", "operator", "s01")
    yield client, csrf
    # Leave the seat free for the next test: finish whatever call is on it.
    page = client.get("/op/call").text
    match = re.search(r'name="call" value="([^"]+)"', page)
    if match:
        client.post(
            "/op/outcome",
            data={"csrf": csrf, "call": match.group(1), "party": "other", "disposition": "number_unusable"},
        )


def test_a_wrong_passphrase_is_refused_in_japanese_and_logged_by_the_device(world: World) -> None:
    client = http_client(world)
    OPEN.append(client)
    pre = csrf_of(client.get("/signin").text)
    answer = client.post(
        "/signin", data={"csrf": pre, "person": "op01", "passphrase": "wrong-pass", "role": "operator"}
    )
    assert answer.status_code == 401
    assert "IDまたはパスフレーズが違います。" in answer.text
    assert COOKIE_NAME not in answer.cookies
    world.wait_delivered()
    failed = [e for e in world.ledger_events() if e["type"] == "access.login" and not e["data"]["success"]]
    assert failed and failed[-1]["actor"] == "console01" and failed[-1]["data"]["person"] == "op01"


COOKIE_NAME = "kansa_console"


def test_a_form_without_its_csrf_token_is_refused_and_writes_nothing(world: World) -> None:
    client = http_client(world)
    OPEN.append(client)
    client.get("/signin")
    before = written(world)
    answer = client.post(
        "/signin", data={"person": "op01", "passphrase": PASSPHRASES["op01"], "role": "operator"}
    )
    assert answer.status_code == 403
    assert "フォームの有効期限が切れました" in answer.text
    client2, _csrf = sign_in(world, "mgr01", "manager")
    refused = client2.post("/manager/escalate", data={"case": world.cases[0], "reason": "other", "csrf": "x"})
    assert refused.status_code == 403
    # the manager's sign-in is the only thing written
    assert written(world) == before + 1


def test_the_sealed_key_holds_no_clear_key_and_opens_only_with_the_passphrase(world: World) -> None:
    path = world.config.keys / "op01.sealed"
    signer = world.extra["people"]["op01"]
    raw = path.read_text()
    # PRIVATE+KEY+<name>+<hash>+<base64 key>: the base64 itself may hold "+", so split only 4 times
    secret = signer.skey.split("+", 4)[4]
    assert len(secret) > 40
    assert signer.skey not in raw and secret not in raw
    assert path.stat().st_mode & 0o077 == 0
    assert read_sealed(path, PASSPHRASES["op01"]).verifier == signer.verifier
    with pytest.raises(SealedKeyError):
        read_sealed(path, "not the passphrase")


def test_resident_shown_only_after_access_viewed_is_durable_and_never_cached(
    world: World, operator: tuple[httpx.Client, str]
) -> None:
    client, csrf = operator
    call = answered_call(world, client, csrf, 5)
    page = client.get("/op/call")
    assert page.headers["cache-control"] == "no-store"
    assert "伊藤 陽子" in page.text and "9,000円" in page.text
    # the view is in the operator's outbox, signed, before anything else of the call
    outbox = sqlite3.connect(world.config.outboxes / "op01.outbox")
    bodies = [b for (b,) in outbox.execute("SELECT body FROM outbox ORDER BY seq")]
    assert any('"access.viewed"' in b and world.cases[5] in b for b in bodies)
    # the seat's state for the long poll carries no personal data
    seat = client.get("/op/seat.json").json()
    assert set(seat) == {"state", "version"}
    assert call


def test_completed_without_the_script_is_refused(world: World, operator: tuple[httpx.Client, str]) -> None:
    client, csrf = operator
    call = answered_call(world, client, csrf, 5)
    before = written(world)
    answer = client.post(
        "/op/outcome",
        data={
            "csrf": csrf,
            "call": call,
            "party": "self",
            "script": "completed",
            "disposition": "completed",
            "step": ["1", "2", "3"],
        },
    )
    assert answer.status_code == 422
    errors = errors_of(answer.text)
    assert (
        errors["script"]
        == "トークスクリプトの最後の手順（5）に達していないため「最後まで完了」にはできません。"
    )
    assert "何も記録していません" in answer.text
    assert written(world) == before
    # without any script at all, "completed" is refused on the disposition
    answer = client.post(
        "/op/outcome", data={"csrf": csrf, "call": call, "party": "self", "disposition": "completed"}
    )
    assert answer.status_code == 422
    assert (
        errors_of(answer.text)["disposition"]
        == "「完了」はトークスクリプトを最後まで伝えた場合だけ選べます。"
    )
    assert written(world) == before


def test_completed_with_a_household_member_needs_their_consent(
    world: World, operator: tuple[httpx.Client, str]
) -> None:
    client, csrf = operator
    call = answered_call(world, client, csrf, 5)
    before = written(world)
    answer = client.post(
        "/op/outcome",
        data={"csrf": csrf, "call": call, "party": "household", "step": STEPS, "disposition": "completed"},
    )
    assert answer.status_code == 422
    assert errors_of(answer.text)["disposition"] == "家族等への「完了」には、伝言を引き受ける承諾が必要です。"
    assert written(world) == before


def test_a_callback_outside_the_period_without_an_escalation_is_refused(
    world: World, operator: tuple[httpx.Client, str]
) -> None:
    client, csrf = operator
    call = answered_call(world, client, csrf, 5)
    # the form offers the month's calling days and hours left (9/20 and 9/21 are past) and
    # takes nothing before now (no latest time: one outside the period is recorded, escalated)
    page = client.get("/op/call").text
    offered = re.search(r'id="calling-days">([^<]+)<', page)
    assert offered, "the calling days are not on the form"
    assert offered.group(1) == (
        "今月の架電日時：9月24日（木）9:00〜20:00、9月25日（金）9:00〜20:00、9月28日（月）9:00〜20:00、"
        "9月29日（火）9:00〜20:00、9月30日（水）9:00〜20:00（これ以外の日時はエスカレーション）"
    )
    assert 'id="callback_at" min="2026-09-24T10:00"' in page
    before = written(world)
    fields = {"csrf": csrf, "call": call, "party": "household", "disposition": "absent_now"}
    # Saturday 26 September is not a calling day of the month's schedule
    answer = client.post("/op/outcome", data={**fields, "callback_at": "2026-09-26T10:00"})
    assert answer.status_code == 422
    assert errors_of(answer.text)["callback_at"].startswith("架電期間・時間外の日時です。")
    # 21:00 on a calling day is outside the hours
    answer = client.post("/op/outcome", data={**fields, "callback_at": "2026-09-25T21:00"})
    assert answer.status_code == 422 and "callback_at" in errors_of(answer.text)
    assert written(world) == before
    # with the escalation ticked it is recorded, and waits on the manager's desk
    answer = client.post(
        "/op/outcome", data={**fields, "callback_at": "2026-09-26T10:00", "escalate_callback": "1"}
    )
    assert answer.status_code == 303
    manager, _csrf = sign_in(world, "mgr01", "manager")
    desk = manager.get("/manager").text
    assert f'data-case="{world.cases[5]}" data-reason="callback_outside_period"' in desk


def test_a_promise_without_an_amount_is_refused_and_every_error_shows_at_once(
    world: World, operator: tuple[httpx.Client, str]
) -> None:
    client, csrf = operator
    call = answered_call(world, client, csrf, 5)
    before = written(world)
    answer = client.post(
        "/op/outcome",
        data={
            "csrf": csrf,
            "call": call,
            "party": "self",
            "step": STEPS,
            "script": "completed",
            "disposition": "completed",
            "promise_date": "2026-10-05",
        },
    )
    assert answer.status_code == 422
    assert errors_of(answer.text) == {"promise_amount": "納付の約束には金額が必要です。"}
    # the requests in the contract's words (T 5(3): 分割納付の希望、納税拒否、課税内容についての疑義)
    assert "分割納付の希望" in answer.text and "賦課内容についての疑義" in answer.text
    answer = client.post(
        "/op/outcome",
        data={
            "csrf": csrf,
            "call": call,
            "party": "",
            "disposition": "completed",
            "promise_amount": "abc",
            "callback_at": "2026-09-27T10:00",
            "requests": "refusal",
        },
    )
    assert answer.status_code == 422
    errors = errors_of(answer.text)
    assert set(errors) >= {"party", "disposition", "promise_date", "promise_amount", "callback_at"}
    assert errors["promise_amount"] == "金額は1円以上の整数（円）で入力してください。"
    assert "入力に" in answer.text and "件の誤りがあります" in answer.text
    # the form comes back as it was posted
    assert (
        'name="promise_amount" id="promise_amount" min="1" step="1" inputmode="numeric" value="abc"'
        in answer.text
    )
    assert written(world) == before


def test_a_landline_only_case_reached_needs_the_mobile_question(
    world: World, operator: tuple[httpx.Client, str]
) -> None:
    client, csrf = operator
    call = answered_call(world, client, csrf, 1)  # 鈴木 花子: a landline only
    before = written(world)
    answer = client.post(
        "/op/outcome", data={"csrf": csrf, "call": call, "party": "household", "disposition": "absent_now"}
    )
    assert answer.status_code == 422
    assert errors_of(answer.text)["mobile_asked"].startswith("固定電話だけの案件です。")
    assert written(world) == before


def test_a_recorded_outcome_is_signed_with_the_script_version_after_its_view(
    world: World, operator: tuple[httpx.Client, str]
) -> None:
    client, csrf = operator
    call = answered_call(world, client, csrf, 0)
    answer = client.post(
        "/op/outcome",
        data={
            "csrf": csrf,
            "call": call,
            "party": "self",
            "step": STEPS,
            "disposition": "completed",
            "promise_date": "2026-10-05",
            "promise_amount": "12,000",
            "requests": "installment",
        },
    )
    assert answer.status_code == 303, errors_of(answer.text)
    world.wait_delivered()
    events = world.ledger_events()
    (outcome,) = [e for e in events if e["type"] == "call.outcome" and e["data"]["call"] == call]
    assert outcome["actor"] == "op01"
    assert outcome["data"]["script"] == "completed" and outcome["data"]["script_version"] == "TS-2026-09"
    assert outcome["data"]["promise"] == {"date": "2026-10-05", "amount": 12000}
    views = [e for e in events if e["type"] == "access.viewed" and e["data"]["case"] == world.cases[0]]
    assert views and views[-1]["_index"] < outcome["_index"] and views[-1]["data"]["purpose"] == "call"
    manager, _csrf = sign_in(world, "mgr01", "manager")
    assert f'data-case="{world.cases[0]}" data-reason="installment"' in manager.get("/manager").text


def test_voicemail_records_whether_the_message_was_left(
    world: World, operator: tuple[httpx.Client, str]
) -> None:
    client, csrf = operator
    call = answered_call(world, client, csrf, 4, kind="voicemail_left")
    page = client.get("/op/call").text
    assert '伝言：<strong id="message-left">残した</strong>' in page
    answer = client.post(
        "/op/outcome",
        data={
            "csrf": csrf,
            "call": call,
            "party": "none",
            "script": "not_started",
            "disposition": "no_contact",
        },
    )
    assert answer.status_code == 303
    world.wait_delivered()
    dialed = [e for e in world.ledger_events() if e["type"] == "call.dialed" and e["data"]["call"] == call]
    assert dialed[0]["data"]["result"] == "voicemail" and dialed[0]["data"]["message_left"] is True


def test_the_city_approves_a_talk_script_the_manager_loaded(world: World) -> None:
    manager, csrf = sign_in(world, "mgr01", "manager")
    text = "# 改訂版\n\n1. 名乗り\n2. 本人確認\n3. 用件とお願い\n"
    answer = manager.post(
        "/manager/documents",
        data={"csrf": csrf, "kind": "talk_script", "version": "TS-2026-09b"},
        files={"file": ("script.md", text.encode(), "text/markdown")},
    )
    assert answer.status_code == 303
    assert "承認待ち" in manager.get("/manager").text
    bad = manager.post(
        "/manager/documents",
        data={"csrf": csrf, "kind": "talk_script", "version": "TS-x"},
        files={"file": ("script.md", "番号のない文章だけ".encode(), "text/markdown")},
    )
    assert bad.status_code == 422 and "番号付きの手順（「1. …」）がありません" in bad.text
    city, city_csrf = sign_in(world, "city01", "city")
    assert "TS-2026-09b" in city.get("/city").text
    answer = city.post(
        "/city/approve", data={"csrf": city_csrf, "kind": "talk_script", "version": "TS-2026-09b"}
    )
    assert answer.status_code == 303
    world.wait_delivered()
    (approval,) = [
        e
        for e in world.ledger_events()
        if e["type"] == "document.approved" and e["data"]["version"] == "TS-2026-09b"
    ]
    assert approval["actor"] == "city01" and approval["data"]["by"] == "city01"
    import hashlib

    assert approval["data"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    # operators now work with the new version
    operator, _csrf = sign_in(world, "op01", "operator", "s01")
    assert 'id="script-version">TS-2026-09b<' in operator.get("/op").text


def test_the_city_orders_a_stop_and_refuses_an_unknown_case(world: World) -> None:
    city, csrf = sign_in(world, "city01", "city")
    before = written(world)
    bad = city.post("/city/stop", data={"csrf": csrf, "case": "nope", "reason": ""})
    assert bad.status_code == 422
    assert errors_of(bad.text) == {
        "case": "その案件番号（または案件参照）の案件はありません。",
        "reason": "停止の理由を入力してください。",
    }
    assert written(world) == before
    page = city.get("/city").text
    assert "佐藤" not in page and "090-" not in page  # no personal data on the city's desk
    answer = city.post("/city/stop", data={"csrf": csrf, "case": world.cases[5], "reason": "納付済み"})
    assert answer.status_code == 303
    world.wait_delivered()
    stop = [e for e in world.ledger_events() if e["type"] == "case.stop"][-1]
    assert stop["actor"] == "city01" and stop["data"] == {
        "case": world.cases[5],
        "by": "city01",
        "reason": "納付済み",
    }


def test_the_manager_records_training_and_refuses_a_pledge_without_its_scan(world: World) -> None:
    manager, csrf = sign_in(world, "mgr01", "manager")
    before = written(world)
    bad = manager.post("/manager/staff", data={"csrf": csrf, "action": "pledged", "person": "op02", "to": ""})
    assert bad.status_code == 422
    assert set(errors_of(bad.text)) == {"sha256", "to"}
    assert written(world) == before
    ok = manager.post(
        "/manager/staff", data={"csrf": csrf, "action": "trained", "person": "op01", "course": "privacy"}
    )
    assert ok.status_code == 303
    assert written(world) == before + 1


def test_a_pledge_scan_over_the_limit_is_refused_before_it_is_read_and_nothing_is_written(
    world: World,
) -> None:
    manager, csrf = sign_in(world, "mgr01", "manager")
    before = written_ids(world)
    fields = {"csrf": csrf, "action": "pledged", "person": "op02", "to": "市収納課 山田"}
    for size in (MAX_UPLOAD + 1, MAX_FORM + 1):  # the upload over its limit; the whole form over its
        scan = {"pledge": ("pledge.pdf", b"%PDF" + b"0" * (size - 4), "application/pdf")}
        answer = manager.post("/manager/staff", data=fields, files=scan)
        assert answer.status_code == 413
        assert "送信されたファイルが大きすぎます（10 MB まで）。何も記録していません。" in answer.text
    assert written_ids(world) == before
    small = b"%PDF-1.4 signed pledge"
    ok = manager.post(
        "/manager/staff", data=fields, files={"pledge": ("pledge.pdf", small, "application/pdf")}
    )
    assert ok.status_code == 303
    world.wait_delivered()
    [new] = [e for e in world.ledger_events() if e["id"] in written_ids(world) - before]
    assert new["type"] == "staff.pledged" and new["data"]["sha256"] == hashlib.sha256(small).hexdigest()


def test_sessions_expire_and_the_manager_can_revoke_one(world: World) -> None:
    operator, _csrf = sign_in(world, "op01", "operator", "s02")
    manager, csrf = sign_in(world, "mgr01", "manager")
    desk = manager.get("/manager").text
    handles = re.findall(r'name="session" value="([0-9a-f]+)"', desk)
    assert handles
    for handle in handles:
        manager.post("/manager/sessions/revoke", data={"csrf": csrf, "session": handle})
    assert operator.get("/op").headers["location"] == "/signin"
    assert manager.get("/manager").status_code == 200  # the manager's own session stays
    world.clock.advance(hours=10)
    try:
        assert manager.get("/manager").headers["location"] == "/signin"
    finally:
        world.clock.advance(hours=-10)


def test_the_manager_registers_a_sealed_key_through_the_ledger_service(world: World) -> None:
    manager, csrf = sign_in(world, "mgr01", "manager")
    desk = manager.get("/manager").text
    assert "op99" in desk and "未登録" in desk
    answer = manager.post("/manager/keys", data={"csrf": csrf, "action": "register", "person": "op99"})
    assert answer.status_code == 303, answer.text
    (registered,) = [
        e for e in world.ledger_events() if e["type"] == "key.registered" and e["data"]["holder"] == "op99"
    ]
    assert registered["actor"] == "mgr01" and registered["data"]["requested_with"].startswith("mgr01+")
    with Ledger.open(world.ledger_path, readonly=True) as led:
        leaf = json.loads(led.leaf(registered["_index"]))
        assert leaf["sig"]["key"] == led.key_ref  # appended by the service with the ledger's own key
    bad = manager.post("/manager/keys", data={"csrf": csrf, "action": "register", "person": "nobody"})
    assert bad.status_code == 422 and "その職員の鍵ファイルがありません。" in bad.text


def test_the_city_gives_the_months_sms_list(world: World) -> None:
    city, csrf = sign_in(world, "city01", "city")
    before = written(world)
    bad = city.post(
        "/city/sms", data={"csrf": csrf, "batch": "B2026-09", "cases": "nope", "send_at": "", "sender_id": ""}
    )
    assert bad.status_code == 422
    assert set(errors_of(bad.text)) == {"cases", "send_at", "sender_id"}
    assert written(world) == before
    answer = city.post(
        "/city/sms",
        data={
            "csrf": csrf,
            "batch": "B2026-09",
            "cases": "\n".join(world.cases[:2]),
            "send_at": "2026-09-25T10:00",
            "sender_id": "0258-39-2000",
        },
    )
    assert answer.status_code == 303
    # the city's page says when in its own words (no ISO date left on a page)
    assert "2件、9月25日（金）10:00 送信、送信元 0258-39-2000" in city.get("/city").text
    world.wait_delivered()
    sms = [e for e in world.ledger_events() if e["type"] == "sms.designated"][-1]
    assert sms["actor"] == "city01"
    assert sms["data"] == {
        "batch": "B2026-09",
        "cases": world.cases[:2],
        "send_at": "2026-09-25T10:00:00+09:00",
        "sender_id": "0258-39-2000",
    }
    # a time given with its offset (a script over HTTP) is that moment, not relabelled as JST
    data = {"csrf": csrf, "batch": "B2026-09", "cases": world.cases[2], "sender_id": "0258-39-2000"}
    assert city.post("/city/sms", data={**data, "send_at": "2026-09-25T03:00:00+00:00"}).status_code == 303
    world.wait_delivered()
    sms = [e for e in world.ledger_events() if e["type"] == "sms.designated"][-1]
    assert sms["data"]["send_at"] == "2026-09-25T12:00:00+09:00"


def test_an_unanswered_call_gets_its_outcome_at_once(
    world: World, operator: tuple[httpx.Client, str]
) -> None:
    client, csrf = operator
    assert world.loop is not None
    world.loop.unanswered.add(world.cases[2])
    world.loop.queue.append((world.cases[2], "1"))
    assert client.post("/op/ready", data={"csrf": csrf}).status_code == 303
    deadline = time.time() + 15
    while True:
        client.get("/op/call")  # what the waiting page does when the seat changes
        world.wait_delivered()
        events = world.ledger_events()
        outcomes = [e for e in events if e["type"] == "call.outcome" and e["data"]["case"] == world.cases[2]]
        if outcomes:
            break
        assert time.time() < deadline, "the unanswered call got no outcome"
        time.sleep(0.1)
    (outcome,) = outcomes
    (dialed,) = [
        e for e in events if e["type"] == "call.dialed" and e["data"]["call"] == outcome["data"]["call"]
    ]
    assert dialed["data"]["result"] == "no_answer"
    assert outcome["actor"] == "op01" and outcome["data"]["party"] == "none"
    assert outcome["data"]["disposition"] == "no_contact"
    assert outcome["data"]["script_version"].startswith("TS-2026-09")  # the version approved that day
    # nothing of the resident was shown: no access.viewed for that case
    assert not [e for e in events if e["type"] == "access.viewed" and e["data"]["case"] == world.cases[2]]
    assert world.loop.board.get("s01")["state"] == "ready"


def put_inbound(world: World, seat: str, case: str | None) -> str:
    """A resident's callback handed to the seat, and its callback.received with the call's id,
    as the loop's callback line (dialer_core/callbacks.py) does. Returns the call id."""
    from dialer_core.seats import Call

    assert world.loop is not None
    board = world.loop.board
    call_id = f"IN-{time.time_ns()}"
    board.ready(seat, "op01")
    call = Call(call_id, "inbound", case, None, None, world.clock().isoformat(), state="connected")
    call.queued_s = 12
    board.start(seat, call, None)
    board.recorded(seat, release=False)
    data = {"case": case, "queued_s": 12, "handled": "operator", "call": call_id}
    world.loop.record("callback.received", data, world.clock())
    return call_id


def test_a_residents_callback_shows_who_it_is_after_the_view_is_recorded(world: World) -> None:
    client, csrf = sign_in(world, "op01", "operator", "s02")
    assert world.loop is not None
    board = world.loop.board
    case = world.cases[4]  # 渡辺 健太, 72,000 円, その他
    before = written_ids(world)
    call_id = put_inbound(world, "s02", case)
    page = client.get("/op/call").text
    assert "住民からの折り返し電話" in page and case in page
    assert "渡辺 健太" in page and "72,000円" in page and 'id="category">その他<' in page
    # the view was signed by the operator and durable in their outbox before the page answered
    new = written_ids(world) - before
    conn = sqlite3.connect(world.config.outboxes / "op01.outbox")
    bodies = [json.loads(b)["event"] for (i, b) in conn.execute("SELECT id, body FROM outbox") if i in new]
    conn.close()
    (viewed,) = [e for e in bodies if e["type"] == "access.viewed"]
    assert viewed["actor"] == "op01"
    assert viewed["data"] == {"person": "op01", "case": case, "purpose": "callback"}
    # the resident asks for installments and no more calls: they are recorded with the callback's
    # outcome (tests/test_console_callbacks.py), not by ending the call without one
    board.progress("s02", "ended")
    refused = client.post(
        "/op/inbound-done",
        data={"csrf": csrf, "call": call_id, "requests": ["installment", "stop_contact"]},
    )
    assert refused.status_code == 422 and written_ids(world) - before == new
    assert errors_of(refused.text) == {
        "requests": "申し出は通話の記録に含め、「記録して終了」で記録してください。"
    }
    # both go to the city at once, with the callback.outcome (no call.outcome: never dialled)
    answer = client.post(
        "/op/callback-outcome",
        data={
            "csrf": csrf,
            "call": call_id,
            "party": "self",
            "step": ["1", "2"],
            "disposition": "no_contact",
            "requests": ["installment", "stop_contact"],
        },
    )
    assert answer.status_code == 303
    assert board.get("s02")["call"] is None and board.get("s02")["state"] == "ready"
    world.wait_delivered()
    events = [e for e in world.ledger_events() if e["id"] not in before]
    raised = [e for e in events if e["type"] == "escalation.raised"]
    assert {(e["actor"], e["data"]["case"], e["data"]["reason"], e["data"]["via"]) for e in raised} == {
        ("op01", case, "installment", "callback"),
        ("op01", case, "other", "callback"),
    }
    assert all(e["data"]["to"] == "city01" for e in raised)
    assert not [e for e in events if e["type"] == "call.outcome"]
    (outcome,) = [e for e in events if e["type"] == "callback.outcome"]
    assert (outcome["data"]["call"], outcome["data"]["disposition"]) == (call_id, "no_contact")
    manager, _csrf = sign_in(world, "mgr01", "manager")
    desk = manager.get("/manager").text
    section = desk[desk.index('id="callback-escalations"') :]
    assert f'data-case="{case}" data-reason="installment"' in section
    city, _csrf = sign_in(world, "city01", "city")
    assert "折り返し電話で受付" in city.get("/city").text
    board.pause("s02", "offline")


def test_an_unidentified_callers_requests_are_refused_and_nothing_is_shown(world: World) -> None:
    client, csrf = sign_in(world, "op01", "operator", "s02")
    assert world.loop is not None
    board = world.loop.board
    call_id = put_inbound(world, "s02", None)
    before = written(world)  # after the loop's callback.received
    page = client.get("/op/call").text
    assert "番号から特定できません" in page and 'name="requests"' not in page
    answer = client.post("/op/inbound-done", data={"csrf": csrf, "call": call_id, "requests": "complaint"})
    assert answer.status_code == 422
    assert errors_of(answer.text) == {
        "requests": "案件が特定できない電話の用件は、管理者に口頭で引き継いでください。"
    }
    assert written(world) == before  # no view, no escalation
    board.progress("s02", "ended")
    assert client.post("/op/inbound-done", data={"csrf": csrf, "call": call_id}).status_code == 303
    assert board.get("s02")["state"] == "ready"
    board.pause("s02", "offline")


def revoke_sessions(manager: httpx.Client, csrf: str, person: str) -> None:
    """The manager ends every session of `person` from the desk."""
    desk = manager.get("/manager").text
    row = rf'<tr><td>{person}</td>(?:(?!</tr>).)*name="session" value="([0-9a-f]+)"'
    handles = re.findall(row, desk, re.S)
    assert handles, f"no session of {person} on the desk"
    for handle in handles:
        answer = manager.post("/manager/sessions/revoke", data={"csrf": csrf, "session": handle})
        assert answer.status_code == 303


def wait_for(predicate: Callable[[], object], what: str, seconds: float = 15.0) -> None:
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, what
        time.sleep(0.05)


def test_an_unanswered_call_gets_its_outcome_with_no_page_watching(
    world: World, operator: tuple[httpx.Client, str]
) -> None:
    """No browser looks at the seat after 受付開始: the console's sweep writes the outcome,
    signed by the operator (their session holds the key), once, and the seat dials again."""
    client, csrf = operator
    assert world.loop is not None
    world.loop.unanswered.add(world.cases[3])
    world.loop.queue.append((world.cases[3], "1"))
    assert client.post("/op/ready", data={"csrf": csrf}).status_code == 303
    outcomes: list[dict[str, Any]] = []

    def recorded() -> bool:
        world.wait_delivered()
        outcomes[:] = [
            e
            for e in world.ledger_events()
            if e["type"] == "call.outcome" and e["data"]["case"] == world.cases[3]
        ]
        return bool(outcomes)

    wait_for(recorded, "the unanswered call got no outcome without a page")
    (outcome,) = outcomes
    assert outcome["id"] == f"unanswered-{outcome['data']['call']}"
    assert outcome["actor"] == "op01" and outcome["data"]["disposition"] == "no_contact"
    wait_for(lambda: world.loop.board.get("s01")["state"] == "ready", "the seat did not dial again")
    time.sleep(1.2)  # two more sweeps: still exactly one outcome
    world.wait_delivered()
    again = [
        e
        for e in world.ledger_events()
        if e["type"] == "call.outcome" and e["data"]["case"] == world.cases[3]
    ]
    assert len(again) == 1


def test_a_seat_whose_operators_session_ended_stops_and_the_manager_records_its_call(
    world: World,
) -> None:
    """The manager revokes the operator's session while a call rings on their seat: the seat is
    signed out at the loop, the operator's key is not used any more, and the unanswered call
    waits on the manager's desk, where the manager records it (signed by the manager)."""
    from dialer_core.seats import Call

    assert world.loop is not None
    board = world.loop.board
    sign_in(world, "op01", "operator", "s02")
    manager, csrf = sign_in(world, "mgr01", "manager")
    revoke_sessions(manager, csrf, "op01")
    started = world.clock()
    call_id = f"OUT-ORPHAN-{time.time_ns()}"
    with board.lock:  # placed and ended at once: the sweep sees it only after it ended
        board.ready("s02", "op01")
        board.start(
            "s02", Call(call_id, "outbound", world.cases[5], "1", "0258-39-1001", started.isoformat()), None
        )
        board.progress("s02", "ended", result="no_answer", ring_s=35, ended_at=started.isoformat())
    world.loop.record(
        "call.dialed",
        {
            "case": world.cases[5],
            "number": "1",
            "call": call_id,
            "caller_id": "0258-39-1001",
            "ended_at": started.isoformat(),
            "ring_s": 35,
            "result": "no_answer",
        },
        started,
    )
    board.recorded("s02", release=False)
    wait_for(
        lambda: f'data-call="{call_id}"' in manager.get("/manager").text, "the desk never listed the call"
    )
    seat = board.get("s02")
    assert seat["state"] == "wrap_up" and seat["call"]["call"] == call_id  # waits for its outcome
    assert written_ids(world).isdisjoint({f"unanswered-{call_id}"})  # not signed with op01's key
    answer = manager.post("/manager/unanswered", data={"csrf": csrf, "call": call_id})
    assert answer.status_code == 303
    world.wait_delivered()
    (outcome,) = [
        e for e in world.ledger_events() if e["type"] == "call.outcome" and e["data"]["call"] == call_id
    ]
    assert outcome["id"] == f"unanswered-{call_id}" and outcome["actor"] == "mgr01"
    assert outcome["data"]["party"] == "none" and outcome["data"]["disposition"] == "no_contact"
    seat = board.get("s02")
    assert seat["state"] == "offline" and seat["call"] is None  # signed out: no more calls for op01
    again = manager.post("/manager/unanswered", data={"csrf": csrf, "call": call_id})
    assert again.status_code == 422
    assert errors_of(again.text) == {"unanswered": "その通話は記録待ちではありません（すでに記録済みです）。"}


def test_the_manager_designates_and_revokes_staff_and_a_revoked_operators_session_ends_at_once(
    world: World,
) -> None:
    from console_world import FAST

    from console.keystore import write_sealed
    from ledger import Signer

    write_sealed(world.config.keys / "op98.sealed", Signer.generate("op98"), "op98-passphrase", **FAST)
    PASSPHRASES["op98"] = "op98-passphrase"
    manager, csrf = sign_in(world, "mgr01", "manager")
    answer = manager.post("/manager/keys", data={"csrf": csrf, "action": "register", "person": "op98"})
    assert answer.status_code == 303, answer.text

    def try_sign_in() -> httpx.Response:
        client = http_client(world)
        OPEN.append(client)
        pre = csrf_of(client.get("/signin").text)
        data = {"csrf": pre, "person": "op98", "passphrase": "op98-passphrase", "role": "operator"}
        return client.post("/signin", data={**data, "seat": "s02"})

    refused = try_sign_in()
    assert refused.status_code == 401 and "オペレータとして指定されていません。" in refused.text
    fields = {"csrf": csrf, "person": "op98", "role": "operator"}
    assert manager.post("/manager/staff", data={**fields, "action": "designate"}).status_code == 303
    world.wait_delivered()
    # the revocation waits for what op98 signed to reach the ledger (here: the ledger service
    # is down when op98 signs in)
    world.stop_service()
    try:
        operator, _csrf = sign_in(world, "op98", "operator", "s02")
        before = written(world)
        early = manager.post("/manager/staff", data={**fields, "action": "revoke"})
        assert early.status_code == 409
        assert errors_of(early.text)["person"].startswith(
            "この職員（鍵）が署名した記録のうち 1 件がまだ台帳に届いていません。"
        )
        assert written(world) == before and operator.get("/op").status_code == 200
    finally:
        world.start_service()
    world.wait_delivered()
    assert manager.post("/manager/staff", data={**fields, "action": "revoke"}).status_code == 303
    assert operator.get("/op").headers["location"] == "/signin"  # at once
    assert try_sign_in().status_code == 401
    world.wait_delivered()
    events = [e for e in world.ledger_events() if "op98" in json.dumps(e["data"]) or e["actor"] == "op98"]
    kinds = [
        (e["type"], e["actor"]) for e in events if e["type"] != "access.login" or e["actor"] != "console01"
    ]
    assert kinds == [
        ("key.registered", "mgr01"),
        ("staff.designated", "mgr01"),
        ("access.login", "op98"),
        ("staff.revoked", "mgr01"),  # nothing of op98's after it
    ]
    designated = next(e for e in events if e["type"] == "staff.designated")
    assert designated["data"] == {"person": "op98", "role": "operator", "by": "mgr01"}


def test_the_manager_revokes_a_key_through_the_ledger_service_and_its_sessions_end(world: World) -> None:
    manager, csrf = sign_in(world, "mgr01", "manager")
    fields = {"csrf": csrf, "person": "op98", "role": "operator", "action": "designate"}
    assert manager.post("/manager/staff", data=fields).status_code == 303
    with Ledger.open(world.ledger_path, readonly=True) as led:
        ledger_key = led.key_ref
    key = json.loads((world.config.keys / "op98.sealed").read_text())["key"]
    # While what the key signed has not reached the ledger, it is not revoked (appended after
    # the revocation, it would count as signed with a revoked key).
    world.wait_delivered()  # the designation is in the ledger before op98 signs in
    world.stop_service()
    try:
        operator, _csrf = sign_in(world, "op98", "operator", "s02")
        before = written(world)
        answer = manager.post(
            "/manager/keys", data={"csrf": csrf, "action": "revoke", "person": "op98", "key": key}
        )
        assert answer.status_code == 409
        assert errors_of(answer.text)["keys"].startswith(
            "この職員（鍵）が署名した記録のうち 1 件がまだ台帳に届いていません。"
        )
        assert written(world) == before
    finally:
        world.start_service()
    world.wait_delivered()
    answer = manager.post(
        "/manager/keys",
        data={"csrf": csrf, "action": "revoke", "person": "op98", "key": key, "reason": "鍵ファイルの紛失"},
    )
    assert answer.status_code == 303, answer.text
    (revoked,) = [e for e in world.ledger_events() if e["type"] == "key.revoked" and e["data"]["key"] == key]
    assert revoked["actor"] == "mgr01" and revoked["data"]["reason"] == "鍵ファイルの紛失"
    with Ledger.open(world.ledger_path, readonly=True) as led:
        assert json.loads(led.leaf(revoked["_index"]))["sig"]["key"] == ledger_key  # the ledger's own key
    assert operator.get("/op").headers["location"] == "/signin"  # the session holding it ended
    world.wait_delivered()
    assert not [e for e in world.ledger_events() if e["actor"] == "op98" and e["_index"] > revoked["_index"]]
    client = http_client(world)
    OPEN.append(client)
    pre = csrf_of(client.get("/signin").text)
    again = client.post(
        "/signin",
        data={
            "csrf": pre,
            "person": "op98",
            "passphrase": "op98-passphrase",
            "role": "operator",
            "seat": "s02",
        },
    )
    assert again.status_code == 401
    assert "この鍵は台帳に登録されていないか、失効しています。" in again.text
    own = json.loads((world.config.keys / "mgr01.sealed").read_text())["key"]
    mine = manager.post(
        "/manager/keys", data={"csrf": csrf, "action": "revoke", "person": "mgr01", "key": own}
    )
    assert mine.status_code == 422


def test_the_managers_desk_lists_the_daily_and_the_monthly_reports_due(world: World) -> None:
    assert world.loop is not None
    at = world.clock()  # a call on Thursday 24 September, as the loop records it
    data = {
        "case": world.cases[5],
        "number": "1",
        "call": f"OUT-{time.time_ns()}",
        "caller_id": "0258-39-1001",
    }
    world.loop.record(
        "call.dialed", {**data, "ended_at": at.isoformat(), "ring_s": 35, "result": "no_answer"}, at
    )
    manager, _csrf = sign_in(world, "mgr01", "manager")

    def reports() -> str:
        desk = manager.get("/manager").text
        return desk[desk.index('id="reports"') : desk.index("</section>", desk.index('id="reports"'))]

    wait_for(lambda: "分の日報（期限" in reports(), "the desk never listed the daily report")
    # calls were made on Thursday 24 September: its daily report is due at 12:00 the next day
    assert "2026年9月24日（木）分の日報（期限：2026年9月25日 12:00）" in reports()
    # REPORT-MONTHLY (N): 2 business days after the last calling day, Wednesday 30 September
    assert (
        "2026年9月分の月報（期限：2026年10月2日（金）中。最終架電日 2026年9月30日（水）から2開庁日以内）"
        in reports()
    )


def test_the_managers_desk_counts_the_latest_checks_violations_with_their_clauses(world: World) -> None:
    import subprocess

    from processes import EXE

    with Ledger.open(world.ledger_path, key_path=world.key_path) as led:
        led.sign_checkpoint(now=world.clock())
    assert world.config.results is not None
    done = subprocess.run(
        [EXE, "check", str(world.ledger_path), "--month", "2026-09", "--format", "json"]
        + ["--results", str(world.config.results)],
        capture_output=True,
        text=True,
        check=True,
    )
    due = [f for f in json.loads(done.stdout)["findings"] if not f["pending"]]
    manager, _csrf = sign_in(world, "mgr01", "manager")
    desk = manager.get("/manager").text
    assert f'<strong id="violations-total">{len(due)}</strong>' in desk
    for finding in due:  # each rule with the clause of the specification, as the city reads it
        assert f"<code>{finding['rule']}</code>（仕様書" in desk


def test_a_ready_seat_whose_operators_session_expired_stops_dialling(world: World) -> None:
    """Nobody is at the seat any more: the loop must not place calls for it."""
    assert world.loop is not None
    client, csrf = sign_in(world, "op01", "operator", "s02")
    assert client.post("/op/ready", data={"csrf": csrf}).status_code == 303
    assert world.loop.board.get("s02")["state"] in ("ready", "dialing", "ringing", "connected")
    world.clock.advance(minutes=9 * 60 + 1)  # past session_minutes
    try:
        wait_for(lambda: world.loop.board.get("s02")["state"] == "offline", "the seat still takes calls")
        assert client.get("/op").headers["location"] == "/signin"
    finally:
        world.clock.advance(minutes=-(9 * 60 + 1))


def test_after_a_restart_the_console_signs_out_the_seats_nobody_holds_any_more(world: World) -> None:
    """Sessions live in memory: after a restart nobody is signed in, so a seat the loop still
    has in `ready` for an operator of the previous run would be dialled for nobody."""
    import asyncio

    from console.app import Console

    assert world.loop is not None
    board = world.loop.board
    board.pause("s02", "offline")
    board.ready("s02", "op77")  # left by the previous run (the running console never seated op77)
    time.sleep(0.6)
    assert board.get("s02")["state"] == "ready"
    fresh = Console(world.config, clock=world.clock)

    async def first_sweep() -> None:
        try:
            await fresh.sweep()
        finally:
            await fresh.loop.close()

    try:
        asyncio.run(first_sweep())
    finally:
        fresh.stop()
    assert board.get("s02")["state"] == "offline"


def test_an_answered_call_left_by_an_ended_session_is_shown_but_not_recorded_by_the_manager(
    world: World,
) -> None:
    from dialer_core.seats import Call

    assert world.loop is not None
    board = world.loop.board
    board.pause("s02", "offline")
    sign_in(world, "op01", "operator", "s02")
    manager, csrf = sign_in(world, "mgr01", "manager")
    revoke_sessions(manager, csrf, "op01")
    at = world.clock().isoformat()
    call_id = f"OUT-TALKED-{time.time_ns()}"
    with board.lock:
        board.ready("s02", "op01")
        board.start("s02", Call(call_id, "outbound", world.cases[5], "1", "0258-39-1001", at), None)
        board.progress("s02", "connected", answered_at=at)
        board.progress("s02", "ended", result="answered", ended_at=at)
        board.recorded("s02", release=False)  # the loop wrote call.dialed (answered, not classified)
    wait_for(
        lambda: f'data-call="{call_id}"' in manager.get("/manager").text, "the desk never listed the call"
    )
    desk = manager.get("/manager").text
    row = desk[desk.index(f'data-call="{call_id}"') :]
    row = row[: row.index("</tr>")]
    assert "相手と話した通話です。結果はそのオペレータが再びサインインして記録します。" in row
    assert 'action="/manager/unanswered"' not in row
    before = written(world)
    refused = manager.post("/manager/unanswered", data={"csrf": csrf, "call": call_id})
    assert refused.status_code == 422 and written(world) == before
    board.outcome(call_id, None)  # clean up the seat
    assert board.get("s02")["state"] == "offline"


def test_the_board_starts_with_what_the_outboxes_still_hold(tmp_path: Any) -> None:
    """What earlier runs recorded and did not deliver is on the desks at once after a start
    (read through dialer_core.client.pending_events, the outbox's owner)."""
    from console_world import t

    from dialer_core.client import OperatorClient, pending_events
    from ledger import Signer

    outbox = tmp_path / "op01.outbox"
    assert pending_events(outbox) == []  # no file yet
    with OperatorClient(
        "http://127.0.0.1:1", Signer.generate("op01"), outbox, clock=lambda: t("2026-09-24 10:00")
    ) as client:
        first = client.record("access.login", {"person": "op01", "terminal": "console01", "success": True})
        second = client.record("access.logout", {"person": "op01", "terminal": "console01"})
    assert [e["id"] for e in pending_events(outbox)] == [first, second]


def test_a_new_operator_signs_in_once_designated_in_the_ledger_and_calls_once_trained_and_pledged(
    world: World,
) -> None:
    from console_world import FAST

    from console.keystore import write_sealed
    from ledger import Signer

    assert world.loop is not None
    write_sealed(world.config.keys / "op97.sealed", Signer.generate("op97"), "op97-passphrase", **FAST)
    PASSPHRASES["op97"] = "op97-passphrase"
    manager, csrf = sign_in(world, "mgr01", "manager")
    assert (
        manager.post("/manager/keys", data={"csrf": csrf, "action": "register", "person": "op97"}).status_code
        == 303
    )
    world.stop_service()
    try:  # the designation waits in the manager's outbox
        fields = {"csrf": csrf, "person": "op97", "role": "operator", "action": "designate"}
        assert manager.post("/manager/staff", data=fields).status_code == 303
        client = http_client(world)
        OPEN.append(client)
        pre = csrf_of(client.get("/signin").text)
        data = {
            "csrf": pre,
            "person": "op97",
            "passphrase": "op97-passphrase",
            "role": "operator",
            "seat": "s02",
        }
        early = client.post("/signin", data=data)
        assert early.status_code == 401
        assert "オペレータとしての指定がまだ台帳に届いていません。" in early.text
    finally:
        world.start_service()
    world.wait_delivered()
    board = world.loop.board
    board.pause("s02", "offline")
    operator, op_csrf = sign_in(world, "op97", "operator", "s02")
    refused = operator.post("/op/ready", data={"csrf": op_csrf})
    assert refused.status_code == 409
    assert "研修の修了・誓約書の提出が記録されていないため、発信できません。" in refused.text
    assert board.get("s02")["state"] == "offline"  # nothing was dialled for op97
    for course in ("laws_manual", "privacy", "phone"):
        trained = {"csrf": csrf, "action": "trained", "person": "op97", "course": course}
        assert manager.post("/manager/staff", data=trained).status_code == 303
    pledged = {"csrf": csrf, "action": "pledged", "person": "op97", "sha256": "cd" * 32, "to": "city01"}
    assert manager.post("/manager/staff", data=pledged).status_code == 303
    assert operator.post("/op/ready", data={"csrf": op_csrf}).status_code == 303
    assert board.get("s02")["operator"] == "op97"
    operator.post("/op/pause", data={"csrf": op_csrf})
    board.pause("s02", "offline")


def test_a_sign_in_in_a_role_the_console_has_no_desk_for_is_refused_and_logged_as_failed(
    world: World,
) -> None:
    """A custodian works in `kansa custody`, not here: a person designated custodian who picks that
    role (a hand-made form) gets the sign-in page again, no session, and the device logs it."""
    manager, csrf = sign_in(world, "mgr01", "manager")
    fields = {"csrf": csrf, "person": "mgr01", "role": "custodian", "action": "designate"}
    assert manager.post("/manager/staff", data=fields).status_code == 303
    world.wait_delivered()
    before = written_ids(world)
    for role in ("custodian", "root"):
        client = http_client(world)
        OPEN.append(client)
        pre = csrf_of(client.get("/signin").text)
        data = {"csrf": pre, "person": "mgr01", "passphrase": PASSPHRASES["mgr01"], "role": role}
        answer = client.post("/signin", data=data)
        assert answer.status_code == 401, answer.text
        assert "この画面では使えない役割です。" in answer.text
        assert COOKIE_NAME not in answer.cookies
    world.wait_delivered()
    new = [e for e in world.ledger_events() if e["id"] not in before]
    assert [(e["type"], e["actor"], e["data"]["success"]) for e in new] == [
        ("access.login", "console01", False),
        ("access.login", "console01", False),
    ]


def test_the_managers_escalation_form_refuses_a_case_that_was_never_opened(world: World) -> None:
    manager, csrf = sign_in(world, "mgr01", "manager")
    before = written(world)
    for case in ("no-such-case", ""):
        answer = manager.post("/manager/escalate", data={"csrf": csrf, "case": case, "reason": "refusal"})
        assert answer.status_code == 422
        assert errors_of(answer.text)["escalate"] == "案件と理由を選んでください。"
    assert written(world) == before


def test_the_managers_staff_form_refuses_an_id_no_key_could_carry(world: World) -> None:
    """A person's id is their key's name: no space, no '+', at most 64 characters."""
    manager, csrf = sign_in(world, "mgr01", "manager")
    before = written(world)
    for person in ("x" * 65, "op 01", "op+01"):
        fields = {"csrf": csrf, "person": person, "role": "operator", "action": "designate"}
        answer = manager.post("/manager/staff", data=fields)
        assert answer.status_code == 422
        assert (
            errors_of(answer.text)["person"]
            == "職員IDは64文字以内で、空白や「+」を含めずに入力してください。"
        )
    assert written(world) == before


def test_after_a_restart_what_nobody_signed_in_left_in_the_outboxes_is_delivered(
    world: World, tmp_path: Any
) -> None:
    """An outbox's events are signed already: the console delivers them after a start even if
    their signer never signs in again (before, they waited for that person's next sign-in)."""
    from dataclasses import replace

    from console.app import Console
    from dialer_core.client import OperatorClient, pending_events

    config = replace(world.config, outboxes=tmp_path / "outboxes")
    config.outboxes.mkdir()
    world.stop_service()  # the previous run ended with the service down
    try:
        with OperatorClient(
            config.ledger_url,
            world.extra["people"]["op01"],
            config.outboxes / "op01.outbox",
            clock=world.clock,
        ) as client:
            left = client.record("access.logout", {"person": "op01", "terminal": "console01"})
    finally:
        world.start_service()
    fresh = Console(config, clock=world.clock)
    try:
        assert fresh.undelivered(lambda w: False, "op01") == 1  # a revocation of op01 waits for it
        assert fresh.deliver_once() == 0
        # the leftover's courier is closed once delivered; the others still deliver
        assert fresh.leftover == {}
        fresh.record(fresh.device, "access.login", {"person": "x", "terminal": "console01", "success": False})
        assert fresh.deliver_once() == 0
    finally:
        fresh.stop()
    assert pending_events(config.outboxes / "op01.outbox") == []
    assert [e["actor"] for e in world.ledger_events() if e["id"] == left] == ["op01"]


def test_a_second_operator_signed_in_at_a_taken_seat_sees_and_does_nothing_of_its_call(
    world: World, operator: tuple[httpx.Client, str]
) -> None:
    """The seat is typed at sign-in: someone signed in at the seat of an operator who is on a
    call must not see that call's resident (nor log a view of it), record its outcome, or
    pause or sign out that operator's seat."""
    client, csrf = operator
    call = answered_call(world, client, csrf, 5)
    manager, mcsrf = sign_in(world, "mgr01", "manager")
    fields = {"csrf": mcsrf, "person": "mgr01", "role": "operator", "action": "designate"}
    assert manager.post("/manager/staff", data=fields).status_code == 303
    world.wait_delivered()
    intruder, icsrf = sign_in(world, "mgr01", "operator", "s01")
    before = written(world)
    taken = "この席（s01）は別のオペレータが使用中です。"
    page = intruder.get("/op/call")
    assert page.status_code == 409 and taken in page.text and "伊藤 陽子" not in page.text
    assert intruder.get("/op/seat.json").status_code == 409
    outcome = {"csrf": icsrf, "call": call, "party": "other", "disposition": "number_unusable"}
    for path, data in (
        ("/op/outcome", outcome),
        ("/op/classify", {"csrf": icsrf, "kind": "voicemail_none"}),
        ("/op/inbound-done", {"csrf": icsrf, "call": call}),
        ("/op/pause", {"csrf": icsrf}),
        ("/op/ready", {"csrf": icsrf}),
    ):
        answer = intruder.post(path, data=data)
        if answer.status_code == 303:  # ready on a busy seat shows its call: refused there
            answer = intruder.get(answer.headers["location"])
        assert answer.status_code == 409 and taken in answer.text, path
    intruder.post("/signout", data={"csrf": icsrf})
    assert written(world) == before + 1  # mgr01's access.logout, nothing of the call
    assert world.loop is not None
    seat = world.loop.board.get("s01")
    assert seat["operator"] == "op01" and seat["state"] != "offline"
    assert 'id="resident"' in client.get("/op/call").text  # op01 goes on with the call


def test_a_persons_key_leaves_memory_with_their_last_session_and_what_they_signed_still_arrives(
    world: World,
) -> None:
    from dialer_core.client import pending_events

    """The sealed key is unlocked only for the session: after sign-out (or expiry) the console
    holds no signer of that person; the events they signed while the service was down are still
    delivered (by a courier that holds no key of theirs)."""
    import gc

    from ledger import Signer

    assert world.console is not None
    console = world.console

    def held() -> list[Signer]:
        return [o for o in gc.get_objects() if isinstance(o, Signer) and o.name == "op99"]

    manager, csrf = sign_in(world, "mgr01", "manager")
    if "op99" not in console.board.registered_keys().values():  # (an earlier test may have)
        register = {"csrf": csrf, "action": "register", "person": "op99"}
        assert manager.post("/manager/keys", data=register).status_code == 303
    fields = {"csrf": csrf, "person": "op99", "role": "operator", "action": "designate"}
    assert manager.post("/manager/staff", data=fields).status_code == 303
    world.wait_delivered()
    PASSPHRASES["op99"] = "op99-passphrase"
    world.stop_service()
    try:
        op99, op_csrf = sign_in(world, "op99", "operator", "s03")
        assert "op99" in console.writers and held()
        assert op99.post("/signout", data={"csrf": op_csrf}).status_code == 303
        gc.collect()
        assert "op99" not in console.writers
        assert held() == [], "op99's unsealed key is still in the console's memory"
        waiting = [e["type"] for e in pending_events(world.config.outboxes / "op99.outbox")]
        assert waiting == ["access.login", "access.logout"]
    finally:
        world.start_service()
    world.wait_delivered()
    arrived = [(e["type"], e["actor"]) for e in world.ledger_events() if e["actor"] == "op99"]
    assert arrived == [("access.login", "op99"), ("access.logout", "op99")]
    # expiry drops it too
    op99, _csrf = sign_in(world, "op99", "operator", "s03")
    world.clock.advance(hours=10)
    try:
        assert op99.get("/op").headers["location"] == "/signin"
    finally:
        world.clock.advance(hours=-10)
    gc.collect()
    assert "op99" not in console.writers and held() == []


def test_a_document_that_could_not_be_shown_is_refused_and_nothing_is_loaded(tmp_path: Any) -> None:
    """A version names the document's page (/documents/KIND/VERSION): no '/' in it; and a file
    larger than 1 MiB is no talk script an operator could read (its steps are a checklist on
    every call page)."""
    from console_world import t

    from console.documents import DocumentError, Documents

    docs = Documents(tmp_path / "documents")
    try:
        for version, raw, message in (
            ("2026/09", b"1. a\n", "版に「/」は使えません"),
            ("BIG", b"1. a\n" * 300_000, "ファイルが大きすぎます（1 MB まで）"),
        ):
            with pytest.raises(DocumentError, match=re.escape(message)):
                docs.load("talk_script", version, "s.md", raw, by="mgr01", now=t("2026-09-24 10:00"))
        assert docs.all() == []
    finally:
        docs.close()


def _stray_key(path: Any, holder: str) -> None:
    from console_world import FAST

    from console.keystore import write_sealed
    from ledger import Signer

    write_sealed(path, Signer.generate(holder), "stray-passphrase", **FAST)


@pytest.mark.parametrize(
    ("person", "make", "message"),
    [
        # not a sealed key at all: listed as unreadable; the desk used to answer 500
        (
            "op55",
            lambda path: path.write_text("not a sealed key\n", encoding="utf-8"),
            "その職員の鍵ファイルを読めません（kansa keys new --passphrase で作り直してください）。",
        ),
        # keys/op56.sealed holding a key of mgr01: registering it would give mgr01 a second key
        (
            "op56",
            lambda path: _stray_key(path, "mgr01"),
            "鍵ファイル op56.sealed は mgr01 の鍵です。ファイル名と持ち主が一致しません。",
        ),
    ],
)
def test_a_key_file_the_desk_cannot_register_is_refused_and_the_desk_stays_up(
    world: World, person: str, make: Callable[[Any], object], message: str
) -> None:
    path = world.config.keys / f"{person}.sealed"
    make(path)
    try:
        manager, csrf = sign_in(world, "mgr01", "manager")
        desk = manager.get("/manager")
        assert desk.status_code == 200
        if person == "op55":
            assert "読めない鍵ファイル：op55.sealed" in desk.text
        before = written(world)
        answer = manager.post("/manager/keys", data={"csrf": csrf, "action": "register", "person": person})
        assert answer.status_code == 422
        assert errors_of(answer.text)["keys"] == message
        assert written(world) == before
    finally:
        path.unlink()


def test_a_sealed_key_asking_for_more_than_argon2ids_sensitive_limits_is_refused_unopened(
    tmp_path: Any,
) -> None:
    """The Argon2id limits are read from the file: a file asking for 64 GiB (a stray or hostile
    file in the keys folder) is refused before deriving anything, not run at sign-in (where it
    would take the console's memory, or read as a wrong passphrase)."""
    import json as json_

    import nacl.pwhash

    from console.keystore import seal, unseal
    from ledger import Signer

    sealed = json_.loads(seal(Signer.generate("op57"), "op57-passphrase", opslimit=1, memlimit=8192))
    for field, value in (("memlimit", 64 * 2**30), ("opslimit", nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE + 1)):
        raw = json_.dumps({**sealed, field: value}).encode()
        with pytest.raises(SealedKeyError, match="limits"):
            unseal(raw, "op57-passphrase")


def test_the_managers_desk_shows_the_residents_callbacks_waiting_on_the_lines(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Callers queued on the center's lines (the loop's board, read over the seats API) are on
    the desk with their case (不明 when unidentified) and how long they have waited by the
    console's clock; gone once put through; an unreachable loop is said, and the desk renders."""
    from datetime import timedelta

    from processes import free_port

    from console.loop_client import LoopClient

    assert world.loop is not None and world.console is not None
    board = world.loop.board
    manager, _csrf = sign_in(world, "mgr01", "manager")

    def waiting_section() -> str:
        desk = manager.get("/manager").text
        start = desk.index("<h3>待機中の折り返し電話</h3>")
        return desk[start : desk.index("<h3>住民からの着信（本日）</h3>", start)]

    assert "ありません。" in waiting_section()
    case = world.cases[2]
    board.waiting_add("w1", case, world.clock() - timedelta(seconds=150), "1")
    board.waiting_add("w2", None, world.clock() - timedelta(seconds=42), "2")
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", waiting_section())
    assert rows == [(case, "2 分", "1"), ("不明", "42 秒", "2")]
    board.waiting_remove("w1")
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", waiting_section())
    assert rows == [("不明", "42 秒", "2")] and case not in waiting_section()
    board.waiting_remove("w2")
    assert "ありません。" in waiting_section()
    # the loop cannot be reached (nothing listens there): the section says so, the desk renders
    monkeypatch.setattr(world.console, "loop", LoopClient(f"http://127.0.0.1:{free_port()}", "x", timeout=2))
    desk = manager.get("/manager")
    assert desk.status_code == 200 and 'id="staff"' in desk.text
    assert "発信システムに接続できないため、待機中の折り返し電話を表示できません。" in desk.text
