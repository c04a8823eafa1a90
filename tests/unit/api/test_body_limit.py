"""The body limit middleware on its own: what reaches the app, whatever the client does."""

from __future__ import annotations

from typing import Any

import anyio

from dispatch.api.limits import BodyLimitMiddleware


def run(
    headers: list[tuple[bytes, bytes]], messages: list[dict[str, Any]]
) -> tuple[bool, list[Any]]:
    """Whether the app ran, and what was sent back, for a request that sends ``messages``."""
    ran, sent, queue = [], [], list(messages)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        ran.append(await receive())

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/riders", "headers": headers}
    anyio.run(BodyLimitMiddleware(app, max_bytes=100, timeout_s=5), scope, receive, send)
    return bool(ran), sent


def test_a_client_that_leaves_mid_body_runs_nothing_and_gets_no_answer() -> None:
    part = {"type": "http.request", "body": b'{"name": "R', "more_body": True}
    ran, sent = run([(b"content-length", b"40")], [part, {"type": "http.disconnect"}])
    assert (ran, sent) == (False, [])


def test_a_whole_body_reaches_the_app_once() -> None:
    body = {"type": "http.request", "body": b'{"name": "Ray"}', "more_body": False}
    ran, sent = run([(b"content-length", b"15")], [body])
    assert ran and sent == []
