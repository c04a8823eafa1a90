"""The simulation loop: riders request, drivers move, ping and answer offers.

Time is simulated (one tick a second by default), so a 30-minute run finishes in seconds
and is reproducible from its seed. The engine is only reached through its transport and
the events it commits, exactly as an app would see it.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import Recording

from dispatch.domain.driver import Driver, PlanState, fold_plan
from dispatch.domain.errors import OutsideServiceArea
from dispatch.domain.ids import new_id, shard_of
from dispatch.domain.pooling import PICKUP
from dispatch.domain.products import DEFAULT_CATALOG, Catalog
from dispatch.domain.ride import RIDE_ENDINGS, Ride, RideStatus
from dispatch.domain.ride_fare import FareTerms, SurgeSource
from dispatch.domain.rider import Rider
from dispatch.domain.surge import NO_SURGE_TEXT, Surge, recorded_changes
from dispatch.invariants import InvariantChecker
from dispatch.invariants_across import CrossShardChecker
from dispatch.log import LogEvent, decode
from dispatch.markets import MarketMap
from dispatch.messages import FOLLOW_THE_DRIVER, Ping
from dispatch.ports import CommandBus
from dispatch.pricing.desk import terms_for
from dispatch.pricing.rules import FareBook, FareError
from dispatch.privacy import Opener, as_is
from dispatch.roads.routes import RoadRouter, still
from dispatch.simulator.agents import BUSY, Phase, SimDriver, SimRide
from dispatch.simulator.city import DEFAULT_CITY_KM, City
from dispatch.simulator.clock import SimClock
from dispatch.simulator.demand import synthetic_demand
from dispatch.simulator.pooled import TWO_SEATS, Occupancy
from dispatch.simulator.products import (
    ALL_STANDARD,
    DEFAULT_PRODUCT_MIX,
    DEFAULT_VEHICLE_MIX,
    Mix,
    draw,
    fit_mix,
    vehicle_for,
)
from dispatch.simulator.report import SimReport
from dispatch.simulator.results import SAMPLE_EVERY_S, Request, RideRecord, Sample
from dispatch.simulator.roads import RoadLegs
from dispatch.simulator.scheduled import BOOKING_SLACK_S, Booking, plan_bookings
from dispatch.simulator.streams import Streams
from dispatch.simulator.travel import TravelConfig, TravelModel
from projections.surge import SurgeProjection
from schemas import commands as c
from schemas.common import LatLng, VehicleData
from schemas.fares import FareTermsData

if TYPE_CHECKING:
    from dispatch.geofences import Geofences


@dataclass(frozen=True)
class SimConfig:
    drivers: int = 2_000
    minutes: float = 60.0
    seed: int = 7
    demand_per_min: float | None = None  # default: DEFAULT_DEMAND_SHARE of the drivers
    riders: int | None = None  # default: 3 per driver (more are registered when all ride)
    ping_interval_s: int = 4
    tick_s: float = 1.0
    accept_probability: float = 0.85
    cancel_probability: float = 0.05
    response_delay_s: tuple[float, float] = (2.0, 8.0)
    boarding_s: float = 30.0
    trip_mean_m: float = 4_000.0
    # The synthetic city's side (a square; its hot spots spread less when it is smaller
    # than 30 km). A trace's or a road network's city has the size of what it covers.
    city_km: float = DEFAULT_CITY_KM
    speed_kmh: float = 25.0
    road_factor: float = 1.35
    seek_demand_probability: float = 0.6  # an idle driver's next move heads for demand
    driver_pace_sd: float = 0.10
    leg_sd: float = 0.15
    congestion_peak: float = 0.25
    start_hour: float = 8.0
    drain_minutes: float = 60.0  # after the last request, until every ride has ended
    warmup_minutes: float | None = None  # default: two thirds of the run, at most an hour
    strategy: str = "greedy"  # for the report; the engine's settings choose the strategy
    city_shards: int = 1  # for the report; the settings' market split does the splitting
    id_salt: str = ""  # makes ids differ between runs that share a log (Kafka)
    # Drivers drive routes over this road network (None: straight lines on a square).
    road_network: Path | None = None
    eta: str = "straight"  # for the report: what the matcher ranks by (the settings choose)
    # The product each driver's vehicle is registered for, and each request asks for
    # (``products.py``): shares by product.
    vehicle_mix: Mix = DEFAULT_VEHICLE_MIX
    product_mix: Mix = DEFAULT_PRODUCT_MIX
    # With places that keep a queue (DISPATCH_MARKETS): the share of the synthetic requests
    # picked up inside them, and of idle drivers' cruises that head for one (a driver idle
    # inside such a place waits there, in its queue).
    place_demand: float = 0.1
    # What idle drivers do with the repositioning hints the shards send them (the engine's
    # DISPATCH_HINT_EVERY_S makes them): "follow" (head for the hinted cell), "ignore", or
    # "off" (the engine sends none: the simulate command turns them off).
    hints: str = "off"
    # The share of the requests booked ahead instead of requested at their time
    # (``scheduled.py``), and the engine's least and most lead time for a booking (the
    # settings' DISPATCH_SCHEDULED_MIN_LEAD_S and _HORIZON_S: the CLI passes them).
    scheduled_share: float = 0.0
    scheduled_min_lead_s: float = 900.0
    scheduled_horizon_s: float = 7 * 86_400.0
    # The share of the immediate requests that ask to share (``pooled.py``), and whether
    # the engine pools them (DISPATCH_POOL): where it does not, the same requests are sent
    # as single rides (a paired run without pooling).
    shared_share: float = 0.0
    pooling: bool = False

    @property
    def demand(self) -> float:
        if self.demand_per_min is not None:
            return self.demand_per_min
        return self.drivers * DEFAULT_DEMAND_SHARE

    @property
    def warmup_s(self) -> float:
        if self.warmup_minutes is not None:
            return self.warmup_minutes * 60.0
        return min(DEFAULT_WARMUP_MAX_S, self.minutes * 60.0 * 2 / 3)

    @property
    def travel(self) -> TravelConfig:
        return TravelConfig(
            speed_kmh=self.speed_kmh,
            road_factor=self.road_factor,
            driver_pace_sd=self.driver_pace_sd,
            leg_sd=self.leg_sd,
            congestion_peak=self.congestion_peak,
            start_hour=self.start_hour,
        )


DEFAULT_DEMAND_SHARE = 0.04  # requests a minute per driver: a balanced market (SIMULATION.md)
DEFAULT_WARMUP_MAX_S = 3_600.0
Action = tuple[str, Any, int]

# The scenario the throughput benchmarks were first measured with (before issue #13): no
# warm-up or drain, drivers take exactly the estimate and wander; with demand at 7.5 % of
# the drivers a minute. Kept so that their figures stay comparable across versions.
THROUGHPUT_SCENARIO: dict[str, Any] = {
    "warmup_minutes": 0.0,
    "drain_minutes": 0.0,
    "driver_pace_sd": 0.0,
    "leg_sd": 0.0,
    "congestion_peak": 0.0,
    "seek_demand_probability": 0.0,
    "vehicle_mix": ALL_STANDARD,
    "product_mix": ALL_STANDARD,
}


class Simulation:
    def __init__(
        self,
        config: SimConfig,
        transport: CommandBus,
        step: Callable[[list[str]], list[c.Outcome]],
        clock: SimClock,
        markets: MarketMap,
        demand: Sequence[Request] | None = None,
        router: RoadRouter | None = None,
        fares: FareBook | None = None,
        catalog: Catalog = DEFAULT_CATALOG,
        places: Geofences | None = None,
        pool_stats: Callable[[], dict[str, Any]] | None = None,
        open_personal: Opener = as_is,
    ) -> None:
        """``pool_stats``: the engine's pooled windows' figures, when it can tell them
        (embedded). ``catalog``: the products in force (the mixes keep only its products).
        ``places``: the markets' geofenced places (those with a queue draw a share of the
        demand and of idle drivers: ``config.place_demand``).
        ``demand``: the requests to make (a trace); by default the synthetic city's.
        ``router``: drivers drive routes over its road network (config.road_network's),
        the city is placed on it and every point snapped to a road node. ``fares``: the
        rules that price each ride (standard, without a quote), as the API would; None:
        rides are not priced."""
        self.fares = fares
        self.pool_stats = pool_stats
        # how a sealed field of an event is read: a hint's centre (docs/PRIVACY.md)
        self.open_personal = open_personal
        # riders aboard each vehicle over time (set again when the run starts)
        self.occupancy = Occupancy(0.0, 0.0)
        self.catalog = catalog
        self.vehicle_mix = fit_mix(config.vehicle_mix, catalog)
        self.product_mix = fit_mix(config.product_mix, catalog)
        self.cfg, self.transport, self.step, self.clock, self.markets = (
            config,
            transport,
            step,
            clock,
            markets,
        )
        self.streams = Streams(config.seed)
        self.id_rng = random.Random(f"{config.seed}{config.id_salt}")
        self.travel = TravelModel(config.travel, self.streams)
        self.sent: list[str] = []
        self.roads = RoadLegs(router, str(config.road_network or "")) if router else None
        points = [r.pickup for r in demand] if demand else None
        if points:
            self.city = City.covering(points)
        elif self.roads is not None:
            self.city = self.roads.city(random.Random(config.seed + 1))
        else:
            self.city = City.sized(config.city_km, random.Random(config.seed + 1))
        self.demand = list(
            demand
            if demand is not None
            else synthetic_demand(
                self.city,
                config.demand,
                config.minutes,
                self.streams,
                config.trip_mean_m,
                self._served if self.markets.service_areas else None,
            )
        )
        self.places = places
        self._queue_places = places.with_queue() if places is not None else []
        if self._queue_places and demand is None and config.place_demand > 0:
            self.demand = self._to_places(self.demand)
        if self.roads is not None:
            self.demand = self.roads.snap_requests(self.demand)
        # The requests booked ahead (by index), in the order they are booked.
        self.bookings = plan_bookings(
            self.demand, config.scheduled_share, self.streams, config.scheduled_min_lead_s,
            config.scheduled_horizon_s, max(BOOKING_SLACK_S, config.tick_s),
        )  # fmt: skip
        self._to_book = deque(sorted(self.bookings.values(), key=lambda b: (b.booked_s, b.index)))
        self.place_entries = 0  # drivers' entries into places, as the shards recorded them
        self.hints_received = 0  # repositioning hints the shards recorded
        self.hints_followed = 0  # those an idle driver set out for
        self.demand_sent: list[Request] = []
        self.drivers: dict[UUID, SimDriver] = {}
        self._by_phase: dict[int, list[SimDriver]] = {}
        self.free_riders: dict[int, deque[UUID]] = {}
        self.rides: dict[UUID, SimRide] = {}
        self._waiting: set[UUID] = set()  # requested, no driver yet, not ended
        self._open: set[UUID] = set()  # requested, not ended
        self._booked: set[UUID] = set()  # scheduled, dispatch not started, not ended
        self.samples: list[Sample] = []
        self.distance_m: dict[str, float] = defaultdict(float)  # after warm-up, by leg
        self.checker = InvariantChecker()  # the run's violations, from every shard
        # Each shard's streams are checked on their own (a driver handed off has one in
        # each shard that served it), as replay verify does.
        self._shard_checkers: dict[int, InvariantChecker] = defaultdict(InvariantChecker)
        self.across = CrossShardChecker()  # what the shards told one another
        self.cross_shard_matches = 0  # rides accepted by a driver another shard owns
        self.handoffs = 0  # drivers handed from one shard to another
        # Surge as the shards recorded it (the API's own fold): a request's multiplier.
        self.surge_changes = 0
        self._surge = SurgeProjection()
        self._surge_view = self._surge.initial()
        self.serving: dict[UUID, int] = {}  # drivers served away from their home shard
        # driver commands not answered yet, to follow their driver if it moved
        self._envelopes: dict[str, c.CommandEnvelope] = {}
        self._requests: dict[str, UUID] = {}  # ride requests not answered yet, by command id
        self._tenures: dict[UUID, int] = {}  # the latest tenure seen of drivers that moved
        self.outcomes: Counter[str] = Counter()
        self._queue: list[tuple[float, int, Action]] = []
        self._seq = 0
        self._busy_samples: list[float] = []
        self._events = 0
        self._riders = 0
        self.started_at = clock.now
        self.report: SimReport | None = None  # once run
        self.draining = False  # after the last request

    # -- plumbing -------------------------------------------------------------------------
    def on_commit(self, shard: int, recordings: Sequence[Recording[UUID]]) -> None:
        """Embedded: the worker hands over what it just committed."""
        for recording in recordings:
            self.on_event(decode(recording.notification, shard))

    def _step(self) -> None:
        """Let the engine take the tick's commands and pings; count their outcomes."""
        sent, self.sent = self.sent, []
        for outcome in self.step(sent):
            # a command followed to the shard serving its driver counts its moved answer too
            self.outcomes["accepted" if outcome.accepted else outcome.code] += 1
            ride_id = self._requests.pop(outcome.command_id, None)
            if ride_id is not None and not outcome.accepted:
                self._refused(ride_id)
            envelope = self._envelopes.pop(outcome.command_id, None)
            if envelope is None or outcome.code not in ("moved", "not_here_yet"):
                continue
            # the driver was handed off: send it on to the shard serving it (next tick)
            shard = outcome.moved_to if outcome.code == "moved" else envelope.shard
            if shard is not None:
                self._dispatch(envelope.model_copy(update={"shard": shard}))

    def _send(self, command: Any) -> str:
        """Send ``command`` (on the tick's step); returns its command id."""
        self._seq += 1
        now = datetime.fromtimestamp(self.clock.now, UTC)
        driver = command.driver_id if isinstance(command, FOLLOW_THE_DRIVER) else None
        envelope = c.CommandEnvelope(
            command_id=f"sim-{self.cfg.seed}{self.cfg.id_salt}-{self._seq}",
            issued_at=now,
            command=command,
            shard=self.serving.get(driver) if driver is not None else None,
        )
        self._dispatch(envelope)
        return envelope.command_id

    def _dispatch(self, envelope: c.CommandEnvelope) -> None:
        self.sent.append(envelope.command_id)
        if isinstance(envelope.command, FOLLOW_THE_DRIVER):
            self._envelopes[envelope.command_id] = envelope
        self.transport.send_command(envelope)

    def _refused(self, ride_id: UUID) -> None:
        """The engine refused a request (say, a shared one where it does not pool): the
        ride ends there (``refused``), and its rider may ask again."""
        ride = self.rides[ride_id]
        if ride.outcome is None:
            ride.outcome, ride.ended_at = REFUSED, self.clock.now
            for kept in (self._waiting, self._booked, self._open):
                kept.discard(ride_id)
            self.free_riders.setdefault(shard_of(ride.rider_id), deque()).append(ride.rider_id)

    def _schedule(self, delay_s: float, action: str, subject: Any, epoch: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (self.clock.now + delay_s, self._seq, (action, subject, epoch)))

    @property
    def finished(self) -> SimReport:
        """The report of the run (``run`` first)."""
        if self.report is None:
            raise RuntimeError("the simulation has not run yet")
        return self.report

    @property
    def elapsed_s(self) -> float:
        return self.clock.now - self.started_at

    @property
    def warmed_up(self) -> bool:
        return self.elapsed_s >= self.cfg.warmup_s

    def _move(self, d: SimDriver, to: tuple[float, float], leg: str, travel_s: float) -> None:
        """Send ``d`` towards ``to``; what it drove of its previous leg is counted."""
        self._count_distance(d)
        d.head_to(*to, self.clock.now, travel_s)
        d.leg = leg

    def _count_distance(self, d: SimDriver) -> None:
        """Add the part of ``d``'s current leg driven between the end of warm-up and the
        last request (the period every figure covers), up to now: along its route on a road
        network, else the straight line."""
        lo = max(d.t0, self.started_at + self.cfg.warmup_s)
        hi = min(self.clock.now, self.started_at + self.cfg.minutes * 60)
        if hi > lo:
            if d.route is not None:
                self.distance_m[d.leg] += d.driven_m(lo, hi)
            else:
                self.distance_m[d.leg] += self.city.distance_m(d.position(lo), d.position(hi))

    def _stop(self, d: SimDriver) -> None:
        """``d`` stops: where it is, or on a road network at the end of the street it is
        on (driven empty, as cruising)."""
        if self.roads is None:
            self._move(d, d.position(self.clock.now), "idle", 0.0)
            return
        now = self.clock.now
        self._count_distance(d)
        ahead = self.roads.corner(d, now)
        if ahead is None:
            d.drive(still(*d.position(now)), now, 0.0)
            d.leg = "idle"
            return
        travel = self.travel.realised_from_s(
            ahead.seconds, d.index, self.elapsed_s, "corner", d.index, d.epoch
        )
        d.drive(ahead, now, travel)
        d.leg = "cruise"

    def _go(
        self, d: SimDriver, to: tuple[float, float], leg: str, key: tuple[object, ...],
        slower: float = 1.0,
    ) -> float:  # fmt: skip
        """Send ``d`` to ``to`` on ``leg`` (a straight line, or a route over the roads);
        the leg takes its free-flow time x the driver's pace x its luck (keyed by ``key``)
        x congestion x ``slower``. Returns that time."""
        now = self.clock.now
        if self.roads is None:
            metres = self.city.distance_m(d.position(now), to)
            travel = self.travel.realised_s(metres, d.index, self.elapsed_s, *key) * slower
            self._move(d, to, leg, travel)
            return travel
        route = self.roads.leg(d, now, to)
        travel = self.travel.realised_from_s(route.seconds, d.index, self.elapsed_s, *key)
        travel *= slower
        self._count_distance(d)
        d.drive(route, now, travel)
        d.leg = leg
        return travel

    def _leg_m(self, d: SimDriver) -> float:
        """The length of the leg ``d`` has just set out on: its route's, or the straight
        line's (the distance figures count a straight leg so too)."""
        if d.route is not None:
            return d.route.metres
        return self.city.distance_m((d.lat, d.lng), (d.to_lat, d.to_lng))

    # -- set-up ---------------------------------------------------------------------------
    def populate(self) -> None:
        cfg, city = self.cfg, self.city
        rng = self.streams.rng("drivers")
        for i in range(cfg.drivers):
            lat, lng = city.demand_point(rng, 0.5)
            if self.roads is not None:
                lat, lng = self.roads.snap((lat, lng))
            driver_id = new_id(self.markets.shard_for(lat, lng), self.id_rng)
            d = SimDriver(driver_id, i, lat, lng, ping_phase=i % cfg.ping_interval_s)
            self._by_phase.setdefault(d.ping_phase, []).append(d)
            if self.roads is not None:
                d.drive(still(lat, lng), self.clock.now, 0.0)
            else:
                d.head_to(lat, lng, self.clock.now, 0.0)
            self.drivers[driver_id] = d
            product = draw(self.vehicle_mix, self.streams.rng("vehicle", i))
            vehicle = vehicle_for(product, self.catalog)
            self._send(c.RegisterDriver(driver_id=driver_id, name=f"driver {i}",
                                        vehicle=VehicleData.of(vehicle)))  # fmt: skip
            self._send(c.GoOnline(driver_id=driver_id))
        rng = self.streams.rng("riders")
        for _ in range(cfg.riders if cfg.riders is not None else cfg.drivers * 3):
            self._new_rider(self.markets.shard_for(*city.uniform(rng)))
        self._step()

    def _new_rider(self, shard: int) -> UUID:
        rider_id = new_id(shard, self.id_rng)
        self._send(c.RegisterRider(rider_id=rider_id, name=f"rider {self._riders}"))
        self._riders += 1
        self.free_riders.setdefault(shard, deque()).append(rider_id)
        return rider_id

    # -- the loop -------------------------------------------------------------------------
    def run(
        self,
        progress: Callable[[float], None] | None = None,
        on_tick: Callable[[float], None] | None = None,
    ) -> SimReport:
        """Run to the end; ``on_tick(now)`` is called after each tick's batch is committed."""
        started = time.perf_counter()
        self.populate()
        self.started_at = self.clock.now
        self.occupancy = Occupancy(self.started_at + self.cfg.warmup_s,
                                   self.started_at + self.cfg.minutes * 60)  # fmt: skip
        ticks = int(self.cfg.minutes * 60 / self.cfg.tick_s)
        for tick in range(ticks):
            self._tick(tick)
            if tick % 10 == 0 and self.warmed_up:  # utilisation sampled every 10 ticks
                busy = sum(1 for d in self.drivers.values() if d.phase in BUSY)
                self._busy_samples.append(busy / max(1, len(self.drivers)))
            if self.elapsed_s >= SAMPLE_EVERY_S * (len(self.samples) + 1):
                self.samples.append(self._sample())
            if on_tick is not None:
                on_tick(self.clock.now)
            if progress is not None and tick % 60 == 0:
                progress(self.cfg.tick_s * 60)
        self._drain(ticks, on_tick)
        for d in self.drivers.values():
            self._count_distance(d)
        self.occupancy.finish(self.clock.now)
        for shard in sorted(self._shard_checkers):
            self.checker.violations.extend(self._shard_checkers[shard].finish())
        self.checker.violations.extend(self.across.finish())
        self.report = SimReport.build(self, time.perf_counter() - started, self.cfg.strategy)
        return self.report

    def _drain(self, tick: int, on_tick: Callable[[float], None] | None) -> None:
        """No new requests: go on until every ride has ended (at most ``drain_minutes``).
        Idle drivers stay put, and while no ride waits for a driver the clock jumps to the
        next thing a driver or rider does (arrive, start, complete, cancel)."""
        self.draining = True
        end = self.clock.now + self.cfg.drain_minutes * 60
        while self._open and self.clock.now < end:
            if not self._waiting and not self._booked and self._queue:
                steps = int((min(self._queue[0][0], end) - self.clock.now) / self.cfg.tick_s)
                self.clock.now += max(0, steps - 1) * self.cfg.tick_s
            self._tick(tick)
            tick += 1
            if on_tick is not None:
                on_tick(self.clock.now)

    def _tick(self, tick: int) -> None:
        self.clock.now += self.cfg.tick_s
        self._arrivals()
        self._due_actions()
        self._pings(tick)
        self._step()

    def _sample(self) -> Sample:
        phases = Counter(d.phase for d in self.drivers.values())
        ends = Counter(r.outcome for r in self.rides.values())
        return Sample(
            t_s=round(self.elapsed_s, 3),
            requests=len(self.rides),
            waiting=len(self._waiting),
            idle_drivers=phases[Phase.IDLE],
            offered_drivers=phases[Phase.OFFERED],
            busy_drivers=sum(phases[p] for p in BUSY),
            served=sum(1 for r in self.rides.values() if r.accepted_at is not None),
            completed=ends[RideStatus.COMPLETED],
            cancelled=ends[RideStatus.CANCELLED],
            expired=ends[RideStatus.EXPIRED],
        )

    def _arrivals(self) -> None:
        elapsed = self.elapsed_s
        if elapsed > self.cfg.minutes * 60:  # draining
            return
        while self._to_book and self._to_book[0].booked_s <= elapsed:
            booking = self._to_book.popleft()
            self._request(booking.index, self.demand[booking.index], booking)
        while len(self.demand_sent) < len(self.demand):
            index = len(self.demand_sent)
            request = self.demand[index]
            if request.at_s > elapsed:
                return
            if index not in self.bookings:  # a booked one was sent when it was booked
                self._request(index, request)
            self.demand_sent.append(request)

    def _to_places(self, requests: list[Request]) -> list[Request]:
        """A ``place_demand`` share of the requests picked up inside a place with a queue
        instead (drawn from a stream of its own: the rest of the demand stays as it was)."""
        assert self.places is not None
        rng = self.streams.rng("place-demand")
        out = []
        for r in requests:
            if rng.random() < self.cfg.place_demand:
                pickup = self.places.point_in(rng.choice(self._queue_places), rng)
                r = Request(r.at_s, pickup, r.dropoff)
            out.append(r)
        return out

    def _served(self, pickup: tuple[float, float], dropoff: tuple[float, float]) -> bool:
        """Whether the markets' service areas take a trip (docs/MARKETPLACE.md)."""
        try:
            self.markets.check_stops(pickup, dropoff)
        except OutsideServiceArea:
            return False
        return True

    def _request(self, index: int, request: Request, booking: Booking | None = None) -> None:
        """Request the ride now, or with ``booking`` book it for the request's time (priced
        at surge 1, as the API prices a booking: the surge of the moment says nothing of
        its time)."""
        shard = self.markets.shard_for(*request.pickup)
        # The rider lives anywhere in the city (its home shard may not be the pickup's: the
        # request then takes its lock at home and opens the ride at the pickup's shard); a
        # shared ride's rider lives in its pickup's shard (pooling stays within a shard).
        pick = self.streams.rng("shared", index)
        shared = booking is None and pick.random() < self.cfg.shared_share
        seats = 2 if shared and pick.random() < TWO_SEATS else 1
        home = self.markets.shard_for(*self.city.uniform(self.streams.rng("rider-home", index)))
        if shared:  # pooled or not (the same rider either way: the runs pair)
            home = shard
        if not self.free_riders.get(home):  # every rider of the place rides: one signs up
            self._new_rider(home)
        rider_id = self.free_riders[home].popleft()
        ride_id = new_id(shard, self.streams.rng("ride-id", self.cfg.id_salt, index))
        pickup, dropoff = request.pickup, request.dropoff
        surge_text, source = (NO_SURGE_TEXT, None) if booking else self._surge_view.reading(*pickup)
        scheduled_at = None if booking is None else self.started_at + booking.pickup_s
        surge = float(surge_text)
        product = draw(self.product_mix, self.streams.rng("product", index))
        place = self.places.queue_place(*pickup) if self.places and self._queue_places else None
        self.rides[ride_id] = SimRide(
            index, ride_id, rider_id, pickup, dropoff, self.clock.now, surge=surge,
            product=product, place=place, scheduled_at=scheduled_at, shared=shared, seats=seats,
        )  # fmt: skip
        (self._waiting if booking is None else self._booked).add(ride_id)
        self._open.add(ride_id)
        terms = self._terms(pickup, product, Decimal(surge_text), source)
        command_id = self._send(
            c.RequestRide(
                ride_id=ride_id,
                rider_id=rider_id,
                pickup=LatLng(lat=pickup[0], lng=pickup[1]),
                dropoff=LatLng(lat=dropoff[0], lng=dropoff[1]),
                fare=None if terms is None else FareTermsData.model_validate(terms.to_data()),
                product=product,
                scheduled_for=None
                if scheduled_at is None
                else datetime.fromtimestamp(scheduled_at, UTC),
                shared=shared and self.cfg.pooling,
                seats=seats if shared and self.cfg.pooling else 1,
            )
        )
        self._requests[command_id] = ride_id
        rng = self.streams.rng("rider", index)
        if rng.random() < self.cfg.cancel_probability:
            # a booking is cancelled some time before its time (a rider's change of plan)
            ahead = 0.0 if scheduled_at is None else scheduled_at - self.clock.now
            self._schedule(rng.uniform(10, 120) if booking is None else rng.uniform(10, ahead),
                           "cancel", ride_id)  # fmt: skip

    def _terms(
        self,
        pickup: tuple[float, float],
        product: str,
        surge: Decimal,
        source: SurgeSource | None,
    ) -> FareTerms | None:
        """The simulated ride's terms (its product, the rules in force, the pickup cell's
        ``surge`` when requested and the event that set it, as the API prices a ride
        without a quote), or None where the
        rules cannot price it: the simulator's demand is not refused, as the API refuses a
        rider's request, so such a ride is not priced (it still carries its product, and is
        offered only to vehicles that serve it)."""
        if not self.fares:
            return None
        try:
            return terms_for(self.fares, self.markets, pickup, product, self.cfg.road_factor,
                             surge, source)  # fmt: skip
        except FareError:
            return None

    def _pings(self, tick: int) -> None:
        phase, now = tick % self.cfg.ping_interval_s, self.clock.now
        pings = []
        # nobody needs an idle driver now
        quiet = self.draining and not self._waiting and not self._booked
        for d in self._by_phase.get(phase, ()):  # few drivers: some phases have none
            if d.phase is Phase.IDLE:
                if quiet:  # draining: idle drivers neither move on nor ping
                    continue
                if not self.draining and now >= d.t1:
                    self._cruise(d)
            lat, lng = d.position(now)
            pings.append(Ping(d.driver_id, lat, lng, now))
        self.transport.send_pings(pings)

    def _cruise(self, d: SimDriver) -> None:
        """An idle driver moves on, slowly, looking for fares: most often a step towards
        where riders tend to be (a point drawn from the demand), otherwise anywhere nearby.
        Drivers who only wandered would drift away from the hot spots over an hour and
        leave riders waiting next to an idle fleet."""
        rng = self.streams.rng("cruise", d.index, d.cruises)
        d.cruises += 1
        here = d.position(self.clock.now)
        if self._queue_places:
            assert self.places is not None
            if self.places.queue_place(*here) is not None:  # waits in the place's queue
                self._move(d, here, "idle", 0.0)
                return
            if rng.random() < self.cfg.place_demand:
                place = rng.choice(self._queue_places)
                target = self.places.point_in(place, rng)
                if self.roads is not None:
                    target = self.roads.snap(target)
                self._go(d, target, "cruise", ("cruise", d.index, d.cruises))
                return
        if rng.random() < self.cfg.seek_demand_probability:
            target = self.city.step_towards(here, self.city.demand_point(rng), rng, 1_500.0)
        else:
            target = self.city.near(rng, *here, 800.0)
        if self.roads is not None:
            target = self.roads.snap(target)
        self._go(d, target, "cruise", ("cruise", d.index, d.cruises), slower=2.0)

    def _due_actions(self) -> None:
        while self._queue and self._queue[0][0] <= self.clock.now:
            _, _, (action, subject, epoch) = heapq.heappop(self._queue)
            if action == "cancel":
                ride = self.rides[subject]
                # A rider changes their mind while waiting, not once in the car (a trip
                # started cannot be cancelled: the engine would refuse it).
                if ride.outcome is None and ride.started_at is None:
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
                if d.will_accept:
                    self._send(c.AcceptOffer(ride_id=ride_id, driver_id=d.driver_id))
                else:
                    self._send(c.DeclineOffer(ride_id=ride_id, driver_id=d.driver_id))
            elif action == "arrive":
                self._send(c.MarkArrived(ride_id=ride_id, driver_id=d.driver_id))
                # A scheduled ride's rider comes out at the time booked: a driver early
                # waits for it, then for the boarding.
                booked = self.rides.get(ride_id)
                ready = booked.scheduled_at if booked is not None else None
                early = 0.0 if ready is None else max(0.0, ready - self.clock.now)
                self._schedule(early + self.cfg.boarding_s, "start", d.driver_id, d.epoch)
            elif action == "start":
                self._send(c.StartTrip(ride_id=ride_id, driver_id=d.driver_id))
            elif action == "complete":
                self._send(c.CompleteTrip(ride_id=ride_id, driver_id=d.driver_id))

    # -- reactions to committed events ------------------------------------------------------
    def on_event(self, e: LogEvent) -> None:
        """React to one committed event, as a driver's or rider's app would."""
        self._events += 1
        self._shard_checkers[e.shard].check(e)
        self.across.check(e)
        topic, data = e.topic, e.data
        if topic in _SURGE_CHANGED:
            self.surge_changes += sum(1 for _ in recorded_changes(topic, data))
            self._surge_view = self._surge.apply(self._surge_view, e)
            return
        if topic in _PLAN_TOPICS:
            d = self.drivers.get(UUID(e.aggregate_id))
            if d is not None:
                self._plan_moved(d, topic, data, e.at)
        if topic == Driver.EnteredPlace.TOPIC:
            self.place_entries += 1
            return
        if topic == Driver.Hinted.TOPIC:
            self.hints_received += 1
            d = self.drivers.get(UUID(e.aggregate_id))
            if self.cfg.hints != "follow" or d is None or d.phase is not Phase.IDLE:
                return
            lat, lng = (self.open_personal(data[k], k) for k in ("lat", "lng"))  # sealed
            if isinstance(lat, float | int) and isinstance(lng, float | int):  # not erased
                self.hints_followed += 1
                target = (float(lat), float(lng))
                if self.roads is not None:
                    target = self.roads.snap(target)
                self._go(d, target, "cruise", ("hint", d.index, self.hints_followed))
            return
        if topic == Driver.OfferReceived.TOPIC:
            d = self.drivers.get(UUID(e.aggregate_id))
            offered = self.rides.get(UUID(data["ride_id"]))
            if d is not None:
                epoch = d.change_plan(Phase.OFFERED, UUID(data["ride_id"]))
                rng = self.streams.rng("offer", d.index, offered.index if offered else -1)
                d.will_accept = rng.random() < self.cfg.accept_probability
                self._schedule(
                    rng.uniform(*self.cfg.response_delay_s), "respond", d.driver_id, epoch
                )
            return
        if topic == Driver.OfferClosed.TOPIC or topic == Driver.Released.TOPIC:
            d = self.drivers.get(UUID(e.aggregate_id))
            if d is not None:
                d.change_plan(Phase.IDLE, None)
                d.heading = None
                self._stop(d)
            return
        if topic in _TENURE_BEGINS:  # handed off to this shard: its commands go here
            self.handoffs += 1
            driver = UUID(e.aggregate_id)
            if int(data["epoch"]) <= self._tenures.get(driver, 0):
                return  # read after a later tenure (shards are read in any order)
            self._tenures[driver] = int(data["epoch"])
            if e.shard == shard_of(driver):
                self.serving.pop(driver, None)
            else:
                self.serving[driver] = e.shard
            return
        if topic == Rider.RideEnded.TOPIC:  # free to ride again once its home says so
            rider_id = UUID(e.aggregate_id)
            self.free_riders.setdefault(shard_of(rider_id), deque()).append(rider_id)
            return
        ride = self.rides.get(UUID(e.aggregate_id)) if topic.startswith(_RIDE) else None
        if ride is None:
            return
        if topic == Ride.DispatchStarted.TOPIC:  # a booking is searched for from now on
            ride.dispatched_at = e.at
            self._booked.discard(ride.ride_id)
            if ride.outcome is None:
                self._waiting.add(ride.ride_id)
        elif topic == Ride.Overdue.TOPIC:
            ride.overdue = True
        elif topic == Ride.DriverAsked.TOPIC:
            ride.asked = UUID(data["driver_id"])
        elif topic == Ride.AskEnded.TOPIC:
            ride.asked = None
        elif topic == Ride.Offered.TOPIC:
            ride.offered_eta_s = data["pickup_eta_s"]
            if ride.first_offer_at is None:
                ride.first_offer_at = e.at
                ride.first_offer_across = ride.asked == UUID(data["driver_id"])
        elif topic == Ride.Accepted.TOPIC:
            if ride.asked == UUID(data["driver_id"]):
                self.cross_shard_matches += 1
            if ride.accepted_at is None:
                ride.accepted_at, ride.pickup_eta_s = e.at, ride.offered_eta_s
            self._waiting.discard(ride.ride_id)
            d = self.drivers[UUID(data["driver_id"])]
            if d.plan is not None:  # a shared ride's offer: its driver follows its plan
                return
            epoch = d.change_plan(Phase.TO_PICKUP, ride.ride_id)
            travel = self._go(d, ride.pickup, "pickup", ("pickup", ride.index, d.index))
            ride.pickup_m = self._leg_m(d)
            self._schedule(travel, "arrive", d.driver_id, epoch)
        elif topic == Ride.Pooled.TOPIC:  # put into a plan being served: its driver follows it
            if ride.accepted_at is None:
                ride.accepted_at = e.at
            self._waiting.discard(ride.ride_id)
        elif topic == Ride.DriverArrived.TOPIC:
            ride.arrived_at = e.at
            self.drivers[UUID(data["driver_id"])].phase = Phase.AT_PICKUP
        elif topic == Ride.TripStarted.TOPIC:
            ride.started_at = e.at
            d = self.drivers[UUID(data["driver_id"])]
            if d.plan is not None and d.plan.pooled:  # its driver follows its plan
                return
            epoch = d.change_plan(Phase.ON_TRIP, ride.ride_id)
            travel = self._go(d, ride.dropoff, "trip", ("trip", ride.index))
            self._schedule(travel, "complete", d.driver_id, epoch)
        elif topic in RIDE_ENDINGS:
            ride.outcome, ride.ended_at = RIDE_ENDINGS[topic], e.at
            fare = data.get("fare") if topic == Ride.Completed.TOPIC else None
            if isinstance(fare, dict):  # the final fare (none for a ride not priced)
                ride.fare_total, ride.fare_currency = fare["total"], fare["currency"]
            self._waiting.discard(ride.ride_id)
            self._booked.discard(ride.ride_id)
            self._open.discard(ride.ride_id)

    def _plan_moved(self, d: SimDriver, topic: str, data: dict[str, Any], at: float) -> None:
        """One of ``d``'s events that moves a shared plan or who is aboard: folded as the
        engine folds it; a vehicle serving a plan then heads for its next stop."""
        state = d.plan or PlanState()
        ride_id = str(data.get("ride_id", ""))
        was_aboard = ride_id in state.aboard
        fold_plan(state, topic, ride_id, data.get("plan"))
        d.plan = state if state.pooled or state.offer_plan is not None else None
        aboard = self.occupancy.aboard(d.driver_id)
        if topic in _PICKED_UP:
            self.occupancy.set(d.driver_id, aboard + 1, at)
        elif topic in _POOL_ENDED and was_aboard:
            self.occupancy.set(d.driver_id, max(0, aboard - 1), at)
        elif topic == Driver.Released.TOPIC:
            self.occupancy.set(d.driver_id, 0, at)
        if state.pooled and state.plan and topic != Driver.OfferReceived.TOPIC:
            self._follow(d, state)

    def _follow(self, d: SimDriver, state: PlanState) -> None:
        """A vehicle serving a plan heads for its next stop (unless it is on its way there
        or there already): a pickup to arrive at, a drop-off to complete."""
        stop: list[str] = next(iter(state.plan))
        nxt = (str(stop[0]), str(stop[1]))
        if d.heading == nxt:
            return
        d.heading = nxt
        ride = self.rides.get(UUID(nxt[0]))
        if ride is None:
            return
        if nxt[1] == PICKUP:
            epoch = d.change_plan(Phase.TO_PICKUP, ride.ride_id)
            leg = "trip" if state.aboard else "pickup"  # with riders aboard, not empty
            travel = self._go(d, ride.pickup, leg, ("pickup", ride.index, d.index))
            if ride.pickup_m is None:
                ride.pickup_m = self._leg_m(d)
            self._schedule(travel, "arrive", d.driver_id, epoch)
        else:
            epoch = d.change_plan(Phase.ON_TRIP, ride.ride_id)
            travel = self._go(d, ride.dropoff, "trip", ("trip", ride.index))
            self._schedule(travel, "complete", d.driver_id, epoch)

    def records(self) -> list[RideRecord]:
        """Each request's life, in demand order, times relative to the start."""
        t0 = self.started_at

        def rel(at: float | None) -> float | None:
            return None if at is None else round(at - t0, 3)

        return [
            RideRecord(
                index=r.index,
                ride_id=str(r.ride_id),
                requested_s=round(r.requested_at - t0, 3),
                pickup_lat=r.pickup[0],
                pickup_lng=r.pickup[1],
                dropoff_lat=r.dropoff[0],
                dropoff_lng=r.dropoff[1],
                outcome=r.outcome,
                first_offer_s=rel(r.first_offer_at),
                first_offer_across=r.first_offer_across,
                accepted_s=rel(r.accepted_at),
                arrived_s=rel(r.arrived_at),
                started_s=rel(r.started_at),
                ended_s=rel(r.ended_at),
                eta_estimated_s=r.pickup_eta_s,
                eta_realised_s=(
                    None
                    if r.arrived_at is None or r.accepted_at is None
                    else round(r.arrived_at - r.accepted_at, 3)
                ),
                direct_m=round(self.city.distance_m(r.pickup, r.dropoff), 1),
                # driven to the end only by a driver that arrived
                pickup_m=None
                if r.arrived_at is None or r.pickup_m is None
                else round(r.pickup_m, 1),
                surge=r.surge,
                product=r.product,
                fare_total=r.fare_total,
                fare_currency=r.fare_currency,
                place=r.place,
                scheduled_s=rel(r.scheduled_at),
                dispatched_s=rel(r.dispatched_at),
                overdue=r.overdue,
                shared=r.shared,
                seats=r.seats,
            )
            for r in sorted(self.rides.values(), key=lambda r: r.index)
        ]


_TENURE_BEGINS = frozenset({Driver.Arrived.TOPIC, Driver.Returned.TOPIC})
REFUSED = "refused"  # a request the engine refused: it ends there
_PICKED_UP = frozenset({Driver.TripStarted.TOPIC, Driver.PoolPickedUp.TOPIC})
_POOL_ENDED = frozenset({Driver.PoolRideEnded.TOPIC, Driver.AboardEmptied.TOPIC})
# A driver's events that move a shared plan or who is aboard.
_PLAN_TOPICS = frozenset({
    Driver.OfferReceived.TOPIC, Driver.OfferClosed.TOPIC, Driver.Assigned.TOPIC,
    Driver.PlanExtended.TOPIC, Driver.Released.TOPIC, *_PICKED_UP, *_POOL_ENDED,
})  # fmt: skip
_RIDE = "dispatch.Ride."
_SURGE_CHANGED = (Surge.Recomputed.TOPIC, Surge.Changed.TOPIC)  # (the latter: older logs)
