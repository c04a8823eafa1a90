"""Operations: liveness, readiness and Prometheus metrics (no token needed)."""

from __future__ import annotations

import math

from fastapi import APIRouter, Response

from dispatch.api.deps import Ctx
from schemas.views import Liveness, Readiness, ShardReadiness

router = APIRouter(tags=["operations"])


@router.get("/livez", response_model=Liveness, summary="Liveness")
async def livez() -> Liveness:
    """The process answers. Served on the event loop itself, so it never waits for a
    thread behind writes that wait for their outcomes."""
    return Liveness()


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness",
    responses={503: {"model": Readiness, "description": "Not ready (see `reason`)."}},
)
def readyz(ctx: Ctx, response: Response) -> Readiness:
    """Ready when the runtime is started, every shard's views are within `ready_max_lag`
    events of the log head (where the head can be read) and have read the shard to its end
    within the revocation bound (else this instance refuses tokens: 503) and, on Kafka,
    the locations topic is being followed."""
    runtime = ctx.runtime
    started = runtime.started
    bound = ctx.tokens.settings.revocation_bound_s
    shards, behind, unreadable, stale = [], [], [], []
    for shard in range(runtime.settings.shards):
        position = runtime.views.position(shard)
        try:
            head = runtime.head(shard)
        except Exception as error:  # a shard file gone or damaged while serving
            unreadable.append(f"shard {shard}: {error}")
            head = None
        lag = max(0, head - position) if head is not None else None
        age = runtime.views_age(shard)
        age_s = round(age, 3) if math.isfinite(age) else None
        shards.append(
            ShardReadiness(shard=shard, position=position, head=head, lag=lag, age_s=age_s)
        )
        if lag is not None and lag > ctx.options.ready_max_lag:
            behind.append(f"{shard} ({lag} events)")
        if age > bound:
            stale.append(f"{shard} ({age_s} s)" if age_s is not None else f"{shard} (never)")
    problems = [] if started else ["runtime not started"]
    if behind:
        problems.append("views behind on shards " + ", ".join(behind))
    if stale:
        problems.append(
            f"views not read to the log's end within the revocation bound ({bound:g} s) on "
            "shards " + ", ".join(stale)
        )
    problems += unreadable
    problems += [p for p in (s.problem() for s in runtime.services) if p is not None]
    reason = "; ".join(problems)
    ready = not problems
    response.status_code = 200 if ready else 503
    return Readiness(ready=ready, started=started, reason=reason, shards=shards)


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(ctx: Ctx) -> Response:
    """Prometheus text format: request latency by route, command outcomes by code,
    projection positions, log heads and views' ages per shard, matcher counters."""
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE_LATEST)
