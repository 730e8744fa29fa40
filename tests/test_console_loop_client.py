"""The console's client of the seats API (console/loop_client.py) over real HTTP: against the
loop's own server (dialer_core.seats.SeatsApi), and against a server that closes idle
connections."""

from __future__ import annotations

import asyncio
import threading

import pytest

from console.loop_client import LoopClient, LoopError
from dialer_core.seats import SeatBoard, SeatsApi


def test_the_seats_api_over_one_kept_alive_connection() -> None:
    board = SeatBoard(["s01", "s02"])
    connections: list[object] = []
    with SeatsApi(board, "tok") as api:
        accept = api.httpd.process_request

        def counted(request: object, address: object) -> None:
            connections.append(address)
            accept(request, address)  # type: ignore[arg-type]

        api.httpd.process_request = counted  # type: ignore[method-assign,assignment]

        async def walk() -> None:
            client = LoopClient(api.url, "tok")
            try:
                seat = await client.seat("s01")
                poll = asyncio.create_task(client.seat("s01", wait_version=seat.version))
                await asyncio.sleep(0.2)
                assert not poll.done()  # a long poll: nothing changed yet
                ready = await client.ready("s01", "op01")  # a second connection, beside the poll
                assert ready.state == "ready"
                assert (await asyncio.wait_for(poll, 5)).version == ready.version
                for _ in range(20):
                    assert (await client.seat("s02")).state == "offline"
                with pytest.raises(LoopError) as refused:
                    await client.seat("s99")
                assert (refused.value.status, refused.value.code) == (404, "no_such_seat")
            finally:
                await client.close()

        asyncio.run(walk())
    assert len(connections) == 2  # the poll's and one more, each kept alive


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    """A server that answers once per connection and then closes it (as one whose idle
    connections time out does): the next request goes over a fresh connection."""
    seen: list[int] = []
    ready, done = threading.Event(), threading.Event()
    where: list[int] = []

    async def serve() -> None:
        async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(1)
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            body = b'{"seat": "s01", "state": "offline", "version": 3, "call": null}'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            writer.close()  # no "Connection: close": the client finds out when it reuses it

        server = await asyncio.start_server(one, "127.0.0.1", 0)
        where.append(server.sockets[0].getsockname()[1])
        ready.set()
        async with server:
            while not done.is_set():
                await asyncio.sleep(0.05)

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    ready.wait(5)

    async def twice() -> list[int]:
        client = LoopClient(f"http://127.0.0.1:{where[0]}", "tok")
        try:
            first = await client.seat("s01")
            await asyncio.sleep(0.2)  # the server has closed it by now
            second = await client.seat("s01")
            return [first.version, second.version]
        finally:
            await client.close()

    try:
        assert asyncio.run(twice()) == [3, 3]
        assert len(seen) == 2
    finally:
        done.set()
        thread.join(5)


def test_an_unreachable_loop_is_a_loop_error() -> None:
    async def once() -> None:
        client = LoopClient("http://127.0.0.1:9", "tok")
        with pytest.raises(LoopError) as unreachable:
            await client.seat("s01")
        assert unreachable.value.status == 0
        await client.close()

    asyncio.run(once())


def test_a_wrong_address_is_a_loop_error_on_each_request() -> None:
    """Not an error at the console's start: the desks work without the loop."""

    async def once() -> None:
        client = LoopClient("127.0.0.1:8780", "tok")  # no http://
        with pytest.raises(LoopError) as wrong:
            await client.seat("s01")
        assert wrong.value.status == 0 and "http://host:port" in wrong.value.detail
        await client.close()

    asyncio.run(once())
