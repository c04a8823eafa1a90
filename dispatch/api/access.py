"""Who may do what, checked against the views before a command is sent or a view is read.

The domain refuses too (a command carries the caller's id and the aggregates check it);
these checks give a clear 403 early and guard the reads, which the domain never sees.
"""

from __future__ import annotations

from uuid import UUID

from dispatch.api.auth import Principal
from dispatch.api.context import ApiContext
from dispatch.api.errors import forbidden, not_found
from dispatch.domain.ids import shard_of
from projections.rides import RideRow


def require_self(caller: Principal, driver_or_rider_id: UUID) -> None:
    if caller.sub != str(driver_or_rider_id):
        raise forbidden(f"a {caller.role} token acts only for itself, not {driver_or_rider_id}")


def existing_shard(ctx: ApiContext, ride_id: UUID) -> None:
    """An id whose shard does not exist names nothing: 404 (a command would reach no one)."""
    if shard_of(ride_id) >= ctx.runtime.settings.shards:
        raise not_found(f"no ride {ride_id}")


def driver_on_ride(ctx: ApiContext, caller: Principal, ride_id: UUID) -> None:
    """A driver acts on a ride offered or assigned to them. A driver who took part in the
    ride before (an expired offer) is let through: the domain then says why not (409)."""
    me = caller.sub
    existing_shard(ctx, ride_id)
    with ctx.runtime.views.lock:
        row = ctx.runtime.views.rides.get(str(ride_id))
        involved = row is not None and _involved(row, me)
    if row is None:
        # not in this view yet (a ride may be offered a driver across a market's border):
        # the domain decides (404, 403 or 409)
        return
    if me not in (row.offered_to, row.driver_id) and not involved:
        raise forbidden(f"ride {ride_id} is not offered or assigned to driver {me}")


def rider_of(ctx: ApiContext, caller: Principal, ride_id: UUID) -> None:
    existing_shard(ctx, ride_id)
    with ctx.runtime.views.lock:
        row = ctx.runtime.views.rides.get(str(ride_id))
    if row is not None and row.rider_id != caller.sub:
        raise forbidden(f"ride {ride_id} belongs to another rider")
    # not in the view yet (a ride opens at its pickup's shard, in any market): the domain
    # decides (404, 403 or 409)


def may_see_ride(caller: Principal, row: RideRow) -> bool:
    if caller.role == "operator":
        return True
    if caller.role == "rider":
        return row.rider_id == caller.sub
    return caller.sub in (row.driver_id, row.offered_to)


def _involved(row: RideRow, driver_id: str) -> bool:
    return any(entry.get("driver_id") == driver_id for entry in row.timeline)
