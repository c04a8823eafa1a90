"""The app client's retries: what a well-behaved app does, and what it never does (apply a
command twice). Against a small real server on loopback (aiohttp's), answering from a
script; tests/e2e/test_simulate_over_api.py runs the client against `dispatch serve`."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from dispatch.adapters.http import client as http_client
from dispatch.adapters.http.client import ApiClient, Reply
from dispatch.simulator.apps.stats import Endpoints

Answer = tuple[int, dict[str, Any], dict[str, str]]  # status, JSON body, headers
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def served(method: str, handler: Handler) -> AsyncIterator[str]:
    """An aiohttp server on a free loopback port answering ``/x``: its base URL."""
    app = web.Application()
    app.router.add_route(method, "/x", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def run(
    answers: list[Answer],
    key: str | None = None,
    repeatable: bool = False,
    late_s: float = 0.0,
    rounds: int = 1,
) -> tuple[Reply, Endpoints, list[dict[str, str]]]:
    """One POST through ``ApiClient`` to a server that gives ``answers`` in turn (the last
    again and again); the reply, the recorder and the headers of each request it got."""
    recorder = Endpoints()
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        status, body, headers = answers[min(len(seen), len(answers)) - 1]
        return web.json_response(body, status=status, headers=headers)

    async def go() -> Reply:
        async with served("POST", handle) as base:
            api = ApiClient(base, recorder)
            try:
                planned = time.monotonic() - late_s
                return await api.call(
                    "POST", "E", "/x", planned_at=planned, key=key, repeatable=repeatable,
                    rounds=rounds,
                )  # fmt: skip
            finally:
                await api.close()

    return asyncio.run(go()), recorder, seen


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's pauses, recorded instead of waited."""
    pauses: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(http_client.asyncio, "sleep", sleep)
    return pauses


def test_a_429_is_retried_after_its_retry_after_with_the_same_key(slept: list[float]) -> None:
    reason = "more than 1 requests a second; retry in 3 s"
    limited = (429, {"error": "rate_limited", "reason": reason}, {"Retry-After": "3"})
    reply, recorder, seen = run([limited, (200, {"command_id": "c"}, {})], key="k-1")
    assert reply.ok and reply.attempts == 2
    assert [h["Idempotency-Key"] for h in seen] == ["k-1", "k-1"]
    assert 3.0 <= slept[0] <= 3.5
    endpoint = recorder.by_name["E"]
    assert endpoint.attempts == Counter({429: 1, 200: 1}) and endpoint.calls == 1
    assert endpoint.limits == Counter({"more than 1 requests a second": 1})


def test_a_command_without_a_key_is_not_retried_after_a_5xx(slept: list[float]) -> None:
    reply, _, seen = run([(503, {"error": "unavailable"}, {})])
    assert reply.status == 503 and len(seen) == 1  # it may have been applied: not sent again


def test_a_command_with_a_key_is_retried_after_a_5xx_until_an_answer(slept: list[float]) -> None:
    answers = [(503, {}, {}), (502, {}, {}), (200, {"command_id": "c"}, {})]
    reply, _, seen = run(answers, key="k-2")
    assert reply.ok and len(seen) == 3
    assert {h["Idempotency-Key"] for h in seen} == {"k-2"}


def test_a_pending_command_is_asked_again_and_a_202_of_pings_is_final(slept: list[float]) -> None:
    pending = (202, {"command_id": "c", "status": "pending"}, {})
    reply, _, seen = run([pending, (200, {"command_id": "c"}, {})], key="k-3")
    assert reply.ok and len(seen) == 2
    reply, _, seen = run([(202, {"accepted": 4}, {})], repeatable=True)
    assert reply.ok and not reply.pending and len(seen) == 1


def test_retries_stop_at_the_attempt_limit_and_the_call_is_recorded_once(
    slept: list[float],
) -> None:
    reply, recorder, seen = run([(503, {}, {})], key="k-4")
    assert reply.status == 503 and len(seen) == reply.attempts == 8
    assert recorder.by_name["E"].calls == 1 and recorder.by_name["E"].attempts[503] == 8


