"""The app client's retries: what a well-behaved app does, and what it never does (apply a
command twice). Served by httpx's in-process transport: the rules, not the network, are
under test here (tests/e2e/test_simulate_over_api.py runs them against a real server)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from dispatch.adapters.http import client as http_client
from dispatch.adapters.http.client import ApiClient, Reply
from dispatch.simulator.apps.stats import Endpoints

Handler = Callable[[httpx.Request], httpx.Response]


def run(
    handler: Handler, key: str | None = None, repeatable: bool = False
) -> tuple[Reply, Endpoints]:
    recorder = Endpoints()

    async def go() -> Reply:
        api = ApiClient("http://127.0.0.1:1", recorder, transport=httpx.MockTransport(handler))
        try:
            now = time.monotonic()
            return await api.call("POST", "E", "/x", planned_at=now, key=key, repeatable=repeatable)
        finally:
            await api.close()

    return asyncio.run(go()), recorder


def answers(*responses: httpx.Response) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler, seen


def test_a_429_is_retried_after_its_retry_after_with_the_same_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(http_client.asyncio, "sleep", sleep)
    reason = "more than 1 requests a second; retry in 3 s"
    limited = httpx.Response(
        429, headers={"Retry-After": "3"}, json={"error": "rate_limited", "reason": reason}
    )
    handler, seen = answers(limited, httpx.Response(200, json={"command_id": "c"}))
    reply, recorder = run(handler, key="k-1")
    assert reply.ok and reply.attempts == 2
    assert [r.headers["Idempotency-Key"] for r in seen] == ["k-1", "k-1"]
    assert 3.0 <= slept[0] <= 3.5
    endpoint = recorder.by_name["E"]
    assert endpoint.attempts == Counter({429: 1, 200: 1}) and endpoint.calls == 1
    assert endpoint.limits == Counter({"more than 1 requests a second": 1})


def test_a_command_without_a_key_is_not_retried_after_a_5xx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_client.asyncio, "sleep", _no_sleep)
    handler, seen = answers(httpx.Response(503, json={"error": "unavailable"}))
    reply, _ = run(handler)
    assert reply.status == 503 and len(seen) == 1  # it may have been applied: not sent again


def test_a_command_with_a_key_is_retried_after_a_5xx_until_an_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_client.asyncio, "sleep", _no_sleep)
    handler, seen = answers(httpx.Response(503), httpx.Response(502),
                            httpx.Response(200, json={"command_id": "c"}))  # fmt: skip
    reply, _ = run(handler, key="k-2")
    assert reply.ok and len(seen) == 3
    assert {r.headers["Idempotency-Key"] for r in seen} == {"k-2"}


def test_a_pending_command_is_asked_again_and_a_202_of_pings_is_final(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_client.asyncio, "sleep", _no_sleep)
    pending = httpx.Response(202, json={"command_id": "c", "status": "pending"})
    handler, seen = answers(pending, httpx.Response(200, json={"command_id": "c"}))
    reply, _ = run(handler, key="k-3")
    assert reply.ok and len(seen) == 2
    handler, seen = answers(httpx.Response(202, json={"accepted": 4}))
    reply, _ = run(handler, repeatable=True)
    assert reply.ok and not reply.pending and len(seen) == 1


def test_retries_stop_at_the_attempt_limit_and_the_call_is_recorded_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_client.asyncio, "sleep", _no_sleep)
    handler, seen = answers(httpx.Response(503))
    reply, recorder = run(handler, key="k-4")
    assert reply.status == 503 and len(seen) == reply.attempts == 8
    assert recorder.by_name["E"].calls == 1 and recorder.by_name["E"].attempts[503] == 8


def test_latency_is_measured_from_the_planned_time_not_the_send() -> None:
    recorder = Endpoints()

    async def go() -> None:
        handler, _ = answers(httpx.Response(200, json={}))
        api = ApiClient("http://127.0.0.1:1", recorder, transport=httpx.MockTransport(handler))
        try:
            await api.call("GET", "E", "/x", planned_at=time.monotonic() - 2.0)
        finally:
            await api.close()

    asyncio.run(go())
    endpoint = recorder.by_name["E"]
    assert endpoint.latencies[0] >= 2.0 and endpoint.send_lags[0] >= 2.0


async def _no_sleep(_seconds: float) -> None:
    return None
