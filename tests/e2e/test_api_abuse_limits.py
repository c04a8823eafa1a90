"""What every limit of the API does, against a real uvicorn server on 127.0.0.1.

Rate limits per client address (registrations) and per caller (everything authenticated),
X-Forwarded-For believed only from a trusted proxy, a body limit that holds for every
framing, deadlines for slow headers and bodies, metric labels from a closed set, and a
liveness probe that never waits behind writes. docs/SECURITY.md is the promise these pin.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.served_api import HOME, WAIT_S, answer, head, serving


@pytest.fixture
def serve(tmp_path: Path) -> Callable[..., Any]:
    return lambda **limits: serving(tmp_path, **limits)


# -- rate limits ---------------------------------------------------------------------------
def test_registrations_over_the_per_address_limit_are_429_with_retry_after(serve: Any) -> None:
    with serve(rate_limit_registrations_per_min=3) as server, server.client() as c:
        assert [c.post("/drivers", json=HOME).status_code for _ in range(3)] == [201] * 3
        before = head(server)

        refused = c.post("/drivers", json=HOME)

        assert refused.status_code == 429
        assert refused.json()["error"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert head(server) == before, "a refused registration reaches no log"


def test_a_registration_limit_counts_invalid_attempts_too(serve: Any) -> None:
    with serve(rate_limit_registrations_per_min=2) as server, server.client() as c:
        assert [c.post("/riders", json={"name": ""}).status_code for _ in range(2)] == [422] * 2
        assert c.post("/riders", json={"name": "Ray"}).status_code == 429


def test_x_forwarded_for_names_the_client_only_behind_a_trusted_proxy(serve: Any) -> None:
    limits = {"rate_limit_registrations_per_min": 1, "trusted_proxies": "127.0.0.1"}
    with serve(**limits) as server, server.client() as c:
        for client in ("203.0.113.5", "203.0.113.6"):
            xff = {"X-Forwarded-For": f"198.51.100.9, {client}"}
            assert c.post("/riders", json={"name": "Ray"}, headers=xff).status_code == 201
        again = {"X-Forwarded-For": "203.0.113.5"}
        assert c.post("/riders", json={"name": "Ray"}, headers=again).status_code == 429


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(serve: Any) -> None:
    with serve(rate_limit_registrations_per_min=1) as server, server.client() as c:
        first = c.post("/riders", json={"name": "Ray"}, headers={"X-Forwarded-For": "192.0.2.1"})
        assert first.status_code == 201
        spoofed = {"X-Forwarded-For": "192.0.2.2"}
        assert c.post("/riders", json={"name": "Ray"}, headers=spoofed).status_code == 429


def test_authenticated_requests_over_the_per_caller_limit_are_429(serve: Any) -> None:
    with serve(rate_limit_requests_per_s=3) as server, server.client() as c:
        a, b = (c.post("/riders", json={"name": n}).json() for n in ("Ann", "Bob"))
        auth_a = {"Authorization": f"Bearer {a['token']['access_token']}"}
        auth_b = {"Authorization": f"Bearer {b['token']['access_token']}"}
        nearby = {"lat": 37.7749, "lng": -122.4194}
        answers = [c.get("/drivers/nearby", headers=auth_a, params=nearby) for _ in range(4)]
        statuses = [r.status_code for r in answers]
        assert statuses.count(429) >= 1 and statuses[0] == 200, statuses
        refused = next(r for r in answers if r.status_code == 429)
        assert int(refused.headers["Retry-After"]) >= 1
        assert c.get("/drivers/nearby", headers=auth_b, params=nearby).status_code == 200
        time.sleep(1.1)  # the one-second window moved on
        assert c.get("/drivers/nearby", headers=auth_a, params=nearby).status_code == 200


def test_a_limit_of_zero_turns_it_off(serve: Any) -> None:
    with serve(rate_limit_registrations_per_min=0) as server, server.client() as c:
        assert {c.post("/riders", json={"name": "Ray"}).status_code for _ in range(25)} == {201}


# -- bodies and headers ------------------------------------------------------------------------
def test_a_request_with_both_length_and_chunked_framing_is_refused_unread(serve: Any) -> None:
    """The defect: Content-Length: 10 with Transfer-Encoding: chunked had its whole body
    read and parsed."""
    with serve(max_body_bytes=4096) as server:
        before = head(server)
        chunk = b'{"name": "' + b"x" * 60_000 + b'"}'
        sock = server.raw(
            b"POST /riders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(chunk):x}\r\n".encode()
            + chunk
            + b"\r\n0\r\n\r\n"
        )
        reply = answer(sock)
        assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
        assert b"Content-Length" in reply and b"Transfer-Encoding" in reply, reply[:300]
        assert head(server) == before


def test_a_chunked_body_over_the_limit_is_413(serve: Any) -> None:
    with serve(max_body_bytes=4096) as server:
        chunk = b"x" * 8192
        sock = server.raw(
            b"POST /riders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            + f"{len(chunk):x}\r\n".encode()
            + chunk
            + b"\r\n0\r\n\r\n"
        )
        assert answer(sock).startswith(b"HTTP/1.1 413")


def test_a_declared_length_over_the_limit_is_413_before_the_body_arrives(serve: Any) -> None:
    with serve(max_body_bytes=4096) as server:
        sock = server.raw(
            b"POST /riders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5000000\r\n\r\n"
        )
        assert answer(sock).startswith(b"HTTP/1.1 413")


def test_headers_that_arrive_too_slowly_get_a_408_and_the_connection_closed(serve: Any) -> None:
    with serve(header_timeout_s=0.5) as server:
        sock = server.raw(b"POST /riders HTTP/1.1\r\nHost: t\r\n")  # and nothing more
        reply = answer(sock)  # returns only when the server closes
        assert reply.startswith(b"HTTP/1.1 408"), reply


def test_a_body_that_arrives_too_slowly_gets_a_408(serve: Any) -> None:
    with serve(body_timeout_s=0.5) as server:
        before = head(server)
        sock = server.raw(
            b"POST /riders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"name": '
        )
        reply = answer(sock)
        assert reply.startswith(b"HTTP/1.1 408"), reply
        assert b"request_timeout" in reply
        assert head(server) == before


def test_headers_over_16_kib_get_a_431_and_the_connection_closed(serve: Any) -> None:
    with serve() as server:
        big = b"X-Filler: " + b"a" * (16 * 1024) + b"\r\n"
        sock = server.raw(b"GET /livez HTTP/1.1\r\nHost: t\r\n" + big + b"\r\n")
        reply = answer(sock)  # returns only when the server closes
        assert reply.startswith(b"HTTP/1.1 431"), reply[:200]
        assert b"headers_too_large" in reply


def test_a_header_sent_in_pieces_past_16_kib_gets_a_431_before_it_ends(serve: Any) -> None:
    """The parser holds an unfinished header value itself: the bound counts what arrives,
    not only the headers it has finished."""
    with serve(header_timeout_s=5) as server:
        sock = server.raw(b"GET /livez HTTP/1.1\r\nHost: t\r\nX-Filler: ")
        for _ in range(40):  # 40 KiB of one value, never ended
            try:
                sock.sendall(b"a" * 1024)
            except OSError:
                break  # the server has answered and closed
            time.sleep(0.01)
        started = time.monotonic()
        reply = answer(sock)
        assert reply.startswith(b"HTTP/1.1 431"), reply[:200]
        assert time.monotonic() - started < 4  # not the header deadline's 408


def test_headers_under_the_bound_are_served_on_a_kept_alive_connection(serve: Any) -> None:
    with serve() as server:
        near = b"X-Filler: " + b"a" * (15 * 1024) + b"\r\n"
        one = b"GET /livez HTTP/1.1\r\nHost: t\r\n" + near + b"\r\n"
        sock = server.raw(
            one + one + b"GET /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        reply = answer(sock)
        assert reply.count(b"HTTP/1.1 200") == 3, reply[:300]


def test_a_pipelined_request_is_not_cut_off_by_the_header_deadline(serve: Any) -> None:
    """The second request's headers arrived with the first's: the deadline must not be
    armed again once the first is answered, or it fires in the middle of the second (here a
    stream held open for longer than the deadline)."""
    with serve(header_timeout_s=0.5) as server, server.client() as c:
        driver = c.post("/drivers", json=HOME).json()
        token, path = driver["token"]["access_token"], f"/drivers/{driver['driver_id']}/offers"
        sock = server.raw(
            b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n"
            + f"GET {path}?max_s=1.5 HTTP/1.1\r\nHost: t\r\n".encode()
            + f"Connection: close\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        )
        reply = answer(sock)
        assert reply.count(b"HTTP/1.1 200") == 2, reply[:300]
        assert b"request_timeout" not in reply, reply[-300:]


def test_a_kept_alive_connection_gets_the_same_header_deadline(serve: Any) -> None:
    with serve(header_timeout_s=0.5) as server:
        sock = server.raw(b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\nGET /livez HTTP/1.1\r\n")
        reply = answer(sock)
        assert reply.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 408" in reply, reply


# -- metrics and liveness ----------------------------------------------------------------------
def test_unknown_methods_and_paths_create_no_new_metric_series(serve: Any) -> None:
    with serve() as server, server.client() as c:
        c.get("/no-such-path")
        c.request("BREW", "/no-such-path")
        c.get("/metrics")
        before = _series(c.get("/metrics").text)
        for i in range(200):
            c.request(f"M{i}X", f"/random/{i}")
            c.get(f"/no/such/{i}")

        after = _series(c.get("/metrics").text)

        assert after == before, sorted(after - before)[:5]


def _series(text: str) -> set[str]:
    return {
        line.split(" ")[0]
        for line in text.splitlines()
        if line.startswith("dispatch_api_request_duration_seconds_count")
    }


def test_livez_answers_while_every_worker_thread_waits_for_a_write(serve: Any) -> None:
    with serve(rate_limit_requests_per_s=0) as server, server.client() as c:
        rider = c.post("/riders", json={"name": "Ray"}).json()
        auth = {"Authorization": f"Bearer {rider['token']['access_token']}"}
        release, sent = threading.Event(), threading.Semaphore(0)
        real_send = server.runtime.send

        def stuck_send(*args: Any) -> Any:
            sent.release()
            release.wait(WAIT_S * 3)
            return real_send(*args)

        server.runtime.send = stuck_send  # type: ignore[method-assign]
        writers = [
            threading.Thread(
                target=lambda: httpx.post(
                    f"{server.url}/rides/00000000-0000-4000-8000-000000000000/cancel",
                    headers=auth, timeout=WAIT_S * 4,
                )
            )
            for _ in range(60)
        ]  # fmt: skip
        for w in writers:
            w.start()
        try:
            for _ in range(40):  # anyio's default thread pool: every thread is taken
                assert sent.acquire(timeout=WAIT_S), "the writes did not reach the engine"
            live = c.get("/livez")
            assert live.status_code == 200
            assert not release.is_set(), "liveness answered while every write still waited"
        finally:
            release.set()
            for w in writers:
                w.join(WAIT_S * 4)


# -- the access log ------------------------------------------------------------------------


def test_the_access_log_keeps_paths_without_their_query_strings(tmp_path: Path) -> None:
    """A rider asks for drivers near their position in a query string; uvicorn's access log
    names the request without it."""
    lines: list[str] = []

    class Kept(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    access = logging.getLogger("uvicorn.access")
    kept = Kept()
    with serving(tmp_path, log_level="info") as server, server.client() as http:
        access.addHandler(kept)
        try:
            r = http.get("/drivers/nearby", params={"lat": 37.7731415, "lng": -122.4172653})
        finally:
            access.removeHandler(kept)
    assert r.status_code == 401  # no token: refused, and logged all the same
    logged = [line for line in lines if "/drivers/nearby" in line]
    assert logged, lines
    assert all("37.77" not in line and "lat=" not in line and "?" not in line for line in logged)
