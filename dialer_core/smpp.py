"""SMS over SMPP 3.4, the protocol of carrier connections, exactly once and honestly.

`SmppGateway` binds to the carrier's SMSC as a transceiver (python `smpplib`:
a synchronous client whose every PDU and sequence number we control, which an
exactly-once journal needs), sends each message as UCS-2 (`data_coding` 8),
split into concatenated segments with a UDH past 70 characters, keeps the
link alive with `enquire_link`, reconnects with exponential backoff, throttles
itself to a configured rate, and turns delivery receipts (`deliver_sm` with
`esm_class` 0x04) into `sms.result`.

Exactly once: our message id is chosen and written to a local journal (SQLite)
before the first `submit_sm`. `sms.sent` is written when the SMSC has
answered every segment, with its `smsc_id`. If the connection drops before an
answer, the message is recorded `confirmed: false` and is never resubmitted
(SMPP 3.4 has no idempotency); a later receipt for it (matched by a keyed hash
of the destination, as its SMSC id never reached us) confirms it. Messages of
a batch not yet journaled when the link drops are sent after reconnecting.

Before each send `SmsPass` asks the lookup adapter (carrier, mobile, possibly
reassigned: `lookup.py`) and writes `sms.lookup`, then `sms.blocked` or the
send. Events go to a `record(type, data, at)` sink; the loop signs them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import select
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm
import smpplib.smpp

from .lookup import Lookup

Record = Callable[[str, dict[str, Any], datetime], None]

UCS2 = smpplib.consts.SMPP_ENCODING_ISO10646  # data_coding 8
ESME_ROK = 0x00
ESME_RTHROTTLED = 0x58
ESME_RMSGQFUL = 0x14
RETRYABLE = {ESME_RTHROTTLED, ESME_RMSGQFUL}  # the SMSC said "not now": safe to submit again

RECEIPT_STAT = {
    "DELIVRD": "delivered",
    "EXPIRED": "expired",
    "UNDELIV": "failed",
    "REJECTD": "failed",
    "DELETED": "failed",
    "UNKNOWN": "failed",
}
MESSAGE_STATE = {2: "delivered", 3: "expired", 4: "failed", 5: "failed", 7: "failed", 8: "failed"}


class SmppError(Exception):
    """The SMSC could not be reached or bound."""


class LinkLost(Exception):
    """The connection dropped (or stopped answering) during an exchange."""


def segments_of(text: str) -> list[bytes]:
    """UCS-2 (big-endian) segments: one of up to 70 characters, else 67 each behind a 6-byte UDH."""
    parts, _, _ = smpplib.gsm.make_parts(text, encoding=UCS2)
    return list(parts)


def international(phone: str) -> str:
    """A Japanese number as SMPP wants it with TON international: 090-1111-2222 -> 819011112222."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if phone.strip().startswith("+"):
        return digits
    return "81" + digits[1:] if digits.startswith("0") else digits


def parse_receipt(short_message: bytes) -> tuple[str | None, str | None]:
    """(smsc id, status) from a receipt's text: `id:... sub:... stat:DELIVRD ...`."""
    text = short_message.decode("latin-1", "replace")
    fields: dict[str, str] = {}
    for token in text.replace("submit date:", "submit_date:").replace("done date:", "done_date:").split():
        key, sep, value = token.partition(":")
        if sep:
            fields[key.lower()] = value
    return fields.get("id"), RECEIPT_STAT.get(fields.get("stat", "").upper())


# -- the journal --------------------------------------------------------------------------------


