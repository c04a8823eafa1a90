"""Refuse oversized or slow request bodies before anything parses them.

Every body is read here first, whatever its framing, counting what arrives: over
``max_bytes`` it is a 413, slower than ``timeout_s`` a 408. A request that states both a
``Content-Length`` and a ``Transfer-Encoding`` (the framing of request smuggling) or a
malformed length is a 400. The app then sees the body already read.
"""

from __future__ import annotations

import anyio
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatch.api.errors import problem_body


class _Gone:
    """The client disconnected before its whole body arrived."""


_GONE = _Gone()


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lengths = [v for k, v in scope["headers"] if k == b"content-length"]
        encodings = [v for k, v in scope["headers"] if k == b"transfer-encoding"]
        if lengths and encodings:
            reason = "a request may not have both Content-Length and Transfer-Encoding"
            await _answer(400, "bad_request", reason, scope, receive, send)
            return
        if len(set(lengths)) > 1 or (lengths and not lengths[0].isdigit()):
            await _answer(400, "bad_request", "malformed Content-Length", scope, receive, send)
            return
        if not lengths and not encodings:  # no body
            await self.app(scope, receive, send)
            return
        if lengths and int(lengths[0]) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        body: bytes | _Gone | None = _GONE
        with anyio.move_on_after(self.timeout_s) as timer:
            body = await self._read_up_to_limit(receive)
        if timer.cancelled_caught:
            reason = f"the request body did not arrive within {self.timeout_s:g} s"
            await _answer(408, "request_timeout", reason, scope, receive, send)
            return
        if isinstance(body, _Gone):
            return  # the client went away mid-body: nothing to answer, nothing to run
        if body is None:
            await self._too_large(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_up_to_limit(self, receive: Receive) -> bytes | _Gone | None:
        """The whole body, None as soon as it passes the limit, ``_GONE`` if the client
        disconnected before sending all of it."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _GONE
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        reason = f"request body over {self.max_bytes} bytes"
        await _answer(413, "payload_too_large", reason, scope, receive, send)


async def _answer(
    status: int, code: str, reason: str, scope: Scope, receive: Receive, send: Send
) -> None:
    """A Problem answer that also closes the connection (its framing cannot be trusted)."""
    response = JSONResponse(problem_body(code, reason), status, headers={"Connection": "close"})
    await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then the client's later messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
