"""The app factory: ``create_app(runtime, auth)``. No settings are read at import time."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from dispatch.api import docs_ui, errors, ops_page
from dispatch.api.auth import AuthSettings, tokens_for
from dispatch.api.context import ApiContext, ApiOptions
from dispatch.api.events import EventHub
from dispatch.api.keys import shown_kid
from dispatch.api.limits import BodyLimitMiddleware
from dispatch.api.metrics import ApiMetrics, LatencyMiddleware
from dispatch.api.ratelimit import RateLimits
from dispatch.api.routers import auth as auth_routes
from dispatch.api.routers import (
    drivers,
    erasure,
    fares,
    operators,
    ops,
    places,
    queries,
    riders,
    streams,
)
from dispatch.api.settings import ApiLimits, OpsPageSettings
from dispatch.bootstrap import build_fare_desk, build_read_audit
from dispatch.pricing.desk import FareDesk
from dispatch.pricing.rules import defaults_misfit, rules_source
from dispatch.read_audit import ReadAudit
from dispatch.runtime import Runtime

log = logging.getLogger(__name__)

# The share of DISPATCH_AUTH_REVOCATION_BOUND_S a pass of the views over every shard may
# take while partitions stall (``ProjectionRunner.bound_pass``; docs/SECURITY.md).
PASS_SHARE_OF_BOUND = 0.25

DESCRIPTION = """\
Drivers and riders of the dispatch engine. Writes are commands: each answers with its
`command_id` and a consistency token (`position`, `<shard>:<pos>`); pass the token to a
query (`?after=` or `X-Consistency-Token`) to read your own write. Send an
`Idempotency-Key` header to make a retry safe. Errors are `{"error", "reason"}`.
"""

TAGS = [
    {"name": "drivers", "description": "Registration, availability, pings, ride actions."},
    {"name": "riders", "description": "Registration, ride requests and cancellation."},
    {"name": "fares", "description": "Fare quotes: a signed price for a trip, for a while."},
    {"name": "operators", "description": "What operators who dispatch may change."},
    {"name": "privacy", "description": "Erasure of a rider's or driver's personal data."},
    {"name": "queries", "description": "Read views, optionally after a consistency token."},
    {
        "name": "auth",
        "description": "A new access token for a refresh token; revoking every token of a "
        "driver, rider or operator.",
    },
    {"name": "streams", "description": "Server-sent events of a ride or a driver."},
    {"name": "operations", "description": "Health, readiness and metrics."},
]
STREAM_ROUTES = frozenset(getattr(r, "path", "") for r in streams.router.routes)


def create_app(
    runtime: Runtime,
    auth: AuthSettings,
    options: ApiOptions | None = None,
    limits: ApiLimits | None = None,
    reads: ReadAudit | None = None,
    ops_settings: OpsPageSettings | None = None,
) -> FastAPI:
    """The HTTP API over ``runtime``. With ``options.manage_runtime`` (the default) the
    app's lifespan starts and stops the runtime. ``limits`` default to their documented
    defaults (not the environment: ``serve`` reads that). Operators' reads are recorded in
    ``reads`` (default: the runtime's log's, ``bootstrap.build_read_audit``), closed with
    the app's lifespan."""
    opts = options or ApiOptions()
    limits = limits if limits is not None else ApiLimits.model_construct()
    hub = EventHub()
    metrics = ApiMetrics(runtime, hub)
    audit = reads if reads is not None else build_read_audit(runtime.settings)
    rate = RateLimits(limits)
    desk = fare_desk(runtime, auth)
    ctx = ApiContext(runtime, tokens_for(auth), opts, hub, metrics, limits, rate, audit, desk)
    # A pass of the views over every shard, stalled ones included, stays well within the
    # revocation bound, so that one slow partition does not age every shard past it.
    runtime.runner.bound_pass(auth.revocation_bound_s * PASS_SHARE_OF_BOUND)
    if auth.weak_keys:
        log.warning(
            "weak token keys (%s); acceptable in development only",
            ", ".join(shown_kid(kid) for kid in auth.weak_keys),
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.runner.listeners.append(hub.publish)  # the streams follow while the app runs
        if opts.manage_runtime:
            await anyio.to_thread.run_sync(runtime.start)
            # The views just caught up with the log: a large, long-lived heap. Freezing it
            # keeps full collections from rescanning it, which is what made the tail of
            # request latency (docs/BENCHMARKS.md).
            gc.collect()
            gc.freeze()
        probe = asyncio.create_task(metrics.probe())  # the loop's lag, the pool's queue
        try:
            yield
        finally:
            probe.cancel()
            if hub.publish in runtime.runner.listeners:
                runtime.runner.listeners.remove(hub.publish)
            if opts.manage_runtime:
                await anyio.to_thread.run_sync(runtime.stop)
            await anyio.to_thread.run_sync(audit.close)

    app = FastAPI(
        title="Dispatch API",
        version="1",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        docs_url=None,  # served from the package's assets below, not a CDN (docs_ui.py)
        redoc_url=None,
    )
    app.state.ctx = ctx
    errors.install(app)
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=limits.max_body_bytes, timeout_s=limits.body_timeout_s
    )
    app.add_middleware(LatencyMiddleware, metrics=metrics, skip=STREAM_ROUTES)
    # Order matters: /drivers/nearby before /drivers/{driver_id}.
    app.include_router(queries.router)
    app.include_router(drivers.router)
    app.include_router(drivers.rides)
    app.include_router(riders.router)
    app.include_router(riders.rides)
    app.include_router(fares.router)
    app.include_router(places.router)
    app.include_router(operators.rides)
    app.include_router(erasure.router)
    app.include_router(streams.router)
    app.include_router(auth_routes.router)
    app.include_router(ops.router)
    docs_ui.install(app)
    # the operations page (/ops): its defaults, not the environment, unless passed (serve)
    ops_page.install(app, ctx, ops_settings or OpsPageSettings.model_construct())
    return app


def fare_desk(runtime: Runtime, auth: AuthSettings) -> FareDesk:
    """The fare desk, its rules logged (version and source). With markets of one's own and
    no fare rules: ``ValueError`` in production, a warning in development."""
    settings = runtime.settings
    misfit = defaults_misfit(settings)
    if misfit is not None and auth.environment != "development":
        raise ValueError(f"{misfit}; refusing to run in {auth.environment}")
    if misfit is not None:
        log.warning("%s; acceptable in development only", misfit)
    desk = build_fare_desk(settings, auth.key_ring(), runtime.markets, runtime.surge_at)
    log.info("fare rules %s (%s)", desk.book.version, rules_source(settings))
    return desk
