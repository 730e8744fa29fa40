"""A test SMSC on loopback: `smpp34`'s server (an independent Rust SMPP 3.4 implementation),
in front of it a TCP relay that can cut the link, as a network does.

It records every submit_sm, answers with its own message ids, reassembles
concatenated UCS-2 messages, sends delivery receipts (deliver_sm, esm_class
0x04, text and TLVs) with the status scripted per destination, and refuses
submissions faster than its rate with ESME_RTHROTTLED.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

import smpp34

SUBMIT_SM = 0x00000004
STAT = {"delivered": ("DELIVRD", 2), "failed": ("UNDELIV", 5), "expired": ("EXPIRED", 3)}


@dataclass
class Submitted:
    smsc_id: str
    source_addr: str
    destination_addr: str
    esm_class: int
    data_coding: int
    short_message: bytes
    at: float


@dataclass
class LoopbackSmsc:
    system_id: str = "kansa"
    password: str = "secret"
    receipts: dict[str, str] = field(default_factory=dict)  # destination -> delivered/failed/expired/none
    receipt_delay_s: float = 0.05
    max_rate: float = 0.0  # > 0: submissions closer than 1/max_rate are refused (throttled)
    submitted: list[Submitted] = field(default_factory=list)
    throttled: int = 0
    binds: int = 0
    receipts_sent: int = 0
    receipts_failed: int = 0
    port: int = 0

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._sessions: dict[str, smpp34.Esme] = {}
        self._n = 0
        self._last = 0.0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> LoopbackSmsc:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._thread.start()
        self._ready.wait(5)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self.server = smpp34.Server(host="127.0.0.1", port=self.port, system_id="TESTSMSC")
        await self.server.start()
        self._ready.set()
        while True:
            ev = await self.server.next()
            if isinstance(ev, smpp34.Esme):
                self.binds += 1
                self._sessions[ev.session_id] = ev
            elif isinstance(ev, smpp34.Unbound):
                self._sessions.pop(ev.session_id, None)
            elif isinstance(ev, smpp34.SubmitSmEvent):
                now = time.monotonic()
                if self.max_rate and now - self._last < 1 / self.max_rate * 0.9:
                    self.throttled += 1
                    ev.reject(smpp34.ESME_RTHROTTLED)
                    continue
                self._last = now
                self._n += 1
                smsc_id = f"SMSC{self._n:06d}"
                self.submitted.append(
                    Submitted(
                        smsc_id,
                        ev.source_addr,
                        ev.destination_addr,
                        ev.esm_class,
                        ev.data_coding,
                        bytes(ev.short_message),
                        now,
                    )
                )
                ev.accept(message_id=smsc_id)
                status = self.receipts.get(ev.destination_addr, "delivered")
                if status != "none" and ev.registered_delivery & 1:
                    self._loop.create_task(
                        self._receipt(smsc_id, ev.destination_addr, ev.source_addr, status)
                    )

    async def _receipt(self, smsc_id: str, resident: str, sender: str, status: str) -> None:
        await asyncio.sleep(self.receipt_delay_s)
        stat, state = STAT[status]
        text = (
            f"id:{smsc_id} sub:001 dlvrd:{'001' if status == 'delivered' else '000'} submit date:2609201000 "
            f"done date:2609201001 stat:{stat} err:000 text:"
        )
        for _ in range(100):  # to a bound session, the newest first; after a cut, the next one
            for session in reversed(list(self._sessions.values())):
                try:
                    await asyncio.wait_for(
                        session.deliver_sm(
                            sender,
                            text.encode(),
                            source_addr=resident,
                            esm_class=0x04,
                            tlvs=[
                                smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, smsc_id.encode() + b"\0"),
                                smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes([state])),
                            ],
                        ),
                        1.0,
                    )
                    self.receipts_sent += 1
                    return
                except Exception:  # a session the cut killed: forget it
                    self.receipts_failed += 1
                    self._sessions = {k: v for k, v in self._sessions.items() if v is not session}
            await asyncio.sleep(0.05)

    def texts(self) -> dict[str, list[str]]:
        """Each destination's messages, concatenated segments reassembled from their UDH."""
        out: dict[str, list[str]] = {}
        partial: dict[tuple[str, int], dict[int, bytes]] = {}
        for sub in self.submitted:
            body = sub.short_message
            if sub.esm_class & 0x40:  # UDHI: 05 00 03 ref total seq
                udh_len = body[0]
                _, _, _, ref, total, seq = body[: udh_len + 1]
                parts = partial.setdefault((sub.destination_addr, ref), {})
                parts[seq] = body[udh_len + 1 :]
                if len(parts) == total:
                    joined = b"".join(parts[i] for i in range(1, total + 1))
                    out.setdefault(sub.destination_addr, []).append(joined.decode("utf-16-be"))
            else:
                out.setdefault(sub.destination_addr, []).append(body.decode("utf-16-be"))
        return out

    def stop(self) -> None:
        async def stop() -> None:
            await self.server.stop()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(3)


class Relay:
    """A TCP relay to the SMSC that can cut the link right after the Nth submit_sm went through."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.cut_after_submits: int | None = None
        self.submits = 0
        self.cuts = 0
        self.commands: list[int] = []  # every PDU's command_id from the client, in order
        self._holding = False
        self._links: list[tuple[socket.socket, socket.socket]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._links.append((client, upstream))
            threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket) -> None:
        buf = b""
        try:
            while data := client.recv(65536):
                buf += data
                while len(buf) >= 8:
                    length, command = struct.unpack(">LL", buf[:8])
                    if len(buf) < length:
                        break
                    pdu, buf = buf[:length], buf[length:]
                    self.commands.append(command)
                    if command == SUBMIT_SM:
                        self.submits += 1
                        if self.cut_after_submits is not None and self.submits == self.cut_after_submits:
                            self._holding = True  # the SMSC gets it; its answer is lost with the link
                            upstream.sendall(pdu)
                            time.sleep(0.2)
                            self.cut()
                            self._holding = False
                            return
                    upstream.sendall(pdu)
        except OSError:
            pass
        self._close(client, upstream)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self._holding:
                    dst.sendall(data)
        except OSError:
            pass
        self._close(src, dst)

    @staticmethod
    def _close(*socks: socket.socket) -> None:
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def cut(self) -> None:
        self.cuts += 1
        for a, b in self._links:
            self._close(a, b)
        self._links = []

    def close(self) -> None:
        self.cut()
        self.listener.close()