class Journal:
    """What we sent, before we send it: the local record that makes sending exactly once.

    states: `journaled` (written, submission under way), `sent` (every segment
    answered), `unconfirmed` (an answer was lost: never resubmitted),
    `rejected` (the SMSC refused it for good). No clear number is kept: only a
    keyed hash of the destination, to match a receipt of an unconfirmed message.
    """

    def __init__(self, path: Path | str, key: bytes) -> None:
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.key = key
        self.lock = threading.Lock()
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS messages (
                message TEXT PRIMARY KEY, case_ref TEXT NOT NULL, number_ref TEXT NOT NULL,
                dest_hash TEXT NOT NULL, sender TEXT NOT NULL, carrier TEXT NOT NULL,
                chars INTEGER NOT NULL, segments INTEGER NOT NULL, state TEXT NOT NULL,
                smsc_ids TEXT NOT NULL DEFAULT '[]', result TEXT, created TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS receipts (
                smsc_id TEXT PRIMARY KEY, message TEXT, status TEXT NOT NULL);
            """
        )

    def dest_hash(self, phone: str) -> str:
        return hmac.new(self.key, international(phone).encode(), hashlib.sha256).hexdigest()

    def add(self, message: str, sms: Sms, carrier: str, segments: int, created: datetime) -> None:
        with self.lock:
            self.db.execute(
                "INSERT INTO messages (message, case_ref, number_ref, dest_hash, sender, carrier, chars,"
                " segments, state, created) VALUES (?,?,?,?,?,?,?,?, 'journaled', ?)",
                (
                    message,
                    sms.case,
                    sms.number,
                    self.dest_hash(sms.phone),
                    sms.sender_id,
                    carrier,
                    len(sms.text),
                    segments,
                    created.isoformat(),
                ),
            )

    def set_state(self, message: str, state: str, smsc_ids: list[str] | None = None) -> None:
        with self.lock:
            if smsc_ids is None:
                self.db.execute("UPDATE messages SET state=? WHERE message=?", (state, message))
            else:
                self.db.execute(
                    "UPDATE messages SET state=?, smsc_ids=? WHERE message=?",
                    (state, json.dumps(smsc_ids), message),
                )

    def row(self, message: str) -> dict[str, Any]:
        cur = self.db.execute("SELECT * FROM messages WHERE message=?", (message,))
        names = [d[0] for d in cur.description]
        found = cur.fetchone()
        if found is None:
            raise KeyError(message)
        return dict(zip(names, found, strict=True))

    def in_state(self, state: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT message FROM messages WHERE state=?", (state,))]

    def count(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT state, count(*) FROM messages GROUP BY state").fetchall())

    def message_of(self, smsc_id: str) -> str | None:
        with self.lock:
            for message, ids in self.db.execute(
                "SELECT message, smsc_ids FROM messages WHERE result IS NULL AND smsc_ids LIKE ?",
                (f'%"{smsc_id}"%',),
            ):
                if smsc_id in json.loads(ids):
                    return str(message)
        return None

    def unconfirmed_to(self, dest_hash: str) -> str | None:
        found = self.db.execute(
            "SELECT message FROM messages WHERE state='unconfirmed' AND result IS NULL AND dest_hash=?"
            " ORDER BY created LIMIT 1",
            (dest_hash,),
        ).fetchone()
        return None if found is None else str(found[0])

    def add_receipt(self, smsc_id: str, message: str | None, status: str) -> list[str]:
        """Stores a segment's receipt; the statuses of the message's receipts so far."""
        with self.lock:
            self.db.execute(
                "INSERT OR REPLACE INTO receipts (smsc_id, message, status) VALUES (?,?,?)",
                (smsc_id, message, status),
            )
            return [r[0] for r in self.db.execute("SELECT status FROM receipts WHERE message=?", (message,))]

    def orphan(self, smsc_id: str) -> str | None:
        """The status of a receipt kept without its message (it overtook the submission's answer)."""
        found = self.db.execute(
            "SELECT status FROM receipts WHERE smsc_id=? AND message IS NULL", (smsc_id,)
        ).fetchone()
        return None if found is None else str(found[0])

    def set_result(self, message: str, status: str) -> bool:
        """Records the message's result once; False if it already had one."""
        with self.lock:
            cur = self.db.execute(
                "UPDATE messages SET result=? WHERE message=? AND result IS NULL", (status, message)
            )
            return cur.rowcount == 1

    def close(self) -> None:
        self.db.close()


# -- the gateway --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sms:
    case: str
    number: str  # the number's reference in the ledger
    phone: str  # the clear number (decrypted just before; never logged or journaled)
    text: str
    sender_id: str  # the city's designated sender (sms.designated)


@dataclass(frozen=True)
class Outcome:
    message: str | None  # our id; None when the message was never journaled
    state: str  # sent, unconfirmed, rejected, pending (not attempted: the link stayed down)
    smsc_ids: tuple[str, ...] = ()
    status: int | None = None  # the SMSC's command_status of a rejection


@dataclass
class SmppConfig:
    """Settings of the carrier connection (docs/dialer.md, `[sms]`); the password comes from a file or env."""

    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = "kansa"
    password: str = ""
    system_type: str = ""
    rate: float = 10.0  # submit_sm per second at most (segments count)
    enquire_link_s: float = 30.0
    response_timeout_s: float = 10.0
    backoff_first_s: float = 0.5
    backoff_max_s: float = 30.0
    reconnect_for_s: float = 120.0  # give up on a batch after trying to reconnect this long
    registered_delivery: int = 1  # ask for a receipt of final delivery (success or failure)


@dataclass
class Throttle:
    """At most `rate` submissions per second, evenly spaced."""

    rate: float
    _next: float = 0.0

    def wait(self) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        if self._next > now:
            time.sleep(self._next - now)
            now = self._next
        self._next = max(now, self._next) + 1.0 / self.rate


@dataclass
class SmppGateway:
    config: SmppConfig
    journal: Journal
    record: Record
    clock: Callable[[], datetime]
    client: smpplib.client.Client | None = None
    throttle: Throttle = field(init=False)
    reconnects: int = 0
    _last_io: float = 0.0
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.throttle = Throttle(self.config.rate)

    # -- the link ------------------------------------------------------------------------------

    def connect(self) -> None:
        """Binds as a transceiver; retries with exponential backoff for `reconnect_for_s`."""
        cfg = self.config
        delay = cfg.backoff_first_s
        give_up = time.monotonic() + cfg.reconnect_for_s
        while True:
            try:
                self._bind()
                return
            except (OSError, smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError) as exc:
                self._drop()
                if time.monotonic() + delay > give_up:
                    raise SmppError(
                        f"SMSC {cfg.host}:{cfg.port} not bound: {exc or type(exc).__name__}"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, cfg.backoff_max_s)

    def _bind(self) -> None:
        cfg = self.config
        client = smpplib.client.Client(
            cfg.host, cfg.port, timeout=cfg.response_timeout_s, allow_unknown_opt_params=True
        )
        self.client = client
        client.connect()
        client._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # noqa: SLF001 (one PDU a write)
        response = client.bind_transceiver(
            system_id=cfg.system_id, password=cfg.password, system_type=cfg.system_type
        )
        if response is None or response.status != ESME_ROK:
            raise smpplib.exceptions.PDUError("bind_transceiver refused")
        self._last_io = time.monotonic()

    def _drop(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client._socket.close()  # noqa: SLF001 (smpplib has no abort)
            self.client._socket = None  # noqa: SLF001
            self.client.state = smpplib.consts.SMPP_CLIENT_STATE_CLOSED
            self.client = None

    def close(self) -> None:
        with self._lock:
            if self.client is not None:
                with contextlib.suppress(Exception):
                    self.client.unbind()
                with contextlib.suppress(Exception):
                    self.client.disconnect()
            self._drop()

    def _send(self, pdu: Any) -> None:
        if self.client is None:
            raise LinkLost("not connected")
        try:
            self.client.send_pdu(pdu)
        except (OSError, smpplib.exceptions.ConnectionError) as exc:
            raise LinkLost(str(exc)) from exc
        self._last_io = time.monotonic()

    def _read(self, timeout: float) -> Any | None:
        """One PDU, or None when nothing came within `timeout`."""
        if self.client is None:
            raise LinkLost("not connected")
        sock = self.client._socket  # noqa: SLF001
        try:
            ready, _, _ = select.select([sock], [], [], max(0.0, timeout))
        except (OSError, ValueError) as exc:
            raise LinkLost(str(exc)) from exc
        if not ready:
            return None
        try:
            pdu = self.client.read_pdu()
        except (TimeoutError, OSError, smpplib.exceptions.ConnectionError) as exc:
            raise LinkLost(str(exc) or type(exc).__name__) from exc
        self._last_io = time.monotonic()
        return pdu

    def _handle(self, pdu: Any) -> None:
        """A PDU that is not the answer we wait for: receipts, enquire_link, unbind."""
        if pdu.command == "deliver_sm":
            self._deliver(pdu)
        elif pdu.command == "enquire_link":
            self._send(self._response("enquire_link_resp", pdu))
        elif pdu.command == "unbind":
            with contextlib.suppress(LinkLost):
                self._send(self._response("unbind_resp", pdu))
            raise LinkLost("the SMSC unbound")

    def _response(self, command: str, request: Any) -> Any:
        """A response PDU carrying the request's sequence number (smpplib's make_pdu ignores a
        `sequence` argument: the attribute must be set after)."""
        pdu = smpplib.smpp.make_pdu(command, client=self.client)
        pdu.sequence = request.sequence
        return pdu

    def _await(self, sequence: int, command: str) -> Any:
        """Reads until the answer to `sequence`, handling receipts meanwhile."""
        deadline = time.monotonic() + self.config.response_timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkLost(f"no {command} within {self.config.response_timeout_s} s")
            pdu = self._read(left)
            if pdu is None:
                continue
            if pdu.command == command and pdu.sequence == sequence:
                return pdu
            if pdu.command == "generic_nack" and pdu.sequence == sequence:
                return pdu
            self._handle(pdu)

    def keepalive(self) -> None:
        """An enquire_link when the link has been quiet for `enquire_link_s`."""
        if self.client is not None and time.monotonic() - self._last_io >= self.config.enquire_link_s:
            pdu = smpplib.smpp.make_pdu("enquire_link", client=self.client)
            self._send(pdu)
            self._await(pdu.sequence, "enquire_link_resp")

    def pump(self, seconds: float) -> None:
        """Handles what the SMSC sends (receipts, enquire_link) for `seconds`, reconnecting if needed."""
        end = time.monotonic() + seconds
        with self._lock:
            while (left := end - time.monotonic()) > 0:
                try:
                    if self.client is None:
                        self.connect()
                        self.reconnects += 1
                    self.keepalive()
                    pdu = self._read(min(left, 0.5, self.config.enquire_link_s / 2))
                    if pdu is not None:
                        self._handle(pdu)
                except LinkLost:
                    self._drop()

    # -- sending -------------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """After a crash: journaled messages without an answer become unconfirmed (never resubmitted)."""
        lost = self.journal.in_state("journaled")
        for message in lost:
            self._unconfirmed(message)
        return lost

    def send(self, sms: Sms, carrier: str) -> Outcome:
        """Journals and submits one message; reconnects (with backoff) before it if the link is down."""
        with self._lock:
            if self.client is None:
                try:
                    self.connect()
                except SmppError:
                    return Outcome(None, "pending")
                self.reconnects += 1
            parts = segments_of(sms.text)
            message = str(uuid.uuid4())
            self.journal.add(message, sms, carrier, len(parts), self.clock())
            smsc_ids: list[str] = []
            for part in parts:
                try:
                    answer = self._submit(sms, part, len(parts) > 1)
                except LinkLost:
                    self._drop()
                    self.journal.set_state(message, "unconfirmed", smsc_ids)
                    self._unconfirmed(message)
                    return Outcome(message, "unconfirmed", tuple(smsc_ids))
                if answer.status != ESME_ROK:
                    self.journal.set_state(message, "rejected", smsc_ids)
                    self.record(
                        "sms.blocked",
                        {
                            "case": sms.case,
                            "number": sms.number,
                            "reason": "other",
                            "smpp_status": int(answer.status),
                            "message": message,
                        },
                        self.clock(),
                    )
                    return Outcome(message, "rejected", tuple(smsc_ids), int(answer.status))
                smsc_ids.append(_text(answer.message_id))
                self.journal.set_state(
                    message, "journaled", smsc_ids
                )  # a receipt may come before the next answer
            self.journal.set_state(message, "sent", smsc_ids)
            row = self.journal.row(message)
            self.record(
                "sms.sent",
                {
                    "case": sms.case,
                    "number": sms.number,
                    "message": message,
                    "sender_id": sms.sender_id,
                    "chars": row["chars"],
                    "segments": row["segments"],
                    "carrier": carrier,
                    "smsc_id": smsc_ids[0],
                    "smsc_ids": smsc_ids,
                },
                self.clock(),
            )
            for smsc_id in smsc_ids:  # receipts that came before their submit_sm_resp
                early = self.journal.orphan(smsc_id)
                if early is not None:
                    self._receipt(message, smsc_id, early)
            return Outcome(message, "sent", tuple(smsc_ids))

    def _submit(self, sms: Sms, part: bytes, concatenated: bool) -> Any:
        """One segment; the SMSC's "not now" (throttled, queue full) waits and tries again."""
        delay = self.config.backoff_first_s
        while True:
            self.throttle.wait()
            pdu = smpplib.smpp.make_pdu(
                "submit_sm",
                client=self.client,
                source_addr_ton=smpplib.consts.SMPP_TON_NATNL,
                source_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                source_addr="".join(ch for ch in sms.sender_id if ch.isdigit()),
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                destination_addr=international(sms.phone),
                short_message=part,
                data_coding=UCS2,
                esm_class=smpplib.consts.SMPP_GSMFEAT_UDHI if concatenated else 0,
                registered_delivery=self.config.registered_delivery,
            )
            self._send(pdu)
            answer = self._await(pdu.sequence, "submit_sm_resp")
            if answer.status in RETRYABLE:
                time.sleep(delay)
                delay = min(delay * 2, self.config.backoff_max_s)
                continue
            return answer

    def _unconfirmed(self, message: str) -> None:
        self.journal.set_state(message, "unconfirmed")
        row = self.journal.row(message)
        ids = json.loads(row["smsc_ids"])
        data: dict[str, Any] = {
            "case": row["case_ref"],
            "number": row["number_ref"],
            "message": message,
            "sender_id": row["sender"],
            "chars": row["chars"],
            "segments": row["segments"],
            "carrier": row["carrier"],
            "confirmed": False,
        }
        if ids:
            data["smsc_id"] = ids[0]
        self.record("sms.sent", data, self.clock())

    def send_all(self, items: Iterable[tuple[Sms, str]]) -> list[Outcome]:
        return [self.send(sms, carrier) for sms, carrier in items]

    # -- receipts ------------------------------------------------------------------------------

    def _deliver(self, pdu: Any) -> None:
        with contextlib.suppress(LinkLost):
            self._send(self._response("deliver_sm_resp", pdu))
        if not int(pdu.esm_class or 0) & 0x04:  # a mobile-originated message, not a receipt
            return
        smsc_id, status = parse_receipt(pdu.short_message or b"")
        tlv_id = getattr(pdu, "receipted_message_id", None)
        if tlv_id:
            smsc_id = _text(tlv_id)
        state = getattr(pdu, "message_state", None)
        if state is not None and int(state) in MESSAGE_STATE:
            status = MESSAGE_STATE[int(state)]
        if smsc_id is None or status is None:
            return
        message = self.journal.message_of(smsc_id)
        if message is not None:
            self._receipt(message, smsc_id, status)
            return
        # perhaps the receipt of an unconfirmed message: match its destination
        message = self.journal.unconfirmed_to(self.journal.dest_hash(_text(pdu.source_addr)))
        if message is not None:
            self._result(message, [status])
        else:  # or one that overtook its submit_sm_resp: kept until that id is known
            self.journal.add_receipt(smsc_id, None, status)

    def _receipt(self, message: str, smsc_id: str, status: str) -> None:
        statuses = self.journal.add_receipt(smsc_id, message, status)
        if len(statuses) >= self.journal.row(message)["segments"]:  # every segment's receipt is in
            self._result(message, statuses)

    def _result(self, message: str, statuses: list[str]) -> None:
        overall = "failed" if "failed" in statuses else "expired" if "expired" in statuses else "delivered"
        if self.journal.set_result(message, overall):
            carrier = self.journal.row(message)["carrier"]
            self.record(
                "sms.result", {"message": message, "status": overall, "carrier": carrier}, self.clock()
            )


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.rstrip(b"\0").decode("ascii", "replace")
    return str(value)


# -- the SMS pass: lookup, block or send ------------------------------------------------------------


@dataclass
class SmsPass:
    """The city's designated list, sent: lookup (sms.lookup), then sms.blocked or the send."""

    gateway: SmppGateway
    lookup: Lookup
    record: Record
    clock: Callable[[], datetime]

    def run(self, items: Iterable[tuple[Sms, bool]]) -> list[Outcome]:
        """`items`: each message and whether its case is stopped."""
        outcomes = []
        for sms, stopped in items:
            if stopped:
                self._blocked(sms, "stopped")
                outcomes.append(Outcome(None, "blocked"))
                continue
            answer = self.lookup.lookup(sms.phone)
            self.record(
                "sms.lookup",
                {
                    "case": sms.case,
                    "number": sms.number,
                    "carrier": answer.carrier,
                    "reassigned": answer.reassigned,
                },
                self.clock(),
            )
            reason = answer.block_reason()
            if reason is not None:
                self._blocked(sms, reason)
                outcomes.append(Outcome(None, "blocked"))
                continue
            outcomes.append(self.gateway.send(sms, answer.carrier))
        return outcomes

    def _blocked(self, sms: Sms, reason: str) -> None:
        self.record("sms.blocked", {"case": sms.case, "number": sms.number, "reason": reason}, self.clock())
