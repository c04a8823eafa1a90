"""The simulation loop: riders request, drivers move, ping and answer offers.

Time is simulated (one tick a second by default), so a 30-minute run finishes in seconds
and is reproducible from its seed. The engine is only reached through its transport and
the events it commits, exactly as an app would see it.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Recording

from dispatch.domain.driver import Driver
from dispatch.domain.ids import new_id, shard_of
from dispatch.domain.ride import RIDE_ENDINGS, Ride
from dispatch.invariants import InvariantChecker
from dispatch.log import LogEvent, decode
from dispatch.markets import MarketMap
from dispatch.messages import Ping
from dispatch.ports import CommandBus
from dispatch.simulator.agents import BUSY, Phase, SimDriver, SimRide
from dispatch.simulator.city import City
from dispatch.simulator.clock import SimClock
from dispatch.simulator.report import SimReport
from schemas import commands as c
from schemas.common import LatLng


@dataclass(frozen=True)
class SimConfig:
    drivers: int = 2_000
    minutes: float = 30.0
    seed: int = 7
    demand_per_min: float | None = None  # default: 7.5% of the drivers a minute
    riders: int | None = None  # default: 3 per driver
    ping_interval_s: int = 4
    tick_s: float = 1.0
    accept_probability: float = 0.85
    cancel_probability: float = 0.05
    response_delay_s: tuple[float, float] = (2.0, 8.0)
    boarding_s: float = 30.0
    trip_mean_m: float = 4_000.0
    speed_kmh: float = 25.0
    road_factor: float = 1.35
    strategy: str = "greedy"  # for the report; the engine's settings choose the strategy
    id_salt: str = ""  # makes ids differ between runs that share a log (Kafka)

    @property
    def demand(self) -> float:
        return self.demand_per_min if self.demand_per_min is not None else self.drivers * 0.075


Action = tuple[str, Any, int]


class Simulation:
    def __init__(
        self,
        config: SimConfig,
        transport: CommandBus,
        step: Callable[[list[str]], list[c.Outcome]],
        clock: SimClock,
        markets: MarketMap,
    ) -> None:
        self.cfg, self.transport, self.step, self.clock, self.markets = (
            config,
            transport,
            step,
            clock,
            markets,
        )
        self.rng = random.Random(config.seed)
        self.id_rng = random.Random(f"{config.seed}{config.id_salt}")
        self.sent: list[str] = []
        self.city = City(rng=random.Random(config.seed + 1))
        self.drivers: dict[UUID, SimDriver] = {}
        self._by_phase: dict[int, list[SimDriver]] = {}
        self.free_riders: list[UUID] = []
        self.rides: dict[UUID, SimRide] = {}
        self.checker = InvariantChecker()
        self.outcomes: Counter[str] = Counter()
        self._queue: list[tuple[float, int, Action]] = []
        self._seq = 0
        self._busy_samples: list[float] = []
        self._events = 0
        self._s_per_m = config.road_factor / (config.speed_kmh / 3.6)

    # -- plumbing -------------------------------------------------------------------------
    def on_commit(self, shard: int, recordings: Sequence[Recording[UUID]]) -> None:
        """Embedded: the worker hands over what it just committed."""
        for recording in recordings:
            self.on_event(decode(recording.notification, shard))

    def _step(self) -> None:
        """Let the engine take the tick's commands and pings; count their outcomes."""
        sent, self.sent = self.sent, []
        for outcome in self.step(sent):
            self.outcomes["accepted" if outcome.accepted else outcome.code] += 1

    def _send(self, command: Any) -> None:
        self._seq += 1
        now = datetime.fromtimestamp(self.clock.now, UTC)
        envelope = c.CommandEnvelope(
            command_id=f"sim-{self.cfg.seed}{self.cfg.id_salt}-{self._seq}",
            issued_at=now,
            command=command,
        )
        self.sent.append(envelope.command_id)
        self.transport.send_command(envelope)

    def _schedule(self, delay_s: float, action: str, subject: Any, epoch: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (self.clock.now + delay_s, self._seq, (action, subject, epoch)))

    def _travel_s(self, a: tuple[float, float], b: tuple[float, float]) -> float:
        return self.city.distance_m(a, b) * self._s_per_m

    # -- set-up ---------------------------------------------------------------------------
    def populate(self) -> None:
        cfg, rng, city = self.cfg, self.rng, self.city
        for i in range(cfg.drivers):
            lat, lng = city.demand_point(rng, 0.5)
            driver_id = new_id(self.markets.shard_for(lat, lng), self.id_rng)
            d = SimDriver(driver_id, lat, lng, ping_phase=i % cfg.ping_interval_s)
            self._by_phase.setdefault(d.ping_phase, []).append(d)
            d.head_to(lat, lng, self.clock.now, 0.0)
            self.drivers[driver_id] = d
            self._send(c.RegisterDriver(driver_id=driver_id, name=f"driver {i}"))
            self._send(c.GoOnline(driver_id=driver_id))
        for i in range(cfg.riders if cfg.riders is not None else cfg.drivers * 3):
            lat, lng = city.uniform(rng)
            rider_id = new_id(self.markets.shard_for(lat, lng), self.id_rng)
            self.free_riders.append(rider_id)
            self._send(c.RegisterRider(rider_id=rider_id, name=f"rider {i}"))
        self._step()

    # -- the loop -------------------------------------------------------------------------
    def run(
        self,
        progress: Callable[[float], None] | None = None,
        on_tick: Callable[[float], None] | None = None,
    ) -> SimReport:
        """Run to the end; ``on_tick(now)`` is called after each tick's batch is committed."""
        started = time.perf_counter()
        self.populate()
        ticks = int(self.cfg.minutes * 60 / self.cfg.tick_s)
        for tick in range(ticks):
            self.clock.now += self.cfg.tick_s
            self._arrivals()
            self._due_actions()
            self._pings(tick)
            self._step()
            if tick % 10 == 0:  # utilisation sampled every 10 ticks
                busy = sum(1 for d in self.drivers.values() if d.phase in BUSY)
                self._busy_samples.append(busy / max(1, len(self.drivers)))
            if on_tick is not None:
                on_tick(self.clock.now)
            if progress is not None and tick % 60 == 0:
                progress(self.cfg.tick_s * 60)
        self.checker.finish()
        return SimReport.build(self, time.perf_counter() - started, self.cfg.strategy)

    def _arrivals(self) -> None:
        lam = self.cfg.demand / 60.0 * self.cfg.tick_s
        for _ in range(_poisson(self.rng, lam)):
            if not self.free_riders:
                return
            rider_id = self.free_riders.pop(self.rng.randrange(len(self.free_riders)))
            pickup = self.city.demand_point(self.rng)
            dropoff = self.city.near(self.rng, *pickup, self.cfg.trip_mean_m)
            ride_id = new_id(shard_of(rider_id), self.id_rng)
            self.rides[ride_id] = SimRide(ride_id, rider_id, pickup, dropoff, self.clock.now)
            self._send(
                c.RequestRide(
                    ride_id=ride_id,
                    rider_id=rider_id,
                    pickup=LatLng(lat=pickup[0], lng=pickup[1]),
                    dropoff=LatLng(lat=dropoff[0], lng=dropoff[1]),
                )
            )
            if self.rng.random() < self.cfg.cancel_probability:
                self._schedule(self.rng.uniform(10, 120), "cancel", ride_id)

    def _pings(self, tick: int) -> None:
        phase, now = tick % self.cfg.ping_interval_s, self.clock.now
        pings = []
        for d in self._by_phase.get(phase, ()):  # few drivers: some phases have none
            if d.phase is Phase.IDLE and now >= d.t1:
                target = self.city.near(self.rng, *d.position(now), 800.0)
                d.head_to(*target, now, self._travel_s(d.position(now), target) * 2)
            lat, lng = d.position(now)
            pings.append(Ping(d.driver_id, lat, lng, now))
        self.transport.send_pings(pings)

    def _due_actions(self) -> None:
        while self._queue and self._queue[0][0] <= self.clock.now:
            _, _, (action, subject, epoch) = heapq.heappop(self._queue)
            if action == "cancel":
                ride = self.rides[subject]
                if ride.outcome is None:
                    self._send(
                        c.CancelRide(
                            ride_id=subject, rider_id=ride.rider_id, reason="changed my mind"
                        )
                    )
                continue
            d = self.drivers[subject]
            if d.epoch != epoch or d.ride_id is None:
                continue
            ride_id = d.ride_id
            if action == "respond":
                if self.rng.random() < self.cfg.accept_probability:
                    self._send(c.AcceptOffer(ride_id=ride_id, driver_id=d.driver_id))
                else:
                    self._send(c.DeclineOffer(ride_id=ride_id, driver_id=d.driver_id))
            elif action == "arrive":
                self._send(c.MarkArrived(ride_id=ride_id, driver_id=d.driver_id))
                self._schedule(self.cfg.boarding_s, "start", d.driver_id, d.epoch)
            elif action == "start":
                self._send(c.StartTrip(ride_id=ride_id, driver_id=d.driver_id))
            elif action == "complete":
                self._send(c.CompleteTrip(ride_id=ride_id, driver_id=d.driver_id))

    # -- reactions to committed events ------------------------------------------------------
    def on_event(self, e: LogEvent) -> None:
        """React to one committed event, as a driver's or rider's app would."""
        self._events += 1
        self.checker.check(e)
        topic, now, data = e.topic, self.clock.now, e.data
        if topic == Driver.OfferReceived.TOPIC:
            d = self.drivers.get(UUID(e.aggregate_id))
            if d is not None:
                epoch = d.change_plan(Phase.OFFERED, UUID(data["ride_id"]))
                delay = self.rng.uniform(*self.cfg.response_delay_s)
                self._schedule(delay, "respond", d.driver_id, epoch)
            return
        if topic == Driver.OfferClosed.TOPIC or topic == Driver.Released.TOPIC:
            d = self.drivers.get(UUID(e.aggregate_id))
            if d is not None:
                d.change_plan(Phase.IDLE, None)
                d.stop(now)
            return
        ride = self.rides.get(UUID(e.aggregate_id)) if topic.startswith(_RIDE) else None
        if ride is None:
            return
        if topic == Ride.Offered.TOPIC:
            ride.offered_eta_s = data["pickup_eta_s"]
            if ride.first_offer_at is None:
                ride.first_offer_at = e.at
        elif topic == Ride.Accepted.TOPIC:
            if ride.accepted_at is None:
                ride.accepted_at, ride.pickup_eta_s = e.at, ride.offered_eta_s
            d = self.drivers[UUID(data["driver_id"])]
            epoch = d.change_plan(Phase.TO_PICKUP, ride.ride_id)
            travel = self._travel_s(d.position(now), ride.pickup)
            d.head_to(*ride.pickup, now, travel)
            self._schedule(travel, "arrive", d.driver_id, epoch)
        elif topic == Ride.DriverArrived.TOPIC:
            self.drivers[UUID(data["driver_id"])].phase = Phase.AT_PICKUP
        elif topic == Ride.TripStarted.TOPIC:
            d = self.drivers[UUID(data["driver_id"])]
            epoch = d.change_plan(Phase.ON_TRIP, ride.ride_id)
            travel = self._travel_s(ride.pickup, ride.dropoff)
            d.head_to(*ride.dropoff, now, travel)
            self._schedule(travel, "complete", d.driver_id, epoch)
        elif topic in RIDE_ENDINGS:
            ride.outcome = RIDE_ENDINGS[topic]
            self.free_riders.append(ride.rider_id)


_RIDE = "dispatch.Ride."


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method; fine for the small per-tick rates used here."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
