"""``dispatch serve``: the API over a runtime, run by uvicorn with the limits of ``ApiLimits``.

uvicorn closes idle keep-alive connections but never times out a client that sends its
request headers slowly (a slowloris holds a connection for ever). ``GuardedH11Protocol``
gives every request ``header_timeout_s`` from the moment the server waits for it to the
end of its headers, then answers 408 and closes. Slow bodies are the body-limit
middleware's (``dispatch.api.limits``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import h11
import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

from dispatch import logs
from dispatch.api.app import create_app
from dispatch.api.auth import AuthSettings
from dispatch.api.settings import ApiLimits, OpsPageSettings
from dispatch.bootstrap import build_runtime
from dispatch.logs import LogFormat
from dispatch.settings import Settings

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
_TIMEOUT_BODY = b'{"error":"request_timeout","reason":"request headers arrived too late"}'
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + f"content-length: {len(_TIMEOUT_BODY)}\r\n\r\n".encode()
    + _TIMEOUT_BODY
)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's headers."""

    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # the headers are in

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._arm()  # the next request's headers have the same deadline
        super().on_response_complete()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()


class PathOnlyAccessLog(logging.Filter):
    """Drops the query string from uvicorn's access-log records (their third argument is the
    request's full path); the record is kept, with ``?`` and what follows left out."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


ACCESS_LOG_FILTER = PathOnlyAccessLog()


def guarded_protocol(header_timeout_s: float) -> type[GuardedH11Protocol]:
    return type("GuardedH11", (GuardedH11Protocol,), {"header_timeout_s": header_timeout_s})


def server_config(
    app: Any,
    limits: ApiLimits,
    host: str,
    port: int,
    log_level: str = "info",
    log_format: LogFormat = "text",
) -> uvicorn.Config:
    """uvicorn's config for the API: the guarded protocol, bounded headers, an access log
    without query strings; with JSON logs, uvicorn's loggers left to the root's handler
    (``dispatch.logs``) rather than given text handlers of their own."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(limits.header_timeout_s),
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 by default; the API decides
        # itself, from DISPATCH_TRUSTED_PROXIES (dispatch.api.ratelimit.client_address).
        proxy_headers=False,
        timeout_keep_alive=5,
        log_level=log_level,
        log_config=None if log_format == "json" else LOGGING_CONFIG,
    )
    # uvicorn's Config configured its loggers just now; the filter outlives later configs
    # (dictConfig keeps a logger's filters) and is added once.
    access = logging.getLogger("uvicorn.access")
    if ACCESS_LOG_FILTER not in access.filters:
        access.addFilter(ACCESS_LOG_FILTER)
    return config


def switch_gil_often(settings: Settings) -> None:
    """The serving process's GIL switch interval (``api_gil_switch_interval_ms``): the
    event loop waits at most that long for the GIL after each socket call while another
    thread computes."""
    sys.setswitchinterval(settings.api_gil_switch_interval_ms / 1_000)


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    auth: AuthSettings | None = None,
    limits: ApiLimits | None = None,
) -> None:
    """Build the runtime, serve the API until interrupted; the app's lifespan starts and
    stops the runtime. ``auth`` and ``limits`` default to the ``DISPATCH_*`` environment.
    Logs (INFO) whether the views were taken up or folded from the start, and how long
    building and catching up took."""
    logs.configure(
        settings.log_format,
        "%(asctime)s %(levelname)s %(name)s: %(message)s",
        settings.log_level,
    )
    auth = auth if auth is not None else AuthSettings()
    limits = limits if limits is not None else ApiLimits()
    switch_gil_often(settings)
    started = time.perf_counter()
    runtime = build_runtime(settings)
    log.info("runtime built in %.3f s", time.perf_counter() - started)
    app = create_app(runtime, auth, limits=limits, ops_settings=OpsPageSettings())
    config = server_config(app, limits, host, port, log_format=settings.log_format)
    uvicorn.Server(config).run()
