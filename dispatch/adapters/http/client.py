"""One client of a deployment's public API, shared by many simulated apps.

Every call is measured from the time its app *planned* to send it, not from when the
request left: a client that fell behind (its event loop busy) would otherwise hide the
wait, the coordinated omission of load tools that time from the send. A call retries as a
well-behaved app does: on 429 after the ``Retry-After`` the server gave, on a 5xx or a lost
connection after an exponential backoff with full jitter, and on a command's 202 (no
outcome in time: ``pending``; pings are accepted with a 202 too) after a short pause;
always with the same ``Idempotency-Key``, so a retry never applies a command twice. Each
attempt is recorded apart (its status), the call once (its latency, and how long its
attempts waited for a connection of the client's own pool: a client short of connections
is not mistaken for a slow server).
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import time
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import httpx

RETRY_STATUSES = frozenset({202, 429, 500, 502, 503, 504})
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.2, 10.0
STREAM_SILENCE_S = 45.0  # three of the server's 15 s heartbeats
PENDING_PAUSE_S = 0.25  # before asking again for the outcome of a 202
TRANSPORT_ERROR = 0  # the status recorded for an attempt that got no answer
ROUND_PAUSE_S = 2.0  # before another round of attempts for an unknown outcome (``rounds``)


class Recorder(Protocol):
    """Where a client's measurements go (``dispatch.simulator.apps.stats.Endpoints``)."""

    def attempt(self, endpoint: str, status: int, reason: str | None) -> None: ...

    def call(
        self,
        endpoint: str,
        status: int,
        latency_s: float,
        send_lag_s: float,
        pending: bool = False,
        pool_wait_s: float = 0.0,
    ) -> None:
        """A call's last answer; ``pending``: a 202 "pending" (its outcome never learnt);
        ``pool_wait_s``: how long its attempts waited for a connection of the pool."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A call's last answer: its status (0: no answer, retries given up), body and tries."""

    status: int
    body: dict[str, Any]
    attempts: int

    @property
    def pending(self) -> bool:
        """A command's 202: no outcome in time (ask again with the same key)."""
        return self.status == 202 and self.body.get("status") == "pending"

    @property
    def unknown(self) -> bool:
        """No outcome known after the retries: no answer, a server error, or pending (ask
        again with the same key)."""
        return self.status == TRANSPORT_ERROR or self.status >= 500 or self.pending

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and not self.pending


class _PoolWait:
    """A call's waits for a pooled connection, summed over its attempts (aiohttp's trace
    of the connector's queue)."""

    __slots__ = ("began", "total")

    def __init__(self) -> None:
        self.began: float | None = None
        self.total = 0.0

    def end(self) -> None:
        """The wait under way, if any, ends now (aiohttp tells only of a wait that got a
        connection: one that timed out in the queue ends here)."""
        if self.began is not None:
            self.total += time.monotonic() - self.began
            self.began = None


async def _queued(_session: Any, ctx: Any, _params: Any) -> None:
    wait = ctx.trace_request_ctx
    if isinstance(wait, _PoolWait):
        wait.began = time.monotonic()


async def _dequeued(_session: Any, ctx: Any, _params: Any) -> None:
    wait = ctx.trace_request_ctx
    if isinstance(wait, _PoolWait):
        wait.end()


