"""Server-sent event streams: one JSON event per log event of a ride or of a driver.

A stream first replays what the views already hold (a ride's timeline after
`Last-Event-ID`; a driver's current state as a `snapshot`), then follows the log live. It
ends when the ride ends, or after `max_s` seconds, or within ``CHECK_S`` of its caller's
token being refused (revoked, or views too stale to tell: ``dispatch.api.revocation``);
idle streams get heartbeat comments.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import anyio.to_thread
from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from dispatch.api import access, present, revocation
from dispatch.api.auth import Principal
from dispatch.api.context import ApiContext
from dispatch.api.deps import Caller, Consistent, Ctx, OperatorReadAudited, read_after
from dispatch.api.errors import AUDIT_UNAVAILABLE, AUTH_RESPONSES, forbidden, not_found
from dispatch.api.events import Subscription
from dispatch.domain.driver import DriverStatus
from dispatch.domain.ids import shard_of
from dispatch.domain.ride import RIDE_ENDINGS, TERMINAL
from dispatch.log import LogEvent
from dispatch.privacy import Opener
from projections.rides import RideRow
from schemas.views import StreamEvent

# An operator opening a stream is recorded first, like every operator read.
router = APIRouter(tags=["streams"], dependencies=[OperatorReadAudited])

RIDE_ENDED = frozenset(topic.removeprefix("dispatch.") for topic in RIDE_ENDINGS)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
CHECK_S = 1.0  # how often an open stream checks that its caller's token is still taken

_STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    503: AUDIT_UNAVAILABLE,
    404: AUTH_RESPONSES[403] | {"description": "Unknown id."},
    200: {
        "description": "A `text/event-stream`; each `data:` line is a StreamEvent.",
        "content": {"text/event-stream": {"schema": StreamEvent.model_json_schema()}},
    },
}

MaxSeconds = Annotated[float, Query(gt=0, le=3_600, description="End the stream after this.")]
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID", max_length=40)]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def frame(kind: str, position: str, aggregate_id: str, at: float, data: dict[str, Any]) -> str:
    body: dict[str, Any] = {"type": kind, "position": position, "aggregate_id": aggregate_id}
    body |= {"at": _iso(at), "data": data}
    payload = json.dumps(body, separators=(",", ":"), default=str)
    return f"id: {position}\nevent: {kind}\ndata: {payload}\n\n"


def end_frame(reason: str) -> str:
    return f"event: end\ndata: {json.dumps({'reason': reason})}\n\n"


def _after(last_event_id: str | None) -> int:
    _, _, pos = (last_event_id or "").partition(":")
    return int(pos) if pos.isascii() and pos.isdigit() else 0


def _well_formed(last_event_id: str | None) -> bool:
    shard, sep, pos = (last_event_id or "").partition(":")
    return bool(sep) and all(p.isascii() and p.isdigit() and len(p) < 19 for p in (shard, pos))


async def follow(
    ctx: ApiContext,
    caller: Principal,
    sub: Subscription,
    replay: Iterable[str],
    last: dict[int, int],
    max_s: float,
    render: Callable[[LogEvent], str],
    ends: frozenset[str] = frozenset(),
) -> AsyncIterator[str]:
    """Replayed frames, then live events of ``sub`` until an event in ``ends``, an overflow,
    ``max_s``, or ``caller``'s token no longer taken (checked every ``CHECK_S``). ``last``
    is the stream's own cursor, a position per shard: a live event at or before its shard's
    was replayed already (a driver handed off has events in several shards, whose
    positions do not compare)."""
    try:
        yield "retry: 2000\n\n"
        for text in replay:
            yield text
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_s
        beat = loop.time() + ctx.options.heartbeat_s
        while True:
            now = loop.time()
            remaining = deadline - now
            if remaining <= 0:
                yield end_frame("max duration")
                return
            if sub.overflowed and sub.queue.empty():
                yield end_frame("too far behind; reconnect with Last-Event-ID")
                return
            refused = revocation.still_valid(ctx, caller)
            if refused is not None:
                yield end_frame(refused)
                return
            if now >= beat:
                yield ": heartbeat\n\n"
                beat = now + ctx.options.heartbeat_s
            try:
                event = await asyncio.wait_for(
                    sub.queue.get(), max(0.0, min(beat - now, remaining, CHECK_S))
                )
            except TimeoutError:
                continue
            if event.position <= last.get(event.shard, 0):
                continue
            last[event.shard] = event.position
            yield render(event)
            beat = loop.time() + ctx.options.heartbeat_s  # heartbeats keep idle streams open
            if event.kind in ends:
                yield end_frame(event.kind)
                return
    finally:
        ctx.hub.unsubscribe(sub)


def _log_frame(hidden: frozenset[str], open: Opener) -> Callable[[LogEvent], str]:
    """A live event's frame, without the fields in ``hidden``, sealed fields opened."""

    def render(event: LogEvent) -> str:
        data = present.opened({k: v for k, v in event.data.items() if k not in hidden}, open)
        return frame(event.kind, event.where, event.aggregate_id, event.at, data)

    return render


