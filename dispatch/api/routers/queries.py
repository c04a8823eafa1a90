"""Queries, answered from this process's views. Each accepts a consistency token
(`?after=` or `X-Consistency-Token`) and first waits, bounded, until the views include it.

The handlers are ``async`` and read the views on the event loop: a read holds the views'
lock for tens of microseconds, less than a hop to a worker thread costs.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import anyio.to_thread
from fastapi import APIRouter, Query

from dispatch.api import access, present
from dispatch.api.deps import (
    Caller,
    Consistent,
    Ctx,
    OperatorCaller,
    OperatorReadAudited,
    RiderOrOperator,
)
from dispatch.api.errors import QUERY_RESPONSES, forbidden, not_found
from dispatch.domain.geo import MAX_LAT, MAX_LNG, MIN_LAT, MIN_LNG
from dispatch.domain.ride import ASSIGNED
from dispatch.domain.surge import SURGE_RESOLUTION
from schemas.views import (
    DriverLocationView,
    Heatmap,
    HeatmapCell,
    NearbyDrivers,
    RideView,
    ScheduledRides,
    Surge,
    SurgeCell,
)

# Every query an operator makes is recorded before it is answered (``dispatch.read_audit``).
router = APIRouter(tags=["queries"], dependencies=[OperatorReadAudited])

MAX_RADIUS_M = 10_000.0
MAX_LIMIT = 50


@router.get("/drivers/nearby", response_model=NearbyDrivers, responses=QUERY_RESPONSES)
async def nearby_drivers(
    lat: Annotated[float, Query(ge=MIN_LAT, le=MAX_LAT, allow_inf_nan=False, examples=[37.7749])],
    lng: Annotated[float, Query(ge=MIN_LNG, le=MAX_LNG, allow_inf_nan=False, examples=[-122.4194])],
    caller: RiderOrOperator,
    ctx: Ctx,
    _after: Consistent,
    radius_m: Annotated[float, Query(gt=0, le=MAX_RADIUS_M, allow_inf_nan=False)] = 2_000.0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
) -> NearbyDrivers:
    """Available drivers nearest to a point, closest first, within `radius_m` (at most
    10 km), at most `limit` (at most 50). Riders and operators only."""
    runtime = ctx.runtime
    now = runtime.clock()
    with runtime.views.lock:
        found = runtime.views.locations.nearest(lat, lng, limit, radius_m, now)
    drivers = [present.nearby_driver(where, dist) for where, dist in found]
    return NearbyDrivers(lat=lat, lng=lng, radius_m=radius_m, drivers=drivers)


@router.get("/drivers/{driver_id}", response_model=DriverLocationView, responses=QUERY_RESPONSES)
async def driver_status(
    driver_id: UUID, caller: Caller, ctx: Ctx, _after: Consistent
) -> DriverLocationView:
    """Where a driver is and their status. Seen by the driver, the rider whose active ride
    they serve (a shared ride's rider from when the vehicle is assigned until their drop-off,
    whichever rider's stop comes next), and operators."""
    key = str(driver_id)
    views = ctx.runtime.views
    with views.lock:
        row = views.drivers.rows.get(key)
        mine = views.rides.active.get(caller.sub) if caller.role == "rider" else None
        ride = views.rides.get(mine) if mine is not None else None
        where = views.locations.where(key, ctx.runtime.clock())
    serving = (
        caller.role == "rider"
        and ride is not None
        and ride.rider_id == caller.sub
        and ride.driver_id == key
        and ride.status in ASSIGNED  # the driver serves the ride
    )
    owner = caller.role == "operator" or (caller.role == "driver" and caller.sub == key)
    if not (owner or serving):
        raise forbidden(f"you may not see driver {driver_id}")
    if row is None:
        raise not_found(f"no driver {driver_id}")
    return present.driver_view(row, where)


@router.get("/rides/{ride_id}", response_model=RideView, responses=QUERY_RESPONSES)
async def ride_status(ride_id: UUID, caller: Caller, ctx: Ctx, _after: Consistent) -> RideView:
    """A ride's status and timeline. Seen by its rider, its driver (or the driver it is
    offered to) and operators; only operators see which operator cancelled it. A ride that
    ended long ago (`DISPATCH_ENDED_RIDE_RETENTION_S`) is answered from the ended-rides
    archive, the same way."""
    views = ctx.runtime.views
    key = str(ride_id)
    hidden = present.hidden_from(caller)  # who an operator was: for operators' eyes
    with views.lock:
        row = views.rides.find(key)
        if row is not None and access.may_see_ride(caller, row):  # checked before opening
            return present.ride_view(row, hidden, ctx.runtime.open_personal)
    if row is None:  # not in memory: it may have ended and left it (a disk read)
        row = await anyio.to_thread.run_sync(ctx.runtime.ended_ride, key)
    if row is None:
        raise not_found(f"no ride {ride_id}")
    if not access.may_see_ride(caller, row):
        raise forbidden(f"you may not see ride {ride_id}")
    return present.ride_view(row, hidden, ctx.runtime.open_personal)


@router.get(
    "/riders/{rider_id}/scheduled-rides", response_model=ScheduledRides, responses=QUERY_RESPONSES
)
async def scheduled_rides(
    rider_id: UUID, caller: Caller, ctx: Ctx, _after: Consistent
) -> ScheduledRides:
    """A rider's scheduled rides whose dispatch has not started yet, soonest first (a
    ride that started is the rider's active ride: `GET /rides/{ride_id}`). Seen by the
    rider and operators."""
    if not (caller.role == "operator" or (caller.role == "rider" and caller.sub == str(rider_id))):
        raise forbidden(f"you may not see rider {rider_id}'s rides")
    hidden = present.hidden_from(caller)
    with ctx.runtime.views.lock:
        rows = ctx.runtime.views.rides.booked_of(str(rider_id))
        views = [present.ride_view(r, hidden, ctx.runtime.open_personal) for r in rows]
    return ScheduledRides(rider_id=rider_id, rides=views)


@router.get("/heatmap", response_model=Heatmap, responses=QUERY_RESPONSES)
async def heatmap(
    caller: OperatorCaller,
    ctx: Ctx,
    _after: Consistent,
    resolution: Annotated[int, Query(ge=4, le=8, description="H3 resolution.")] = 7,
) -> Heatmap:
    """Supply (available drivers) and demand (waiting rides) per H3 cell, and the surge
    layer: every surge cell (resolution 8) whose multiplier is above 1.00. Operators only."""

    def read() -> tuple[dict[str, tuple[int, int]], dict[str, str]]:
        with ctx.runtime.views.lock:
            return ctx.runtime.views.heatmap.cells(resolution), ctx.runtime.views.surge.layer()

    cells, surge = await anyio.to_thread.run_sync(read)  # a whole-map walk: off the event loop
    out = [HeatmapCell(cell=k, supply=s, demand=d) for k, (s, d) in sorted(cells.items())]
    layer = [SurgeCell(cell=k, multiplier=m) for k, m in sorted(surge.items())]
    return Heatmap(resolution=resolution, cells=out, surge_resolution=SURGE_RESOLUTION,
                   surge=layer)  # fmt: skip


@router.get("/surge", response_model=Surge, responses=QUERY_RESPONSES)
async def surge(
    lat: Annotated[float, Query(ge=MIN_LAT, le=MAX_LAT, allow_inf_nan=False, examples=[37.7749])],
    lng: Annotated[float, Query(ge=MIN_LNG, le=MAX_LNG, allow_inf_nan=False, examples=[-122.4194])],
    caller: Caller,
    ctx: Ctx,
    _after: Consistent,
) -> Surge:
    """The surge multiplier of the H3 cell (resolution 8) holding the place, as the shards
    last recorded it: 1.00 where none was. What a quote with its pickup there is priced
    at. Any signed-in caller."""
    views = ctx.runtime.views
    with views.lock:
        cell, multiplier = views.surge.cell_of(lat, lng), views.surge.multiplier(lat, lng)
    return Surge(lat=lat, lng=lng, cell=cell, resolution=SURGE_RESOLUTION, multiplier=multiplier)