class ApiClient:
    """Calls of many apps over one aiohttp connection pool; each stream has an httpx client
    of its own (``stream_client``: httpx-sse reads the events).

    Why two libraries: httpcore's pool (under httpx) is a list scanned against its queue at
    every request, which melts a client of a thousand apps once calls queue (measured: a
    core spent in the scan at 800 simulated drivers); aiohttp's connector keeps its
    connections and waiters in queues. httpx-sse is the maintained client of server-sent
    events, and a stream is one connection for minutes, which no pool has to scan."""

    def __init__(
        self,
        base_url: str,
        recorder: Recorder,
        connections: int = 256,
        timeout_s: float = 30.0,
        max_attempts: int = 8,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._connections, self._timeout_s = connections, timeout_s
        self._session: aiohttp.ClientSession | None = None  # made in the running loop
        self._tls = ssl.create_default_context() if base_url.startswith("https") else None
        self.recorder = recorder
        self.max_attempts = max_attempts
        self.rng = rng or random.Random(0)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._connections, limit_per_host=self._connections,
                ssl=self._tls if self._tls is not None else False,
            )  # fmt: skip
            timeout = aiohttp.ClientTimeout(total=self._timeout_s, sock_connect=10.0)
            trace = aiohttp.TraceConfig()
            trace.on_connection_queued_start.append(_queued)
            trace.on_connection_queued_end.append(_dequeued)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                trust_env=False,  # no proxy from the env
                trace_configs=[trace],
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def stream_client(self) -> httpx.AsyncClient:
        """A client for one stream's connection; a stream silent for ``STREAM_SILENCE_S``
        (three heartbeats) is taken for dead and opened again. The caller closes it."""
        return httpx.AsyncClient(
            base_url=self.base_url,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=0),
            timeout=httpx.Timeout(None, connect=10.0, read=STREAM_SILENCE_S),
            verify=self._tls if self._tls is not None else False,  # http: no TLS to verify
            trust_env=False,  # no proxy from the environment: the checked target alone
        )

    async def call(
        self,
        method: str,
        endpoint: str,
        path: str,
        *,
        planned_at: float,
        json: Any = None,
        token: str | None = None,
        key: str | None = None,
        repeatable: bool = False,
        rounds: int = 1,
    ) -> Reply:
        """``method`` ``path`` (``endpoint`` names it in the report: the path's template),
        retried until an answer that is not worth retrying or ``max_attempts``.
        ``planned_at``: when the app meant to send it (``time.monotonic()``). A write is
        retried after a 5xx or a lost answer only with a ``key``, or when ``repeatable``
        (doing it twice is harmless: a batch of pings); after a 429 always (not applied).
        With a ``key``, a call whose outcome is still unknown after its attempts
        (``Reply.unknown``) is asked again after ``ROUND_PAUSE_S``, in up to ``rounds``
        rounds of attempts under the same key. It is recorded once, with its last answer."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if key is not None:
            headers["Idempotency-Key"] = key
        send_lag = max(0.0, time.monotonic() - planned_at)
        may_repeat = method == "GET" or key is not None or repeatable
        wait = _PoolWait()
        reply = await self._attempts(method, endpoint, path, json, headers, may_repeat, wait)
        tries = reply.attempts
        for _ in range(rounds - 1):
            if key is None or not reply.unknown:
                break
            await asyncio.sleep(ROUND_PAUSE_S)
            reply = await self._attempts(method, endpoint, path, json, headers, may_repeat, wait)
            tries += reply.attempts
        latency = time.monotonic() - planned_at
        self.recorder.call(
            endpoint, reply.status, latency, send_lag, pending=reply.pending,
            pool_wait_s=wait.total,
        )  # fmt: skip
        return Reply(reply.status, reply.body, tries)

    async def _attempts(
        self,
        method: str,
        endpoint: str,
        path: str,
        json: Any,
        headers: dict[str, str],
        may_repeat: bool,
        wait: _PoolWait,
    ) -> Reply:
        """One round: tried until an answer not worth retrying, or ``max_attempts``."""
        status, body = TRANSPORT_ERROR, {}
        attempt = 0
        url = self.base_url + path
        while attempt < self.max_attempts:
            attempt += 1
            pause: float | None
            try:
                async with self._http().request(
                    method, url, json=json, headers=headers, trace_request_ctx=wait
                ) as r:
                    status, body, after = r.status, _body(await r.read()), r.headers
            except (aiohttp.ClientError, TimeoutError) as error:
                wait.end()  # timed out while still waiting for a connection, perhaps
                status, body = TRANSPORT_ERROR, {"error": "transport", "reason": repr(error)}
                self.recorder.attempt(endpoint, status, body["reason"])
                pause = self._backoff(attempt)
            else:
                self.recorder.attempt(endpoint, status, body.get("reason"))
                pause = self._pause(status, after.get("Retry-After", ""), body, attempt)
            if pause is None:
                break
            if not may_repeat and status != 429:
                break  # a retry could apply it twice: only a 429 is known not applied
            await asyncio.sleep(pause)
        return Reply(status, body, attempt)

    def _pause(
        self, status: int, retry_after: str, body: dict[str, Any], attempt: int
    ) -> float | None:
        """How long to wait before trying again, None: this answer is final."""
        if status not in RETRY_STATUSES or attempt >= self.max_attempts:
            return None
        if status == 202:  # a command's "pending" (pings are accepted with a 202)
            return PENDING_PAUSE_S if body.get("status") == "pending" else None
        if retry_after.isdigit():
            return float(retry_after) + self.rng.uniform(0, 0.5)  # spread the retries out
        return self._backoff(attempt)

    def _backoff(self, attempt: int) -> float | None:
        if attempt >= self.max_attempts:
            return None
        return self.rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))


def _body(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {"reason": raw[:200].decode(errors="replace")}
    return value if isinstance(value, dict) else {"value": value}
