"""Riders' apps: a request at each planned arrival, by a rider free at the time (one is
registered when none is), followed on the ride's stream to its end; some cancel."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from dispatch.adapters.http.sse import StreamRefused, follow
from dispatch.simulator.apps.accounts import Account, AccountError
from dispatch.simulator.apps.world import UNKNOWN_ROUNDS, World, sleep_until

# What a ride's stream shows, by the frame's event.
SEEN = {"Ride.Accepted": "accepted", "Ride.DriverArrived": "arrived",
        "Ride.TripStarted": "started"}  # fmt: skip
ENDS = {"Ride.Completed": "completed", "Ride.CancelledByRider": "cancelled",
        "Ride.CancelledByOperator": "cancelled", "Ride.Expired": "expired"}  # fmt: skip
STATUS_ENDS = {"completed": "completed", "cancelled": "cancelled", "expired": "expired"}
PATIENCE_S = (5.0, 90.0)  # when a rider who will cancel does, after the request


@dataclass
class RideSeen:
    """One planned request as its rider's app saw it (times: seconds from the run's start)."""

    index: int
    planned_s: float
    status: int = -1  # the request's answer (-1: not sent; 0: no answer)
    refused: str = ""  # the error code of a refused request
    ride_id: str = ""
    accepted_s: float | None = None
    arrived_s: float | None = None
    started_s: float | None = None
    ended_s: float | None = None
    end: str = ""  # completed, cancelled, expired ("": not seen to end)
    cancel_planned: bool = False
    closed: bool = False  # cancelled by the run's closing (left out of served %)

    def as_row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class Riders:
    """The riders, free or on a ride; a new one registered when none is free."""

    def __init__(self, world: World, accounts: list[Account]) -> None:
        self.w = world
        self.free = deque(accounts)
        self.all = list(accounts)
        self.made = 0

    async def take(self, near: tuple[float, float]) -> Account:
        if self.free:
            return self.free.popleft()
        self.made += 1
        account = await self.w.accounts.register("rider", f"Rider {len(self.all) + 1}", near)
        self.all.append(account)
        return account

    def give_back(self, account: Account) -> None:
        self.free.append(account)


async def request(world: World, riders: Riders, seen: RideSeen) -> None:
    """The request planned at ``seen.planned_s``, from its send to its ride's end."""
    cfg = world.config
    rng = world.streams.rng("request", seen.index)
    pickup = world.city.demand_point(rng)
    dropoff = world.city.near(rng, *pickup, cfg.trip_mean_m)
    seen.cancel_planned = rng.random() < cfg.cancel_probability
    patience = rng.uniform(*PATIENCE_S)
    planned = world.started + seen.planned_s
    if await sleep_until(planned, world.closing):
        return  # the run closed first: never sent (status -1), in no figure
    try:
        account = await riders.take(pickup)
    except AccountError as error:
        seen.status, seen.refused = 0, f"no rider: {error}"
        return
    if world.closing.is_set():
        riders.give_back(account)
        return
    try:
        await _ride(world, account, seen, planned, pickup, dropoff, patience)
    finally:  # a rider whose ride may still be active (not seen to end) rides no more
        refused = not seen.ride_id and 400 <= seen.status < 500 and seen.status != 409
        if seen.end or refused:
            riders.give_back(account)


async def _ride(
    world: World,
    account: Account,
    seen: RideSeen,
    planned: float,
    pickup: tuple[float, float],
    dropoff: tuple[float, float],
    patience: float,
) -> None:
    body: dict[str, Any] = {"pickup": {"lat": pickup[0], "lng": pickup[1]},
                            "dropoff": {"lat": dropoff[0], "lng": dropoff[1]}}  # fmt: skip
    token = await world.accounts.token(account)
    client = world.client
    # The app's map first (the cars around), then a fare quote the request carries.
    near = f"/drivers/nearby?lat={pickup[0]}&lng={pickup[1]}"
    await client.call("GET", "GET /drivers/nearby", near, planned_at=planned, token=token)
    quote = await client.call(
        "POST", "POST /fares/estimate", "/fares/estimate", planned_at=time.monotonic(),
        json=body | {"product": "standard"}, token=token, repeatable=True,
    )  # fmt: skip
    if quote.ok and isinstance(quote.body.get("quote"), str):
        body["quote"] = quote.body["quote"]
    reply = await client.call(
        "POST", "POST /rides", "/rides", planned_at=time.monotonic(), json=body, token=token,
        key=str(uuid.uuid4()), rounds=UNKNOWN_ROUNDS,  # no outcome yet: asked again
    )  # fmt: skip
    seen.status = reply.status
    if reply.status not in (201, 202) or "ride_id" not in reply.body:
        # Refused, or no answer in the end: a ride the server may have made is not followed,
        # and its rider is not given another (the report counts it under ``refused_by``).
        seen.refused = str(reply.body.get("error") or reply.body.get("reason") or "no answer")
        return
    seen.ride_id = str(reply.body["ride_id"])  # a 202 (pending) names the ride too
    position = str(reply.body.get("position") or "")
    canceller = asyncio.ensure_future(_cancel_later(world, account, seen, planned + patience))
    try:
        await _watch(world, account, seen, position)
        if not seen.end:  # the stream failed: the ride's state is asked for once at the end
            await asyncio.wait([canceller])
            await _ask(world, account, seen)
    finally:
        canceller.cancel()


