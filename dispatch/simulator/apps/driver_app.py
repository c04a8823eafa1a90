"""A driver's app: online, sending batched fixes, following its offer stream, answering
offers like the in-process simulator's drivers and driving the rides it accepts."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from dispatch.adapters.http.client import Reply
from dispatch.adapters.http.sse import StreamRefused, follow
from dispatch.simulator.apps.accounts import Account
from dispatch.simulator.apps.moves import Moves
from dispatch.simulator.apps.world import UNKNOWN_ROUNDS, World, sleep_until

SEEK_DEMAND = 0.6  # an idle driver's next cruise heads for demand (else a short hop)
CRUISE_M = 1_500.0
RELISTEN_S = 5.0
ENDED = frozenset({"Driver.Released", "Driver.OfferClosed"})


class DriverApp:
    def __init__(self, world: World, account: Account, index: int) -> None:
        self.w, self.account, self.index = world, account, index
        self.moves = Moves(world.city, account.home, time.monotonic())
        self.offers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.gone: set[str] = set()  # rides released or whose offer closed
        self.answered: set[str] = set()  # offers answered (or being answered)
        self.changed = asyncio.Event()
        self.ride: str | None = None
        self.on_trip = False
        self.online = False
        self.joins_at_s = 0.0  # when it goes online, from the run's start (the profile's)
        self.joined_at_s: float | None = None  # when it went online later, if it did
        self.cruises = 0
        self.pending: set[asyncio.Task[Reply]] = set()  # open-loop pings in flight

    @property
    def path(self) -> str:
        return f"/drivers/{self.account.id}"

    async def token(self) -> str:
        return await self.w.accounts.token(self.account)

    async def act(self, endpoint: str, path: str, planned: float, body: Any = None) -> Reply:
        """A command under one Idempotency-Key. When its outcome is still unknown after the
        client's retries (no answer, a 5xx, or 202 pending), it is asked again with the
        same key, in up to ``UNKNOWN_ROUNDS`` rounds: the server answers a key it has seen
        with the outcome it recorded, so an accept that went through is not taken for a
        failure (which would leave its rider waiting)."""
        token = await self.w.accounts.token(self.account)
        return await self.w.client.call(
            "POST", endpoint, path, planned_at=planned, json=body, token=token,
            key=str(uuid.uuid4()), rounds=UNKNOWN_ROUNDS,
        )  # fmt: skip

    async def go_online(self) -> bool:
        """Online; a saved driver left online by an earlier run (409 "already online") is
        online already."""
        reply = await self.act("POST /drivers/{id}/online", self.path + "/online", time.monotonic())
        left_on = reply.status == 409 and "already online" in str(reply.body.get("reason"))
        self.online = reply.ok or left_on
        return self.online

    async def go_offline(self) -> None:
        if self.online:
            reply = await self.act(
                "POST /drivers/{id}/offline", self.path + "/offline", time.monotonic()
            )
            self.online = not reply.ok

    # -- the offer stream ------------------------------------------------------------------

    async def listen(self) -> None:
        """The offer stream, opened again after a refusal (a token that had expired while
        its refresh failed: 401) every ``RELISTEN_S``, until the run finishes; a driver
        deaf to offers would still ping and look available."""
        while not self.w.finishing.is_set():
            try:
                async for event in follow(
                    self.w.client, "GET /drivers/{id}/offers", self.path + "/offers", self.token
                ):
                    self.heard(event.kind, event.data)
            except StreamRefused as refused:
                self.w.drivers_did[f"stream refused {refused.status}"] += 1
            await sleep_until(time.monotonic() + RELISTEN_S, self.w.finishing)

    def heard(self, kind: str, data: dict[str, Any]) -> None:
        inner = data.get("data", {})
        if kind == "Driver.OfferReceived" and inner.get("ride"):
            self.offers.put_nowait(inner["ride"])
        elif kind == "snapshot" and inner.get("status") == "offered" and inner.get("ride"):
            self.offers.put_nowait(inner["ride"])  # an offer made while reconnecting
        elif kind in ENDED and inner.get("ride_id"):
            if inner.get("reason") != "completed":
                self.gone.add(str(inner["ride_id"]))
            self.changed.set()

    # -- life --------------------------------------------------------------------------------

    async def life(self) -> None:
        """Cruise until an offer, answer it, serve the ride; until the run closes."""
        while not self.w.closing.is_set():
            offer = await self.cruise_until_offer()
            if offer is not None:
                await self.answer(offer)
        if self.ride is not None:
            await self.serve_rest()

    async def cruise_until_offer(self) -> dict[str, Any] | None:
        self.cruises += 1
        rng = self.w.streams.rng("cruise", self.index, self.cruises)
        while not self.w.closing.is_set():
            now = time.monotonic()
            if now >= self.moves.arrives:
                here = self.moves.at(now)
                city = self.w.city
                if rng.random() < SEEK_DEMAND:
                    to = city.step_towards(here, city.demand_point(rng), rng, CRUISE_M)
                else:
                    to = city.near(rng, *here, CRUISE_M / 3)
                self.moves.go(to, now, self.w.metres_s())
            wait = min(5.0, max(0.05, self.moves.arrives - now))
            try:
                return await asyncio.wait_for(self.offers.get(), wait)
            except TimeoutError:
                continue
        return None

    async def answer(self, offer: dict[str, Any]) -> None:
        ride = str(offer.get("ride_id", ""))
        if not ride or ride in self.gone or ride in self.answered or offer.get("pickup") is None:
            return  # gone, or a copy (a reconnection's snapshot repeats an offer held)
        self.answered.add(ride)
        self.w.drivers_did["offers"] += 1
        rng = self.w.streams.rng("answer", self.index, ride)
        delay = rng.uniform(*self.w.config.response_delay_s)
        accept = rng.random() < self.w.config.accept_probability
        planned = time.monotonic() + delay
        if await sleep_until(planned, self.w.closing) or ride in self.gone:
            return
        verb = "accept" if accept else "decline"
        reply = await self.act(f"POST /rides/{{id}}/{verb}", f"/rides/{ride}/{verb}", planned)
        self.w.drivers_did[f"{verb} {reply.status}"] += 1
        if accept and reply.ok:
            self.ride = ride
            await self.serve(ride, offer)

    async def serve(self, ride: str, offer: dict[str, Any]) -> None:
        pickup = offer["pickup"]
        dropoff = offer.get("dropoff") or pickup  # None: erased meanwhile
        arrive = self.moves.go((pickup["lat"], pickup["lng"]), time.monotonic(), self.w.metres_s())
        if not await self.reach(arrive, ride):
            return
        if not (await self.step(ride, "arrived", arrive)).ok:
            self.leave(ride)
            return
        boarded = time.monotonic() + self.w.config.boarding_s
        self.changed.clear()
        while time.monotonic() < boarded and ride not in self.gone:
            await sleep_until(boarded, self.changed)
            self.changed.clear()
        if ride in self.gone or not (await self.step(ride, "start", boarded)).ok:
            self.leave(ride)
            return
        self.on_trip = True
        to = (dropoff["lat"], dropoff["lng"])
        arrive = self.moves.go(to, time.monotonic(), self.w.metres_s())
        await sleep_until(arrive, self.w.finishing)
        await self.finish(ride, min(arrive, time.monotonic()))

    async def reach(self, arrive: float, ride: str) -> bool:
        """Drive on until ``arrive``; False if the ride went meanwhile (cancelled)."""
        while time.monotonic() < arrive and ride not in self.gone:
            self.changed.clear()
            await sleep_until(arrive, self.changed)
        if ride in self.gone:
            self.leave(ride)
            return False
        return True

    def leave(self, ride: str) -> None:
        """The ride is over for this driver (ended, or gone): stop where it is."""
        self.moves.stop(time.monotonic())
        if self.ride == ride:
            self.ride, self.on_trip = None, False

    async def step(self, ride: str, verb: str, planned: float) -> Reply:
        reply = await self.act(f"POST /rides/{{id}}/{verb}", f"/rides/{ride}/{verb}", planned)
        self.w.drivers_did[f"{verb} {reply.status}"] += 1
        return reply

    async def finish(self, ride: str, planned: float) -> None:
        await self.step(ride, "complete", planned)
        self.leave(ride)

    async def serve_rest(self) -> None:
        """At the end: a trip in progress ends at once (its rider is dropped here)."""
        if self.ride is not None and self.on_trip:
            await self.finish(self.ride, time.monotonic())

    # -- fixes -------------------------------------------------------------------------------

    async def pings(self) -> None:
        """Every ``ping_every_s``, the fixes of each second since the last batch. Closed
        loop: the next batch waits for the last answer (a missed send's fixes go in the
        next); open loop: each batch goes at its planned time."""
        cfg = self.w.config
        every = cfg.ping_every_s
        rng = self.w.streams.rng("ping phase", self.index)
        planned = time.monotonic() + rng.uniform(0, every)
        while not self.w.finishing.is_set():
            await sleep_until(planned, self.w.finishing)
            if self.w.finishing.is_set():
                return
            send = self.send_fixes(planned, every)
            if cfg.open_loop:
                task = asyncio.ensure_future(send)
                self.pending.add(task)
                task.add_done_callback(self.pending.discard)
            else:
                await send
            planned += every
            now = time.monotonic()
            if planned < now and not cfg.open_loop:
                planned += ((now - planned) // every) * every  # the latest missed send

    async def send_fixes(self, planned: float, every: float) -> Reply:
        mono, wall = time.monotonic(), time.time()
        fixes = []
        for k in range(max(1, round(every)) - 1, -1, -1):
            lat, lng = self.moves.at(planned - k)
            at = datetime.fromtimestamp(wall - (mono - (planned - k)), UTC)
            fixes.append({"lat": round(lat, 6), "lng": round(lng, 6), "at": at.isoformat()})
        token = await self.w.accounts.token(self.account)
        return await self.w.client.call(
            "POST", "POST /drivers/{id}/locations", self.path + "/locations",
            planned_at=planned, json={"pings": fixes}, token=token, repeatable=True,
        )  # fmt: skip
