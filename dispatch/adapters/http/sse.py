"""A server-sent event stream followed as an app follows it: reconnected after a drop, with
``Last-Event-ID`` so that nothing between the two connections is missed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import SSEError, aconnect_sse

from dispatch.adapters.http.client import TRANSPORT_ERROR, ApiClient

RECONNECT_S = (0.5, 1.0, 2.0, 4.0)  # pauses before each reconnection (the last repeats)


@dataclass(frozen=True, slots=True)
class ServerEvent:
    kind: str  # the frame's ``event:`` ("snapshot", "Ride.Accepted", "end", ...)
    id: str  # its ``id:`` ("" for frames without one)
    data: dict[str, Any]


class StreamRefused(Exception):
    """The server answered the stream's request with an error (``status``: 0, none)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status, self.reason = status, reason


async def follow(
    client: ApiClient,
    endpoint: str,
    path: str,
    token: Callable[[], Awaitable[str]],
    max_reconnects: int = 20,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[ServerEvent]:
    """The events of ``path`` (``await token()``: the caller's access token, refreshed
    when due, at each connection), across
    reconnections, until the caller stops iterating. An ``end`` frame is passed on (its
    ``data["reason"]`` says why); the stream is then opened again unless the caller stops.
    Raises ``StreamRefused`` when the server refuses it (a 4xx), or after
    ``max_reconnects`` connections in a row that delivered nothing. ``headers`` go with
    every connection (an ``X-Consistency-Token``: read after one's own write)."""
    last_id = ""
    failures = 0
    while True:
        sent = {**(headers or {}), "Authorization": f"Bearer {await token()}"}
        if last_id:
            sent["Last-Event-ID"] = last_id
        started = time.monotonic()
        delivered, wait = False, 0.0
        try:
            async with (
                client.stream_client() as http,
                aconnect_sse(http, "GET", path, headers=sent) as source,
            ):
                status = source.response.status_code
                if status != 200:
                    body = await source.response.aread()
                    said = _data(body.decode(errors="replace"))
                    reason = str(said.get("reason") or said.get("text") or "")[:300]
                    client.recorder.attempt(endpoint, status, reason)
                    client.recorder.call(endpoint, status, time.monotonic() - started, 0.0)
                    if 400 <= status < 500 and status != 429:
                        raise StreamRefused(status, reason)
                    after = source.response.headers.get("Retry-After", "")
                    wait = float(after) if after.isdigit() else 0.0
                else:
                    client.recorder.attempt(endpoint, status, None)
                    client.recorder.call(endpoint, status, time.monotonic() - started, 0.0)
                    async for sse in source.aiter_sse():
                        if sse.retry is not None:  # the server's own pause between tries
                            wait = sse.retry / 1000.0
                        if not sse.data:
                            continue  # the "retry:" preamble: no event, not a delivery
                        if sse.id:
                            last_id = sse.id
                        delivered = True
                        yield ServerEvent(sse.event, sse.id, _data(sse.data))
        except (httpx.TransportError, SSEError) as error:
            client.recorder.attempt(endpoint, TRANSPORT_ERROR, repr(error))
        failures = 0 if delivered else failures + 1
        if failures > max_reconnects:
            raise StreamRefused(TRANSPORT_ERROR, f"{failures} connections delivered nothing")
        await asyncio.sleep(max(wait, RECONNECT_S[min(failures, len(RECONNECT_S) - 1)]))


def _data(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {"text": text}
    return value if isinstance(value, dict) else {"value": value}