def test_an_outcome_still_unknown_is_asked_again_in_rounds_and_recorded_once(
    slept: list[float],
) -> None:
    answers = [(503, {}, {})] * 9 + [(200, {"command_id": "c"}, {})]  # 8 a round
    reply, recorder, seen = run(answers, key="k-5", rounds=3)
    assert reply.ok and reply.attempts == len(seen) == 10
    assert {h["Idempotency-Key"] for h in seen} == {"k-5"}
    assert http_client.ROUND_PAUSE_S in slept  # the pause between the rounds
    endpoint = recorder.by_name["E"]
    assert endpoint.calls == 1 and endpoint.finals == Counter({200: 1})
    assert endpoint.attempts == Counter({503: 9, 200: 1})


def test_rounds_end_at_their_bound_and_a_refusal_ends_them_at_once(slept: list[float]) -> None:
    reply, recorder, seen = run([(503, {}, {})], key="k-6", rounds=2)
    assert reply.status == 503 and len(seen) == 16 and recorder.by_name["E"].calls == 1
    reply, _, seen = run([(409, {"error": "conflict"}, {})], key="k-7", rounds=3)
    assert reply.status == 409 and len(seen) == 1
    reply, _, seen = run([(503, {}, {})], rounds=3)  # no key: never asked again
    assert len(seen) == 1


def test_a_command_still_pending_after_its_rounds_is_recorded_as_pending(
    slept: list[float],
) -> None:
    pending = (202, {"command_id": "c", "status": "pending"}, {})
    reply, recorder, _ = run([pending], key="k-8", rounds=2)
    assert reply.pending
    assert recorder.by_name["E"].as_dict(0.0, 0.0)["pending_at_end"] == 1
    _, recorder, _ = run([(202, {"accepted": 4}, {})], repeatable=True)  # pings: settled
    assert recorder.by_name["E"].as_dict(0.0, 0.0)["pending_at_end"] == 0


def test_latency_is_measured_from_the_planned_time_not_the_send() -> None:
    _, recorder, _ = run([(200, {}, {})], late_s=2.0)
    endpoint = recorder.by_name["E"]
    assert endpoint.latency_s[0] >= 2.0 and endpoint.send_lag_s[0] >= 2.0


def test_a_call_to_a_server_that_is_not_there_is_a_transport_error_not_an_exception(
    slept: list[float],
) -> None:
    recorder = Endpoints()

    async def go() -> Reply:
        api = ApiClient("http://127.0.0.1:9", recorder)
        try:
            return await api.call("POST", "E", "/x", planned_at=time.monotonic(), key="k-5")
        finally:
            await api.close()

    reply = asyncio.run(go())
    assert reply.status == 0 and reply.attempts == 8
    assert recorder.by_name["E"].attempts == Counter({0: 8})


def two_calls_through_a_pool_of_one(server_s: float, **client: Any) -> Endpoints:
    """Two calls at once through a pool of one connection to a server that answers after
    ``server_s``; what the client recorded."""
    recorder = Endpoints()

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(server_s)
        return web.json_response({})

    async def go() -> None:
        async with served("GET", slow) as base:
            api = ApiClient(base, recorder, connections=1, **client)
            try:
                now = time.monotonic()
                await asyncio.gather(*(api.call("GET", "E", "/x", planned_at=now) for _ in "ab"))
            finally:
                await api.close()

    asyncio.run(go())
    return recorder


def test_a_call_that_waited_for_a_pooled_connection_records_the_wait_apart() -> None:
    """The server takes 0.3 s: the second call waits for the first's connection, and that
    wait is recorded as the client's own (pool wait), inside its latency."""
    endpoint = two_calls_through_a_pool_of_one(0.3).by_name["E"]
    waits = sorted(endpoint.pool_wait_s)
    assert waits[0] < 0.05 and 0.2 < waits[1] < 1.0
    assert max(endpoint.latency_s) >= waits[1] + 0.25  # its wait, then its own 0.3 s
    assert endpoint.as_dict(0.0, 0.0)["pool_wait_ms"]["max"] == round(waits[1] * 1000.0, 2)


def test_a_call_that_timed_out_waiting_for_a_pooled_connection_records_that_wait() -> None:
    """The server takes 1.5 s, calls give up after 0.6 s: the second spent its whole time
    in the pool's queue, and that is its pool wait, not the server's."""
    recorder = two_calls_through_a_pool_of_one(1.5, timeout_s=0.6, max_attempts=1)
    waits = sorted(recorder.by_name["E"].pool_wait_s)
    assert waits[0] < 0.05 and 0.5 < waits[1] < 1.0