@router.get(
    "/rides/{ride_id}/events", response_class=StreamingResponse, responses=_STREAM_RESPONSES
)
async def ride_events(
    ride_id: UUID,
    caller: Caller,
    ctx: Ctx,
    _read_after: Consistent,
    max_s: MaxSeconds = 900.0,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """Every event of a ride as it happens (the rider's app), after its timeline so far
    (after `Last-Event-ID`, a `shard:pos` this instance's views are waited for: 504
    `view_behind` if they do not reach it in time). Ends when the ride completes, is
    cancelled or expires. For its rider, driver and
    operators; only operators see which operator cancelled it."""
    key = str(ride_id)
    hidden = present.hidden_from(caller)
    if _well_formed(last_event_id):  # an app resuming, maybe from another instance: this
        await read_after(ctx, str(last_event_id))  # one serves it once it has caught up
    sub = ctx.hub.subscribe("ride", key)  # before the snapshot: nothing falls in between

    def snapshot() -> tuple[list[tuple[int, str]], bool] | None:
        with ctx.runtime.views.lock:
            row = ctx.runtime.views.rides.find(key)  # the view's, or an evicted row's
            if row is not None:
                return frames_of(row)
        row = ctx.runtime.ended_ride(key)  # an ended ride that left the view: the archive's
        return frames_of(row) if row is not None else None

    def frames_of(row: RideRow) -> tuple[list[tuple[int, str]], bool]:
        if not access.may_see_ride(caller, row):
            raise forbidden(f"you may not follow ride {ride_id}")
        opener = ctx.runtime.open_personal
        frames = [_timeline_frame(key, entry, hidden, opener) for entry in row.timeline]
        return frames, row.status in TERMINAL

    try:
        found = await anyio.to_thread.run_sync(snapshot)
        if found is None:
            raise not_found(f"no ride {ride_id}")
    except BaseException:
        ctx.hub.unsubscribe(sub)
        raise
    frames, ended = found
    after = _after(last_event_id)
    replay = [(pos, text) for pos, text in frames if pos > after]
    if ended:
        ctx.hub.unsubscribe(sub)
        done = [text for _, text in replay] + [end_frame("ride already ended")]
        return StreamingResponse(
            _iterate(done), media_type="text/event-stream", headers=SSE_HEADERS
        )
    limit = min(max_s, ctx.options.stream_max_s)
    cursor = {shard_of(ride_id): max([after, *(pos for pos, _ in replay)])}
    texts = [text for _, text in replay]
    render = _log_frame(hidden, ctx.runtime.open_personal)
    stream = follow(ctx, caller, sub, texts, cursor, limit, render, RIDE_ENDED)
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


async def _iterate(texts: list[str]) -> AsyncIterator[str]:
    for text in texts:
        yield text


def _timeline_frame(
    ride_id: str, entry: dict[str, Any], hidden: frozenset[str], open: Opener
) -> tuple[int, str]:
    skip = hidden | {"at", "event", "position"}
    data = present.opened({k: v for k, v in entry.items() if k not in skip}, open)
    position: str = entry["position"]
    text = frame(entry["event"], position, ride_id, entry["at"], data)
    return int(position.partition(":")[2]), text


@router.get(
    "/drivers/{driver_id}/offers", response_class=StreamingResponse, responses=_STREAM_RESPONSES
)
async def driver_offers(
    driver_id: UUID, caller: Caller, ctx: Ctx, _read_after: Consistent, max_s: MaxSeconds = 900.0
) -> StreamingResponse:
    """The driver's app: offers to this driver (`Driver.OfferReceived`, with the ride's
    pickup, drop-off and ETA), `Driver.OfferClosed`, `Driver.Assigned` and the driver's other
    events, after a `snapshot` of the driver's current state. For the driver and operators."""
    key = str(driver_id)
    if not (caller.role == "operator" or (caller.role == "driver" and caller.sub == key)):
        raise forbidden(f"you may not follow driver {driver_id}")
    views = ctx.runtime.views
    sub = ctx.hub.subscribe("driver", key)

    def snapshot() -> tuple[dict[int, int], str] | None:
        """The driver's state, and the views' position in every shard it was taken at (the
        stream's cursor: a driver handed off has events in each shard that served it)."""
        with views.lock:
            row = views.drivers.rows.get(key)
            if row is None:
                return None
            cursor = {s: views.position(s) for s in range(ctx.runtime.settings.shards)}
            serving = views.drivers.tenures.serving(key)
            shard = shard_of(driver_id) if serving is None else serving
            data: dict[str, Any] = {"status": row.status, "ride_id": row.ride_id}
            if row.status == DriverStatus.OFFERED and row.ride_id:
                data["ride"] = _ride_summary(ctx, row.ride_id)
            where = f"{shard}:{cursor[shard]}"
            return cursor, frame("snapshot", where, key, row.updated_at, data)

    try:
        found = await anyio.to_thread.run_sync(snapshot)
        if found is None:
            raise not_found(f"no driver {driver_id}")
    except BaseException:
        ctx.hub.unsubscribe(sub)
        raise

    def render(event: LogEvent) -> str:
        data = present.opened(event.data, ctx.runtime.open_personal)  # Driver.Arrived's name
        if event.kind == "Driver.OfferReceived":
            data = {**data, "ride": _ride_summary(ctx, data["ride_id"])}
        return frame(event.kind, event.where, event.aggregate_id, event.at, data)

    cursor, text = found
    limit = min(max_s, ctx.options.stream_max_s)
    stream = follow(ctx, caller, sub, [text], cursor, limit, render)
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


def _ride_summary(ctx: ApiContext, ride_id: str) -> dict[str, Any] | None:
    with ctx.runtime.views.lock:  # re-entrant: also called under the lock by the snapshot
        row = ctx.runtime.views.rides.get(ride_id)
    if row is None:
        return None
    pickup, dropoff = (
        present.latlng(value, field, ctx.runtime.open_personal)
        for value, field in ((row.pickup, "pickup"), (row.dropoff, "dropoff"))
    )
    return {
        "ride_id": ride_id,
        "pickup": None if pickup is None else pickup.model_dump(),  # None: erased
        "dropoff": None if dropoff is None else dropoff.model_dump(),
        "pickup_eta_s": row.pickup_eta_s,
        "status": row.status,
    }
