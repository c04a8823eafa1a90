"""``dispatch serve``: the API over a runtime, run by uvicorn with the limits of ``ApiLimits``.

The HTTP parser is uvicorn's httptools protocol (llhttp, compiled, in place of h11's pure
Python) and the event loop uvloop's where it is installed (it is a dependency on every
platform but Windows): with the stock asyncio loop, the queries' p99 passed 100 ms in some
runs with pings arriving, with uvloop in none (docs/BENCHMARKS.md, "The API's tail", item
10). uvicorn closes idle keep-alive connections but never times out a client
that sends its request headers slowly (a slowloris holds a connection for ever), and
llhttp bounds no header size. ``GuardedProtocol`` gives every request ``header_timeout_s``
from the moment the server waits for it to the end of its headers, then answers 408 and
closes; and refuses headers over ``MAX_HEADER_BYTES`` with 431 and closes. Slow bodies are
the body-limit middleware's (``dispatch.api.limits``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import httptools
import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dispatch import logs
from dispatch.api.app import create_app
from dispatch.api.auth import AuthSettings
from dispatch.api.settings import ApiLimits, OpsPageSettings
from dispatch.bootstrap import build_runtime
from dispatch.logs import LogFormat
from dispatch.settings import Settings

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024


def _refusal(status: str, error: str, reason: str) -> bytes:
    body = f'{{"error":"{error}","reason":"{reason}"}}'.encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


_TIMEOUT_RESPONSE = _refusal(
    "408 Request Timeout", "request_timeout", "request headers arrived too late"
)
_TOO_LARGE_RESPONSE = _refusal(
    "431 Request Header Fields Too Large",
    "headers_too_large",
    f"request line and headers over {MAX_HEADER_BYTES} bytes",
)


class HeadersTooLarge(Exception):
    """Raised from the parser's callbacks: the parser then refuses the request."""


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request's headers and a bound
    on their size."""

    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = True
        self._header_bytes = 0
        self._too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._disarm()  # the headers are in
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # The next request's headers have the same deadline, unless they are already in
        # (a pipelined request, started by the call below).
        if not self.transport.is_closing() and not self.pipeline:
            self._awaiting_headers = True
            self._arm()
        super().on_response_complete()

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            self._refuse(str(exc))

    def _refuse(self, reason: str) -> None:
        """The parser refused the request: 431 for headers over the bound, else 400 with
        the parser's reason (never the request's content); the connection is closed."""
        if self._too_large:
            response = _TOO_LARGE_RESPONSE
        else:
            response = _refusal("400 Bad Request", "bad_request", reason.replace('"', "'"))
            log.warning("refused a malformed request: %s", reason)
        self._disarm()
        self.transport.write(response)
        self.transport.close()

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_HEADER_BYTES:
            self._too_large = True
            raise HeadersTooLarge

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._awaiting_headers and not self.transport.is_closing():
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


def guarded_protocol(header_timeout_s: float) -> type[GuardedProtocol]:
    return type("Guarded", (GuardedProtocol,), {"header_timeout_s": header_timeout_s})


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
        loop="auto",  # uvloop when it is installed, else asyncio's
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
