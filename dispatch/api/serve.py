"""``dispatch serve``: the API over a runtime, run by uvicorn with the limits of ``ApiLimits``.

The HTTP parser is uvicorn's httptools protocol (llhttp, compiled, in place of h11's pure
Python), with bounds of the project's own (``dispatch.api.protocol``), and the event loop
uvloop's where it is installed (a dependency on every platform but Windows): with the
stock asyncio loop, the queries' p99 passed 100 ms in some runs with pings arriving, with
uvloop in none (docs/BENCHMARKS.md, "The API's tail", item 10). Slow bodies are the
body-limit middleware's (``dispatch.api.limits``).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from dispatch import logs
from dispatch.api.app import create_app
from dispatch.api.auth import AuthSettings
from dispatch.api.protocol import guarded_protocol
from dispatch.api.settings import ApiLimits, OpsPageSettings
from dispatch.bootstrap import build_runtime
from dispatch.logs import LogFormat
from dispatch.settings import Settings

log = logging.getLogger(__name__)


class PathOnlyAccessLog(logging.Filter):
    """Drops the query string from uvicorn's access-log records (their third argument is the
    request's full path); the record is kept, with ``?`` and what follows left out."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


ACCESS_LOG_FILTER = PathOnlyAccessLog()


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
        http=guarded_protocol(limits.header_timeout_s, limits.max_body_bytes),
        loop="auto",  # uvloop when it is installed, else asyncio's
        ws="none",  # no WebSocket routes: an upgrade is answered as plain HTTP (protocol.py)
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
