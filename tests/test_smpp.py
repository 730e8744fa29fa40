"""SMS over real SMPP 3.4 on loopback: our gateway (smpplib) against smpp34's server as the SMSC.

Binding, UCS-2 and concatenation, throttling, each receipt kind, a link cut
mid-batch (nothing sent twice, none missing, the lost answer recorded
unconfirmed and later confirmed by its receipt), enquire_link, recovery after
a crash, and the lookup over HTTP that blocks a send.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from contract.calendar import TOKYO
from dialer_core.lookup import HttpLookup, LookupServer, SimulatedLookup
from dialer_core.smpp import Journal, SmppConfig, SmppGateway, Sms, SmsPass, international, segments_of
from tests.smsc import LoopbackSmsc, Relay

SENDER = "0258-39-2000"
LONG_JA = (
    "長岡市役所国保年金課からのお知らせです。国民健康保険料の納期限が過ぎています。"
    "お手数ですが、同封の納付書で早めにお支払いください。ご不明な点は平日の午前9時から"
    "午後5時まで、0258-39-2000 までお電話ください。"
    "行き違いでお支払い済みの場合は、本メッセージと納付書の送付を何卒ご容赦ください。"
)


class Events:
    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, kind: str, data: dict[str, Any], at: datetime) -> None:
        assert at.tzinfo is not None
        self.items.append((kind, data))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [d for k, d in self.items if k == kind]


def now() -> datetime:
    return datetime.now(TOKYO)


@pytest.fixture
def smsc() -> Iterator[LoopbackSmsc]:
    server = LoopbackSmsc().start()
    yield server
    server.stop()


def gateway(tmp_path: Path, port: int, events: Events, **config: Any) -> SmppGateway:
    cfg = SmppConfig(port=port, system_id="kansa", password="secret", **config)
    return SmppGateway(cfg, Journal(tmp_path / "sms-journal.db", b"k" * 32), events, now)


def sms(i: int, text: str = "長岡市からのお知らせです。") -> Sms:
    return Sms(f"c{i:03d}", "1", f"090-0000-{i:04d}", text, SENDER)


def wait_for(predicate: Any, gw: SmppGateway, seconds: float = 5) -> None:
    end = time.monotonic() + seconds
    while not predicate() and time.monotonic() < end:
        gw.pump(0.1)
    assert predicate()


def test_bind_send_ucs2_and_receipt(tmp_path: Path, smsc: LoopbackSmsc) -> None:
    events = Events()
    gw = gateway(tmp_path, smsc.port, events)
    outcome = gw.send(sms(1), "docomo")
    assert outcome.state == "sent" and smsc.binds == 1
    [sub] = smsc.submitted
    assert (sub.source_addr, sub.destination_addr, sub.data_coding, sub.esm_class) == (
        "0258392000",
        "819000000001",
        8,
        0,
    )
    assert smsc.texts() == {"819000000001": ["長岡市からのお知らせです。"]}
    [sent] = events.of("sms.sent")
    assert sent == {
        "case": "c001",
        "number": "1",
        "message": outcome.message,
        "sender_id": SENDER,
        "chars": 13,
        "segments": 1,
        "carrier": "docomo",
        "smsc_id": sub.smsc_id,
        "smsc_ids": [sub.smsc_id],
    }
    wait_for(lambda: events.of("sms.result"), gw)
    assert events.of("sms.result") == [
        {"message": outcome.message, "status": "delivered", "carrier": "docomo"}
    ]
    wait_for(lambda: smsc.receipts_sent == 1, gw)  # our deliver_sm_resp answered the SMSC's sequence
    assert smsc.receipts_failed == 0
    gw.close()


def test_long_japanese_message_is_split_and_reassembled(tmp_path: Path, smsc: LoopbackSmsc) -> None:
    assert len(LONG_JA) > 134
    events = Events()
    gw = gateway(tmp_path, smsc.port, events)
    outcome = gw.send(sms(2, LONG_JA), "au")
    segments = len(segments_of(LONG_JA))
    assert segments == -(-len(LONG_JA) // 67)  # 67 UCS-2 characters per segment behind the UDH
    assert len(smsc.submitted) == segments and all(s.esm_class & 0x40 for s in smsc.submitted)
    assert all(len(s.short_message) <= 140 for s in smsc.submitted)
    assert smsc.texts() == {"819000000002": [LONG_JA]}
    [sent] = events.of("sms.sent")
    assert (sent["chars"], sent["segments"]) == (len(LONG_JA), segments)
    assert sent["smsc_ids"] == [s.smsc_id for s in smsc.submitted] == list(outcome.smsc_ids)
    wait_for(lambda: events.of("sms.result"), gw)  # one result, after every segment's receipt
    assert events.of("sms.result") == [{"message": outcome.message, "status": "delivered", "carrier": "au"}]
    gw.close()


def test_exactly_seventy_characters_is_one_segment() -> None:
    assert len(segments_of("あ" * 70)) == 1
    assert len(segments_of("あ" * 71)) == 2


def test_throttled_to_the_configured_rate(tmp_path: Path, smsc: LoopbackSmsc) -> None:
    smsc.max_rate = 60  # the SMSC refuses what comes closer than 15 ms
    events = Events()
    gw = gateway(tmp_path, smsc.port, events, rate=20)
    started = time.monotonic()
    outcomes = gw.send_all((sms(i), "docomo") for i in range(10))
    assert [o.state for o in outcomes] == ["sent"] * 10
    assert smsc.throttled == 0
    assert time.monotonic() - started >= 9 / 20  # ten submissions at 20 a second: 0.45 s at least
    assert smsc.submitted[-1].at - smsc.submitted[0].at >= 9 / 20 * 0.9
    gw.close()


def test_the_smscs_throttling_answer_is_waited_out_not_duplicated(tmp_path: Path, smsc: LoopbackSmsc) -> None:
    smsc.max_rate = 10
    events = Events()
    gw = gateway(tmp_path, smsc.port, events, rate=0, backoff_first_s=0.05)  # we do not throttle ourselves
    outcomes = gw.send_all((sms(i), "docomo") for i in range(5))
    assert [o.state for o in outcomes] == ["sent"] * 5
    assert smsc.throttled > 0  # ESME_RTHROTTLED is an answer: the segment was not taken, so it is sent again
    assert sorted(s.destination_addr for s in smsc.submitted) == [
        international(sms(i).phone) for i in range(5)
    ]
    gw.close()


@pytest.mark.parametrize("kind", ["delivered", "failed", "expired"])
def test_each_receipt_kind(tmp_path: Path, smsc: LoopbackSmsc, kind: str) -> None:
    smsc.receipts["819000000003"] = kind
    events = Events()
    gw = gateway(tmp_path, smsc.port, events)
    outcome = gw.send(sms(3), "softbank")
    wait_for(lambda: events.of("sms.result"), gw)
    assert events.of("sms.result") == [{"message": outcome.message, "status": kind, "carrier": "softbank"}]
    gw.close()


def test_link_cut_mid_batch_nothing_twice_none_missing(tmp_path: Path, smsc: LoopbackSmsc) -> None:
    relay = Relay(smsc.port)
    relay.cut_after_submits = 4  # the 4th submit_sm reaches the SMSC; its answer is lost with the link
    events = Events()
    gw = gateway(tmp_path, relay.port, events, backoff_first_s=0.05)
    try:
        batch = [sms(i) for i in range(10)]
        outcomes = gw.send_all((m, "docomo") for m in batch)
        # connected, then reconnected once after the cut; on a loaded machine a bind may be retried
        # inside one reconnection (seen once: 3 binds at the SMSC), which is not a second link
        assert relay.cuts == 1 and gw.reconnects == 2 and smsc.binds >= 2
        assert [o.state for o in outcomes] == ["sent"] * 3 + ["unconfirmed"] + ["sent"] * 6
        # the SMSC got each message exactly once: the unconfirmed one was not resubmitted
        submitted = sorted(s.destination_addr for s in smsc.submitted)
        assert submitted == sorted(international(m.phone) for m in batch)
        sent = events.of("sms.sent")
        assert sorted(d["case"] for d in sent) == [
            m.case for m in batch
        ]  # one sms.sent per message, none missing
        assert len({d["message"] for d in sent}) == 10
        [lost] = [d for d in sent if d.get("confirmed") is False]
        assert lost["case"] == "c003" and "smsc_id" not in lost
        assert gw.journal.count() == {"sent": 9, "unconfirmed": 1}
        # the SMSC did deliver it; its receipt comes over the new link and confirms it
        wait_for(lambda: len(events.of("sms.result")) == 10, gw)
        results = {d["message"]: d["status"] for d in events.of("sms.result")}
        assert results[lost["message"]] == "delivered"
    finally:  # a failed assertion leaves no socket behind (it warned in the next test)
        gw.close()
        relay.close()


def test_enquire_link_keeps_the_link(tmp_path: Path, smsc: LoopbackSmsc) -> None:
    relay = Relay(smsc.port)
    events = Events()
    gw = gateway(tmp_path, relay.port, events, enquire_link_s=0.2)
    gw.connect()
    gw.pump(1.0)
    assert relay.commands.count(0x00000015) >= 3  # enquire_link, answered (else the link would drop)
    assert relay.cuts == 0 and smsc.binds == 1
    gw.close()
    relay.close()


def test_a_crash_between_journal_and_answer_is_unconfirmed_never_resent(
    tmp_path: Path, smsc: LoopbackSmsc
) -> None:
    events = Events()
    gw = gateway(tmp_path, smsc.port, events)
    gw.journal.add("m-crashed", sms(4), "au", 1, now())  # journaled, then the process died
    assert gw.recover() == ["m-crashed"]
    assert events.of("sms.sent") == [
        {
            "case": "c004",
            "number": "1",
            "message": "m-crashed",
            "sender_id": SENDER,
            "chars": 13,
            "segments": 1,
            "carrier": "au",
            "confirmed": False,
        }
    ]
    assert smsc.submitted == [] and gw.recover() == []


def test_lookup_over_http_blocks_before_sending(tmp_path: Path, smsc: LoopbackSmsc) -> None:
    events = Events()
    gw = gateway(tmp_path, smsc.port, events)
    simulated = SimulatedLookup(reassigned=frozenset({"090-0000-0006"}))
    with LookupServer(simulated, token="t0ken") as server:
        lookup = HttpLookup(server.url, token="t0ken")
        items = [
            (sms(5), False),
            (sms(6), False),  # possibly reassigned
            (Sms("c007", "2", "0258-11-2222", "お知らせ", SENDER), False),  # a landline
            (sms(8), True),  # the city stopped this case
        ]
        outcomes = SmsPass(gw, lookup, events, now).run(items)
        assert server.requests == 3  # no lookup for a stopped case
    assert [o.state for o in outcomes] == ["sent", "blocked", "blocked", "blocked"]
    assert [(d["case"], d["reason"]) for d in events.of("sms.blocked")] == [
        ("c006", "possibly_reassigned"),
        ("c007", "not_mobile"),
        ("c008", "stopped"),
    ]
    assert [d["case"] for d in events.of("sms.lookup")] == ["c005", "c006", "c007"]
    assert [k for k, _ in events.items][:2] == ["sms.lookup", "sms.sent"]  # the lookup comes first
    assert [s.destination_addr for s in smsc.submitted] == ["819000000005"]
    gw.close()


def test_unreachable_smsc_leaves_the_message_pending_not_journaled(tmp_path: Path) -> None:
    events = Events()
    gw = gateway(tmp_path, 9, events, reconnect_for_s=0.3, backoff_first_s=0.05)
    assert gw.send(sms(9), "docomo").state == "pending"
    assert events.items == [] and gw.journal.count() == {}