async def _watch(world: World, account: Account, seen: RideSeen, position: str) -> None:
    """Follow the ride's stream, read after the request's own write (its position)."""

    async def token() -> str:
        return await world.accounts.token(account)

    path = f"/rides/{seen.ride_id}/events"
    after = {"X-Consistency-Token": position} if position else {}
    tracker: asyncio.Task[None] | None = None
    try:
        async for event in follow(
            world.client, "GET /rides/{id}/events", path, token, headers=after
        ):
            now = time.monotonic() - world.started
            if event.kind in SEEN and getattr(seen, SEEN[event.kind] + "_s") is None:
                setattr(seen, SEEN[event.kind] + "_s", now)
                driver = event.data.get("data", {}).get("driver_id")
                if event.kind == "Ride.Accepted" and driver and tracker is None:
                    tracker = asyncio.ensure_future(_track(world, account, seen, str(driver)))
            elif event.kind in ENDS:
                seen.end, seen.ended_s = ENDS[event.kind], now
            elif event.kind == "end" and seen.end:
                return  # the stream's last frame after the ride's end
    except StreamRefused as refused:
        seen.refused = f"stream refused: {refused.status}"
    finally:
        if tracker is not None:
            tracker.cancel()


async def _track(world: World, account: Account, seen: RideSeen, driver: str) -> None:
    """Where the car is, asked every ``ping_every_s`` until it arrives (the app's map)."""
    every = world.config.ping_every_s
    planned = time.monotonic()
    while seen.arrived_s is None and seen.started_s is None and not seen.end:
        token = await world.accounts.token(account)
        await world.client.call(
            "GET", "GET /drivers/{id}", f"/drivers/{driver}", planned_at=planned, token=token
        )
        planned += every
        await sleep_until(max(planned, time.monotonic()))


async def _ask(world: World, account: Account, seen: RideSeen) -> None:
    """The ride's status by ``GET /rides/{id}``, its end when it has one."""
    await asyncio.sleep(1.0)  # after the cancel of the closing, if it made one
    token = await world.accounts.token(account)
    reply = await world.client.call(
        "GET", "GET /rides/{id}", f"/rides/{seen.ride_id}", planned_at=time.monotonic(),
        token=token,
    )  # fmt: skip
    end = STATUS_ENDS.get(str(reply.body.get("status")))
    if reply.ok and end:
        seen.end, seen.ended_s = end, time.monotonic() - world.started


async def _cancel_later(world: World, account: Account, seen: RideSeen, at: float) -> None:
    """A rider who planned to cancel does at ``at`` if the driver has not arrived yet; when
    the run closes, every rider whose trip has not started cancels."""
    waited = seen.cancel_planned and not await sleep_until(at, world.closing)
    if waited and seen.arrived_s is None and not seen.end:
        await _cancel(world, account, seen, "changed my mind")
    await world.closing.wait()
    if seen.started_s is None and not seen.end:
        seen.closed = True  # cancelled by the run's end, not by the rider: not decided
        await _cancel(world, account, seen, "the run is closing")


async def _cancel(world: World, account: Account, seen: RideSeen, reason: str) -> None:
    token = await world.accounts.token(account)
    await world.client.call(
        "POST", "POST /rides/{id}/cancel", f"/rides/{seen.ride_id}/cancel",
        planned_at=time.monotonic(), token=token, key=str(uuid.uuid4()),
        json={"reason": reason},
    )  # fmt: skip
