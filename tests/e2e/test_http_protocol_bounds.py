"""The API's HTTP protocol against a real uvicorn server on 127.0.0.1: pipelined requests,
trailers and refusals as a client on a socket meets them (``dispatch.api.protocol``;
docs/SECURITY.md, "Limits")."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dispatch.api.protocol import MAX_PIPELINED
from tests.e2e.served_api import HOME, answer, head, serving


@pytest.fixture
def serve(tmp_path: Path) -> Callable[..., Any]:
    return lambda **limits: serving(tmp_path, **limits)


def statuses(reply: bytes) -> list[bytes]:
    return re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)


def chunked_rider(trailer: bytes = b"") -> bytes:
    body = b'{"name": "Ray"}'
    return (
        b"POST /riders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n" + trailer + b"\r\n"
    )  # fmt: skip


def refusals(server: Any, code: str) -> float:
    sock = server.raw(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    text = answer(sock).decode()
    found = re.search(rf'dispatch_api_protocol_refusals_total{{code="{code}"}} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def test_a_trailer_does_not_name_the_client_behind_a_trusted_proxy(serve: Any) -> None:
    """A proxy adds its X-Forwarded-For as a header; one sent as a trailer is the client's
    own and must not choose the address the limits count."""
    limits = {"rate_limit_registrations_per_min": 1, "trusted_proxies": "127.0.0.1"}
    with serve(**limits) as server:
        replies = []
        for client in ("198.51.100.1", "198.51.100.2"):
            trailer = f"X-Forwarded-For: {client}\r\nConnection: close\r\n".encode()
            replies.append(answer(server.raw(chunked_rider(trailer))))
        assert [statuses(reply) for reply in replies] == [[b"201"], [b"429"]], replies


def test_requests_pipelined_past_the_bound_get_a_503_after_the_others_answers(
    serve: Any,
) -> None:
    with serve() as server:
        before = refusals(server, "503")
        sock = server.raw(b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n" * 200)
        got = statuses(answer(sock))
        assert got == [b"200"] * (MAX_PIPELINED + 1) + [b"503"], got
        assert refusals(server, "503") == before + 1


def test_a_malformed_request_is_answered_after_the_write_before_it(serve: Any) -> None:
    """The write before it ran: its 201 must reach the client, not a 400 in its place."""
    with serve() as server:
        before = head(server)
        sock = server.raw(chunked_rider() + b"BAD\x01 / HTTP/1.1\r\n\r\n")
        reply = answer(sock)
        assert statuses(reply) == [b"201", b"400"], reply[:400]
        assert b"bad_request" in reply
        assert head(server) != before  # the rider was registered, and answered as such


def test_a_queued_body_over_the_limit_is_refused_while_the_request_ahead_runs(
    serve: Any,
) -> None:
    with serve(max_body_bytes=4096) as server, server.client() as c:
        driver = c.post("/drivers", json=HOME)
        token = driver.json()["token"]["access_token"]
        path = f"/drivers/{driver.json()['driver_id']}/offers?max_s=3"
        before = head(server)
        sock = server.raw(
            f"GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
            + b"POST /riders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        try:
            for _ in range(64):  # 64 KiB of the queued request's body while the stream runs
                sock.sendall(b"400\r\n" + b"x" * 1024 + b"\r\n")
        except OSError:
            pass  # refused and closed already
        reply = answer(sock)
        assert statuses(reply) == [b"200", b"413"], reply[-400:]
        assert b"queued on this connection" in reply
        assert head(server) == before


def test_headers_past_the_bound_are_counted_as_refusals(serve: Any) -> None:
    with serve() as server:
        before = refusals(server, "431")
        big = b"X-Filler: " + b"a" * (17 * 1024) + b"\r\n"
        reply = answer(server.raw(b"GET /livez HTTP/1.1\r\nHost: t\r\n" + big + b"\r\n"))
        assert statuses(reply) == [b"431"]
        assert refusals(server, "431") == before + 1


def test_a_read_that_ends_nothing_keeps_the_connection_open_for_the_rest(serve: Any) -> None:
    """Bytes in pieces under the bound: the request is served whole."""
    with serve() as server:
        sock = server.raw(b"GET /livez HTTP/1.1\r\nHost: t\r\nX-Filler: ")
        for _ in range(14):
            sock.sendall(b"a" * 1024)
        sock.sendall(b"\r\nConnection: close\r\n\r\n")
        assert statuses(answer(sock)) == [b"200"]
