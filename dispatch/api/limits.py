"""Refuse oversized request bodies (by Content-Length) before anything parses them."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from dispatch.api.errors import problem_body


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                    reason = f"request body over {self.max_bytes} bytes"
                    response = JSONResponse(problem_body("payload_too_large", reason), 413)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
