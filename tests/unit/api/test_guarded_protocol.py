"""The API's HTTP protocol driven byte by byte, with a transport that records what is
written and an app whose answers the test releases: what a connection may make the server
hold, and in which order refusals go out (``dispatch.api.protocol``)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from dispatch.api.protocol import MAX_HEADER_BYTES, MAX_PIPELINED, GuardedProtocol, guarded_protocol


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closing = False
        self.reading = True

    def write(self, data: Any) -> None:
        self.out += data

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 8000)}.get(name)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


class App:
    """Reads each request's body whole, then answers 200 with the request's headers, once
    the test opens the gate (or at once if it is open)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.seen: list[dict[str, Any]] = []
        self.reads_body = True

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while self.reads_body:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.seen.append({"path": scope["path"], "headers": scope["headers"], "body": body})
        await self.gate.wait()
        text = repr(scope["headers"]).encode()
        headers = [(b"content-length", str(len(text)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": text})


class Connection:
    def __init__(self, protocol: GuardedProtocol, transport: Transport, app: App) -> None:
        self.protocol, self.transport, self.app = protocol, transport, app

    def send(self, data: bytes) -> None:
        self.protocol.data_received(data)

    async def settle(self) -> None:
        for _ in range(50):
            await asyncio.sleep(0)

    def statuses(self) -> list[bytes]:
        return re.findall(rb"HTTP/1\.1 (\d{3}) ", bytes(self.transport.out))


def connect(max_body_bytes: int = 4096, header_timeout_s: float = 10.0) -> Connection:
    """A connection to a new protocol, on the running loop."""
    app = App()
    config = uvicorn.Config(
        app, http=guarded_protocol(header_timeout_s, max_body_bytes), log_level="critical"
    )
    config.load()
    protocol = config.http_protocol_class(  # type: ignore[call-arg]
        config=config, server_state=ServerState(), app_state={},
        _loop=asyncio.get_running_loop(),
    )  # fmt: skip
    assert isinstance(protocol, GuardedProtocol)
    transport = Transport()
    protocol.connection_made(transport)
    return Connection(protocol, transport, app)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


GET = b"GET /q HTTP/1.1\r\nHost: t\r\n\r\n"


def chunked_post(path: str = "/p") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".encode()


def test_pipelined_requests_past_the_bound_are_not_queued_and_get_a_503_in_order() -> None:
    async def scenario() -> None:
        c = connect()
        c.send(GET * 1000)  # one read: one request running, the rest would all be queued
        assert len(c.protocol.pipeline) == MAX_PIPELINED
        assert c.statuses() == []  # nothing answered yet, so nothing refused yet either
        c.app.gate.set()
        await c.settle()
        assert c.statuses() == [b"200"] * (MAX_PIPELINED + 1) + [b"503"]
        assert b"too_many_pipelined" in c.transport.out and c.transport.closing

    run(scenario)


def test_the_bodies_held_for_queued_requests_are_bounded_and_the_request_not_run() -> None:
    async def scenario() -> None:
        c = connect(max_body_bytes=4096)
        c.send(GET + chunked_post())
        for _ in range(64):  # 64 KiB of a queued request's body, in 1 KiB chunks
            c.send(b"400\r\n" + b"x" * 1024 + b"\r\n")
        held = sum(len(cycle.body) for cycle, _ in c.protocol.pipeline)
        assert held <= 4096 and not c.protocol.pipeline  # refused and dropped from the queue
        c.app.gate.set()
        await c.settle()
        assert c.statuses() == [b"200", b"413"]
        assert [seen["path"] for seen in c.app.seen] == ["/q"]  # the POST never ran

    run(scenario)


def test_a_trailer_is_counted_but_never_added_to_the_requests_headers() -> None:
    async def scenario() -> None:
        c = connect()
        c.app.gate.set()
        c.send(chunked_post() + b"2\r\n{}\r\n0\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n")
        await c.settle()
        assert c.statuses() == [b"200"]
        (seen,) = c.app.seen
        assert seen["body"] == b"{}"
        assert all(name != b"x-forwarded-for" for name, _ in seen["headers"]), seen["headers"]

    run(scenario)


def test_a_trailer_sent_in_pieces_past_the_bound_gets_a_431() -> None:
    async def scenario() -> None:
        c = connect()
        c.send(chunked_post() + b"1\r\n{\r\n0\r\nX-T: ")
        for _ in range(64):  # one trailer value of 64 KiB, never ended
            c.send(b"a" * 1024)
            if c.transport.closing:
                break
        await c.settle()
        assert c.statuses() == [b"431"] and c.transport.closing
        assert c.app.seen == []  # the request never reached the app's handler

    run(scenario)


def test_headers_sent_in_pieces_past_the_bound_get_a_431() -> None:
    async def scenario() -> None:
        c = connect()
        c.send(b"GET /q HTTP/1.1\r\nX-T: ")
        sent = 0
        while not c.transport.closing and sent < 4 * MAX_HEADER_BYTES:
            c.send(b"a" * 512)
            sent += 512
        assert c.statuses() == [b"431"]
        assert sent <= MAX_HEADER_BYTES + 2048

    run(scenario)


def test_a_refusal_goes_out_after_the_answers_to_the_requests_before_it() -> None:
    async def scenario() -> None:
        c = connect()
        c.send(GET + GET + b"BAD\x01 / HTTP/1.1\r\n\r\n" + GET)
        assert c.statuses() == []
        c.app.gate.set()
        await c.settle()
        assert c.statuses() == [b"200", b"200", b"400"]
        assert len(c.app.seen) == 2 and c.transport.closing

    run(scenario)


def test_nothing_is_read_once_a_request_is_refused() -> None:
    async def scenario() -> None:
        c = connect()
        c.send(GET + chunked_post() + b"1;ext=")
        for _ in range(20):  # a chunk extension past the bound, the GET in flight: 431
            c.send(b"a" * 1024)
        c.send(b"\r\n{\r\n0\r\n\r\n" + GET * 3)  # the rest, and more: never parsed
        assert len(c.protocol.pipeline) == 0
        c.app.gate.set()
        await c.settle()
        assert c.statuses() == [b"200", b"431"]
        assert [seen["path"] for seen in c.app.seen] == ["/q"]

    run(scenario)


def test_a_pipelined_request_waits_in_order_and_is_served() -> None:
    async def scenario() -> None:
        c = connect()
        c.send(GET + chunked_post() + b"2\r\n{}\r\n0\r\n\r\n" + GET)
        c.app.gate.set()
        await c.settle()
        assert c.statuses() == [b"200", b"200", b"200"]
        assert [seen["path"] for seen in c.app.seen] == ["/q", "/p", "/q"]
        assert not c.transport.closing

    run(scenario)


def test_the_header_deadline_answers_408_only_with_nothing_in_flight() -> None:
    async def scenario() -> None:
        c = connect(header_timeout_s=0.05)
        c.send(GET)  # answered only when the gate opens: the deadline must not fire meanwhile
        await asyncio.sleep(0.15)
        assert c.statuses() == []
        c.send(b"GET /q HTTP/1.1\r\n")  # a second request's headers begun, never ended
        c.app.gate.set()
        await c.settle()
        await asyncio.sleep(0.15)
        assert c.statuses() == [b"200", b"408"] and c.transport.closing

    run(scenario)


def test_the_header_deadline_waits_for_a_body_still_arriving_after_its_answer() -> None:
    """An app may answer before a request's body has all arrived: the rest of that body is
    not the next request's headers, and no deadline of theirs runs yet."""

    async def scenario() -> None:
        c = connect(header_timeout_s=0.05)
        c.app.reads_body = False
        c.app.gate.set()
        c.send(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await c.settle()
        await asyncio.sleep(0.15)
        c.send(b"x" * 90)  # the rest of the body, late
        await c.settle()
        assert c.statuses() == [b"200"] and not c.transport.closing

    run(scenario)


UPGRADE = b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQ\r\n"


def test_an_upgrade_asked_with_a_body_is_refused_and_its_body_never_read_as_a_request() -> None:
    """llhttp skips the body of a request that asks to upgrade; read on, that body would be
    parsed as a request of its own (smuggled past a proxy that frames by its length)."""

    async def scenario() -> None:
        c = connect()
        c.app.gate.set()
        body = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
        head = f"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n".encode()
        c.send(head + UPGRADE + b"\r\n")
        c.send(body)  # in a later read
        await c.settle()
        assert c.statuses() == [b"400"] and c.transport.closing
        assert c.app.seen == []

    run(scenario)


def test_an_upgrade_asked_without_a_body_is_answered_as_http_then_the_connection_closed() -> None:
    async def scenario() -> None:
        c = connect()
        c.app.gate.set()
        c.send(b"GET /q HTTP/1.1\r\nHost: t\r\n" + UPGRADE + b"\r\n")
        c.send(GET)  # after the upgrade point: never parsed
        await c.settle()
        assert c.statuses() == [b"200"] and c.transport.closing
        assert [seen["path"] for seen in c.app.seen] == ["/q"]

    run(scenario)


def test_a_client_that_leaves_is_told_to_the_request_being_answered_not_only_the_queued() -> None:
    async def scenario() -> None:
        c = connect()
        c.send(GET + GET)  # the first runs (held at the gate), the second is queued
        await c.settle()
        running = c.protocol._running
        assert running is not None and c.protocol.pipeline
        c.protocol.connection_lost(None)
        assert running.disconnected

    run(scenario)
