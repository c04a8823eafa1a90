"""The simulator's end-of-run report."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dispatch.domain.geo import straight_line_pace
from dispatch.domain.ride import RideStatus
from dispatch.simulator.pooled import detour_pct
from dispatch.simulator.punctuality import ON_TIME_TOLERANCE_S, punctuality
from dispatch.simulator.results import RideRecord, Sample
from dispatch.simulator.scheduled import bookings_hash
from dispatch.simulator.stats import mean as _mean
from dispatch.simulator.stats import percentile
from dispatch.simulator.trace import demand_hash

if TYPE_CHECKING:
    from dispatch.simulator.runner import Simulation


def seconds(*values: float | None) -> str:
    """``12 / 30 / 41 s``; a figure with no sample behind it shows as ``-``."""
    return " / ".join("-" if v is None else f"{v:.0f}" for v in values) + " s"


# What a planner would call a balanced market, judged after warm-up (docs/SIMULATION.md).
BALANCED_UTILISATION = (60.0, 80.0)
BALANCED_SERVED_PCT = 95.0


def market_state(
    utilisation_pct: float | None, served_pct: float | None, decided: int
) -> tuple[str, str]:
    """``balanced``, ``undersupplied``, ``oversupplied`` or ``mismatched`` (riders left
    unserved while most drivers idle: supply in the wrong places), and why."""
    low, high = BALANCED_UTILISATION
    if decided == 0 or served_pct is None or utilisation_pct is None:
        return "unknown", "no request was decided or no utilisation sampled after warm-up"
    shown = (
        f"served {served_pct:.1f}% (balanced: at least {BALANCED_SERVED_PCT:g}%), "
        f"utilisation {utilisation_pct:.1f}% (balanced: {low:g}-{high:g}%)"
    )
    if served_pct < BALANCED_SERVED_PCT:
        return ("mismatched" if utilisation_pct < low else "undersupplied"), shown
    if utilisation_pct > high:
        return "undersupplied", shown
    if utilisation_pct < low:
        return "oversupplied", shown
    return "balanced", shown


STEADY_UTILISATION_DRIFT = 5.0  # points between the halves after warm-up


def steadiness(samples: list[Sample]) -> tuple[bool, str]:
    """Steady when utilisation moved at most ``STEADY_UTILISATION_DRIFT`` points and the
    queue of waiting rides did not grow (more than doubled and by more than 5) between the
    first and the second half of the samples after warm-up."""
    if len(samples) < 4:
        return False, "too few samples after warm-up to tell"
    half = len(samples) // 2
    first, second = samples[:half], samples[half:]
    u1 = 100 * statistics.fmean(s.utilisation for s in first)
    u2 = 100 * statistics.fmean(s.utilisation for s in second)
    w1 = statistics.fmean(s.waiting for s in first)
    w2 = statistics.fmean(s.waiting for s in second)
    shown = f"utilisation {u1:.0f}% -> {u2:.0f}%, waiting rides {w1:.0f} -> {w2:.0f}"
    if abs(u2 - u1) > STEADY_UTILISATION_DRIFT:
        return False, f"not steady: {shown} (a longer warm-up or run would settle it)"
    if w2 > 2 * w1 + 5:
        return False, f"not steady: {shown} (the queue grows: demand outruns supply)"
    return True, f"steady: {shown}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _roads(road_network: dict[str, Any] | None) -> str:
    if road_network is None:
        return "none: straight lines, straight-line ETAs"
    r = road_network
    size = f"{r['nodes']:,} nodes, {r['edges']:,} edges"
    return f"{Path(r['source']).name} ({size}), matcher ETA {r['eta']}"


@dataclass(frozen=True)
class SimReport:
    """The run's figures, over the requests made after warm-up (``warmup_s``). A figure
    with no sample behind it (say, time to offer in a run without requests) is None, which
    JSON shows as null."""

    strategy: str
    seed: int
    drivers: int
    city_km: float  # the side of the simulated city's square
    simulated_minutes: float
    warmup_s: float
    demand_hash: str
    requests_total: int
    requests: int
    served: int
    served_pct: float | None
    decided: int  # served, or ended without a driver
    completed: int
    cancelled: int
    expired: int
    rejection_pct: float | None
    in_flight: int
    offer_s_p50: float | None
    offer_s_p95: float | None
    offer_s_p99: float | None
    accept_s_p50: float | None
    accept_s_p95: float | None
    accept_s_p99: float | None
    wait_s_mean: float | None
    wait_s_p95: float | None
    pickup_eta_s_mean: float | None
    pickup_eta_s_p95: float | None
    pickup_realised_s_mean: float | None
    eta_error_s_mean: float | None
    eta_abs_error_s_p95: float | None
    in_vehicle_s_mean: float | None
    empty_distance_pct: float | None
    empty_km: float  # driven empty after warm-up (to pickups and cruising): the deadhead
    pickup_m_mean: float | None  # the pickup leg of a ride whose driver arrived, mean
    utilisation_pct: float | None
    waiting_mean: float | None
    waiting_max: int | None
    market: str
    market_reason: str
    steady: bool
    steady_reason: str
    shards: int  # the city's shards (--city-shards)
    cross_shard_matches: int  # rides accepted by a driver another shard owns
    handoffs: int  # drivers handed from one shard to another (DISPATCH_HANDOFF_AFTER_S)
    offer_s_p99_same_shard: float | None  # time to a first offer by a driver of the ride's shard
    offer_s_p99_cross_shard: float | None  # ... by a driver another shard owns
    road_network: dict[str, Any] | None  # {source, nodes, edges, eta}; None: straight lines
    surge_mean: float | None  # the pickup cell's multiplier when requested, mean
    surge_max: float | None
    surge_changes: int  # surge cells' changes recorded in the whole run
    events: int
    outcomes: dict[str, int]
    violations: list[str]
    wall_s: float
    events_per_s: float
    # By the product asked for, after warm-up: requests, served (and % of decided), and the
    # wait for the car (mean, p95).
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The final fares of the completed rides after warm-up, summed by currency (decimal
    # text), and how many rides they are; rides not priced add nothing.
    revenue: dict[str, str] = field(default_factory=dict)
    priced_rides: int = 0
    # By the place with a queue the pickup was inside, after warm-up (as ``products``); and
    # the drivers' entries into places over the whole run (docs/MARKETPLACE.md, "Places").
    places: dict[str, dict[str, Any]] = field(default_factory=dict)
    place_entries: int = 0
    # Repositioning hints over the whole run: what the drivers did with them ("off",
    # "ignore", "follow"), how many the shards sent, and how many an idle driver followed.
    hints: str = "off"
    hints_received: int = 0
    hints_followed: int = 0
    # Scheduled rides (``--scheduled-share``; ``punctuality.py`` defines the figures): the
    # share booked ahead, the bookings of the whole run and their hash (the same seed books
    # the same requests: experiments check it), and the figures of those whose time came
    # after warm-up. The figures above are the immediate requests' alone.
    scheduled_share: float = 0.0
    bookings_total: int = 0
    bookings_hash: str = ""
    scheduled_booked: int = 0
    scheduled_dispatched: int = 0
    scheduled_served: int = 0
    scheduled_completed: int = 0
    scheduled_cancelled: int = 0
    scheduled_expired: int = 0
    scheduled_overdue: int = 0
    scheduled_due: int = 0
    scheduled_on_time: int = 0
    scheduled_on_time_pct: float | None = None
    scheduled_late_s_p50: float | None = None
    scheduled_late_s_p95: float | None = None
    scheduled_early_s_mean: float | None = None
    scheduled_dispatch_ahead_s_mean: float | None = None
    # Shared rides (``--shared-share``, docs/SIMULATION.md "Shared rides"): the share of the
    # requests asking to share and whether the engine pooled them; riders per occupied
    # vehicle; every km driven per km of the completed rides' direct trips; by kind of ride
    # (single, shared: requests, served, waits, detour p50/p95 in per cent), with flat
    # copies of the shared and single figures the experiments compare; the engine's pooled
    # windows (embedded only: None on Kafka).
    shared_share: float = 0.0
    pooling: bool = False
    mean_occupancy: float | None = None
    driven_km: float = 0.0
    passenger_km: float = 0.0
    vehicle_km_per_passenger_km: float | None = None
    kinds: dict[str, dict[str, Any]] = field(default_factory=dict)
    shared_served_pct: float | None = None
    shared_wait_s_mean: float | None = None
    shared_detour_pct_p50: float | None = None
    shared_detour_pct_p95: float | None = None
    single_served_pct: float | None = None
    single_wait_s_mean: float | None = None
    pool_windows: int | None = None
    pool_windows_capped: int | None = None
    pool_window_max_ms: float | None = None
    pool_offers: int | None = None
    pool_extensions: int | None = None
    # shared riders picked up after their latest pickup, or longer in the vehicle than their
    # bound, as the log checker counted them over the whole run (the road was slower than
    # the plans' estimate: counted, not violations)
    shared_waits_over_bound: int = 0
    shared_rides_over_bound: int = 0

    @classmethod
    def build(cls, sim: Simulation, wall_s: float, strategy: str = "") -> SimReport:
        warmup = sim.cfg.warmup_s
        everything = sim.records()
        # a scheduled ride counts by its time; the request figures are the immediate ones'
        measured = [r for r in everything if _ready_s(r) >= warmup]
        records = [r for r in measured if r.scheduled_s is None]
        served = [r for r in records if r.accepted_s is not None]
        unserved = [r for r in records if r.accepted_s is None and r.outcome is not None]
        decided = len(served) + len(unserved)
        expired = sum(r.outcome == RideStatus.EXPIRED for r in records)
        offered = [
            (r.first_offer_s - r.requested_s, r) for r in records if r.first_offer_s is not None
        ]
        offer = [s for s, _ in offered]
        same = [s for s, r in offered if not r.first_offer_across]
        across = [s for s, r in offered if r.first_offer_across]
        accept = [r.accepted_s - r.requested_s for r in served if r.accepted_s is not None]
        waits = [w for r in records if (w := r.wait_s) is not None]
        etas = [r.eta_estimated_s for r in served if r.eta_estimated_s is not None]
        pairs = [
            (r.eta_estimated_s, r.eta_realised_s)
            for r in records
            if r.eta_estimated_s is not None and r.eta_realised_s is not None
        ]
        errors = [real - est for est, real in pairs]
        in_vehicle = [v for r in records if (v := r.in_vehicle_s) is not None]
        driven = sum(sim.distance_m.values())
        empty = sim.distance_m["pickup"] + sim.distance_m["cruise"]
        waiting = [s.waiting for s in sim.samples if s.t_s >= warmup]
        busy = sim._busy_samples
        utilisation = 100.0 * statistics.fmean(busy) if busy else None
        served_pct = 100.0 * len(served) / decided if decided else None
        market, reason = market_state(utilisation, served_pct, decided)
        steady, steady_reason = steadiness([s for s in sim.samples if s.t_s >= warmup])
        events = sim._events
        pace = straight_line_pace(sim.cfg.road_factor, sim.cfg.speed_kmh)
        kinds = by_kind(records, pace)
        passenger_km = riders_km(everything, warmup, sim.cfg.minutes * 60.0)
        pool = sim.pool_stats() if sim.pool_stats is not None else {}
        return cls(
            strategy=strategy,
            seed=sim.cfg.seed,
            drivers=sim.cfg.drivers,
            city_km=round(sim.city.size_km, 3),
            simulated_minutes=sim.cfg.minutes,
            warmup_s=warmup,
            demand_hash=demand_hash(sim.demand_sent),
            requests_total=sum(r.scheduled_s is None for r in everything),
            requests=len(records),
            served=len(served),
            served_pct=served_pct,
            decided=decided,
            completed=sum(r.outcome == RideStatus.COMPLETED for r in records),
            cancelled=sum(r.outcome == RideStatus.CANCELLED for r in records),
            expired=expired,
            rejection_pct=100.0 * expired / decided if decided else None,
            in_flight=sum(r.outcome is None for r in records),
            offer_s_p50=percentile(offer, 50),
            offer_s_p95=percentile(offer, 95),
            offer_s_p99=percentile(offer, 99),
            accept_s_p50=percentile(accept, 50),
            accept_s_p95=percentile(accept, 95),
            accept_s_p99=percentile(accept, 99),
            wait_s_mean=_mean(waits),
            wait_s_p95=percentile(waits, 95),
            pickup_eta_s_mean=_mean(etas),
            pickup_eta_s_p95=percentile(etas, 95),
            pickup_realised_s_mean=_mean([real for _, real in pairs]),
            eta_error_s_mean=_mean(errors),
            eta_abs_error_s_p95=percentile([abs(e) for e in errors], 95),
            in_vehicle_s_mean=_mean(in_vehicle),
            empty_distance_pct=100.0 * empty / driven if driven else None,
            empty_km=empty / 1000.0,
            pickup_m_mean=_mean([m for r in records if (m := r.pickup_m) is not None]),
            utilisation_pct=utilisation,
            waiting_mean=_mean([float(w) for w in waiting]),
            waiting_max=max(waiting) if waiting else None,
            market=market,
            market_reason=reason,
            steady=steady,
            steady_reason=steady_reason,
            shards=sim.cfg.city_shards,
            cross_shard_matches=sim.cross_shard_matches,
            handoffs=sim.handoffs,
            offer_s_p99_same_shard=percentile(same, 99),
            offer_s_p99_cross_shard=percentile(across, 99),
            road_network=sim.roads.describe(sim.cfg.eta) if sim.roads is not None else None,
            surge_mean=_mean([r.surge for r in records]),
            surge_max=max((r.surge for r in records), default=None),
            surge_changes=sim.surge_changes,
            events=events,
            outcomes=dict(sim.outcomes),
            violations=[str(v) for v in sim.checker.violations],
            wall_s=wall_s,
            events_per_s=events / wall_s if wall_s else 0.0,
            products=by_product(records),
            revenue=revenue(measured),
            priced_rides=sum(r.fare_total is not None for r in measured),
            places=by_place(records),
            place_entries=sim.place_entries,
            hints=sim.cfg.hints,
            hints_received=sim.hints_received,
            hints_followed=sim.hints_followed,
            scheduled_share=sim.cfg.scheduled_share,
            bookings_total=len(sim.bookings),
            bookings_hash=bookings_hash(list(sim.bookings.values())) if sim.bookings else "",
            **{f"scheduled_{k}": v for k, v in asdict(punctuality(measured)).items()},
            shared_share=sim.cfg.shared_share,
            pooling=sim.cfg.pooling,
            mean_occupancy=sim.occupancy.mean,
            driven_km=driven / 1000.0,
            passenger_km=passenger_km,
            vehicle_km_per_passenger_km=driven / 1000.0 / passenger_km if passenger_km else None,
            kinds=kinds,
            shared_served_pct=kinds.get("shared", {}).get("served_pct"),
            shared_wait_s_mean=kinds.get("shared", {}).get("wait_s_mean"),
            shared_detour_pct_p50=kinds.get("shared", {}).get("detour_pct_p50"),
            shared_detour_pct_p95=kinds.get("shared", {}).get("detour_pct_p95"),
            single_served_pct=kinds.get("single", {}).get("served_pct"),
            single_wait_s_mean=kinds.get("single", {}).get("wait_s_mean"),
            pool_windows=pool.get("windows"),
            pool_windows_capped=pool.get("capped"),
            pool_window_max_ms=pool.get("slowest_ms"),
            pool_offers=pool.get("offers"),
            pool_extensions=pool.get("extensions"),
            shared_waits_over_bound=sum(
                c.pooled.waits_over_bound for c in sim._shard_checkers.values()
            ),
            shared_rides_over_bound=sum(
                c.pooled.rides_over_bound for c in sim._shard_checkers.values()
            ),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _surge_row(self) -> str:
        if self.surge_mean is None or self.surge_max is None:
            return f"- / -, {self.surge_changes}"
        return f"{self.surge_mean:.2f} / {self.surge_max:.2f}, {self.surge_changes}"

    def _product_rows(self) -> list[tuple[str, str]]:
        return [
            (f"  {name}: served, wait mean / p95",
             f"{p['served']} of {p['requests']} ({_pct(p['served_pct'])} of decided), "
             f"{seconds(p['wait_s_mean'], p['wait_s_p95'])}")
            for name, p in self.products.items()
        ]  # fmt: skip

    def _place_rows(self) -> list[tuple[str, str]]:
        if not self.places and not self.place_entries:
            return []
        return [
            ("drivers' entries into places", f"{self.place_entries}"),
            *[
                (f"  pickups in {name}: served, wait mean / p95",
                 f"{p['served']} of {p['requests']} ({_pct(p['served_pct'])} of decided), "
                 f"{seconds(p['wait_s_mean'], p['wait_s_p95'])}")
                for name, p in self.places.items()
            ],
        ]  # fmt: skip

    def _scheduled_rows(self) -> list[tuple[str, str]]:
        if not self.scheduled_share and not self.bookings_total:
            return []
        return [
            ("scheduled rides: share, booked (after warm-up)",
             f"{self.scheduled_share:g}: {self.bookings_total} ({self.scheduled_booked})"),
            ("  dispatched / served / completed",
             f"{self.scheduled_dispatched} / {self.scheduled_served} / "
             f"{self.scheduled_completed}"),
            ("  cancelled / expired / overdue",
             f"{self.scheduled_cancelled} / {self.scheduled_expired} / "
             f"{self.scheduled_overdue}"),
            (f"  on time (arrived by +{ON_TIME_TOLERANCE_S:g} s)",
             f"{_pct(self.scheduled_on_time_pct)} ({self.scheduled_on_time} of "
             f"{self.scheduled_due})"),
            ("  lateness p50 / p95, early mean",
             seconds(self.scheduled_late_s_p50, self.scheduled_late_s_p95,
                     self.scheduled_early_s_mean)),
            ("  dispatched ahead of the time, mean",
             seconds(self.scheduled_dispatch_ahead_s_mean)),
        ]  # fmt: skip

    def _shared_rows(self) -> list[tuple[str, str]]:
        if not self.shared_share:
            return []
        pooled = "pooled" if self.pooling else "not pooled (sent as single rides)"
        occupancy = "-" if self.mean_occupancy is None else f"{self.mean_occupancy:.2f}"
        per = self.vehicle_km_per_passenger_km
        rows = [
            ("shared rides: share asked", f"{self.shared_share:g}, {pooled}"),
            ("  riders per occupied vehicle (mean occupancy)", occupancy),
            ("  vehicle-km per passenger-km",
             f"{'-' if per is None else f'{per:.2f}'} ({self.driven_km:,.1f} km driven, "
             f"{self.passenger_km:,.1f} km of direct trips completed)"),
            *[
                (f"  {kind}: served, wait mean / p95, detour p50 / p95",
                 f"{k['served']} of {k['requests']} ({_pct(k['served_pct'])} of decided), "
                 f"{seconds(k['wait_s_mean'], k['wait_s_p95'])}, "
                 f"{_pct(k['detour_pct_p50'])} / {_pct(k['detour_pct_p95'])}")
                for kind, k in self.kinds.items()
            ],
        ]  # fmt: skip
        road = f"{self.shared_waits_over_bound}, {self.shared_rides_over_bound}"
        rows.append(("  on the road: picked up late, in the vehicle too long", road))
        if self.pool_windows is not None:
            most = self.pool_window_max_ms
            slowest = "-" if most is None else f"{most:.0f} ms"
            rows.append(("  pooled windows: capped, slowest; offers, put into plans",
                         f"{self.pool_windows}: {self.pool_windows_capped}, {slowest}; "
                         f"{self.pool_offers}, {self.pool_extensions}"))  # fmt: skip
        return rows

    def _revenue_row(self) -> str:
        if not self.revenue:
            return "- (no priced ride completed)"
        totals = ", ".join(f"{total} {currency}" for currency, total in self.revenue.items())
        return f"{totals} ({self.priced_rides} rides)"

    def rows(self) -> list[tuple[str, str]]:
        pct = "-" if self.rejection_pct is None else f"{self.rejection_pct:.1f}%"
        empty = "-" if self.empty_distance_pct is None else f"{self.empty_distance_pct:.1f}%"
        return [
            ("strategy / seed", f"{self.strategy} / {self.seed}"),
            ("drivers, simulated time", f"{self.drivers}, {self.simulated_minutes:g} min"),
            ("city", f"{self.city_km:g} km square"),
            ("warm-up left out", f"first {self.warmup_s / 60:g} min"),
            ("demand (sha256 of the requests)", self.demand_hash[:16]),
            ("requests after warm-up", f"{self.requests} (of {self.requests_total})"),
            (
                "served (driver assigned)",
                f"{self.served} ({_pct(self.served_pct)} of {self.decided} decided)",
            ),
            (
                "completed / cancelled / expired",
                f"{self.completed} / {self.cancelled} / {self.expired}",
            ),
            ("rejection rate (expired)", pct),
            ("surge at request mean / max, changes", self._surge_row()),
            *self._product_rows(),
            *self._place_rows(),
            (
                "repositioning hints: sent, followed",
                f"{self.hints}: {self.hints_received}, {self.hints_followed}",
            ),
            *self._scheduled_rows(),
            *self._shared_rows(),
            ("revenue (final fares)", self._revenue_row()),
            ("not ended after the drain", f"{self.in_flight}"),
            (
                "time to offer p50/p95/p99",
                seconds(self.offer_s_p50, self.offer_s_p95, self.offer_s_p99),
            ),
            (
                "time to accept p50/p95/p99",
                seconds(self.accept_s_p50, self.accept_s_p95, self.accept_s_p99),
            ),
            ("wait for the car mean / p95", seconds(self.wait_s_mean, self.wait_s_p95)),
            ("pickup ETA mean / p95", seconds(self.pickup_eta_s_mean, self.pickup_eta_s_p95)),
            (
                "pickup realised mean, ETA error mean / p95 |error|",
                seconds(
                    self.pickup_realised_s_mean, self.eta_error_s_mean, self.eta_abs_error_s_p95
                ),
            ),
            ("in-vehicle time mean", seconds(self.in_vehicle_s_mean)),
            ("road network", _roads(self.road_network)),
            ("empty distance share", empty),
            ("empty km (deadhead), pickup leg mean", _deadhead(self.empty_km, self.pickup_m_mean)),
            ("driver utilisation", _pct(self.utilisation_pct)),
            ("market", f"{self.market}: {self.market_reason}"),
            ("steady state", self.steady_reason),
            ("command outcomes", ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))),
            ("events written", f"{self.events}"),
            ("invariant violations", f"{len(self.violations)}"),
            ("wall time", f"{self.wall_s:.1f} s"),
            ("events/s", f"{self.events_per_s:,.0f}"),
        ]


def _ready_s(r: RideRecord) -> float:
    """When the rider was ready: the request, or a scheduled ride's time."""
    return r.requested_s if r.scheduled_s is None else r.scheduled_s


def by_product(records: list[RideRecord]) -> dict[str, dict[str, Any]]:
    """Each product's requests, served (% of decided) and wait for the car."""
    products = sorted({r.product for r in records}, key=_product_order)
    return {p: _served_and_waits([r for r in records if r.product == p]) for p in products}


def riders_km(records: list[RideRecord], lo: float, hi: float) -> float:
    """Passenger-km over the window the distance driven covers (``lo`` to ``hi``, seconds
    from the start): each completed ride's direct km times the share of its time in the car
    that falls inside it (a rider counts once, whatever the seats it took)."""
    total = 0.0
    for r in records:
        if r.outcome != "completed" or r.started_s is None or r.ended_s is None:
            continue
        inside = min(r.ended_s, hi) - max(r.started_s, lo)
        span = r.ended_s - r.started_s
        if inside > 0 and span > 0:
            total += r.direct_m * inside / span
    return total / 1000.0


def by_kind(records: list[RideRecord], seconds_per_m: float) -> dict[str, dict[str, Any]]:
    """Single and shared rides apart (those asking to share, pooled or not): requests,
    served (% of decided), the wait for the car, and the detour p50 / p95 (``detour_pct``)."""
    out: dict[str, dict[str, Any]] = {}
    for kind, shared in (("single", False), ("shared", True)):
        mine = [r for r in records if r.shared is shared]
        if not mine:
            continue
        detours = [d for r in mine if (d := detour_pct(r, seconds_per_m)) is not None]
        out[kind] = {**_served_and_waits(mine), "detour_pct_p50": percentile(detours, 50),
                     "detour_pct_p95": percentile(detours, 95)}  # fmt: skip
    return out


def by_place(records: list[RideRecord]) -> dict[str, dict[str, Any]]:
    """The same, for the pickups inside each place with a queue."""
    places = sorted({r.place for r in records if r.place is not None})
    return {p: _served_and_waits([r for r in records if r.place == p]) for p in places}


def _served_and_waits(mine: list[RideRecord]) -> dict[str, Any]:
    served = sum(r.accepted_s is not None for r in mine)
    decided = served + sum(r.accepted_s is None and r.outcome is not None for r in mine)
    waits = [w for r in mine if (w := r.wait_s) is not None]
    return {
        "requests": len(mine),
        "served": served,
        "served_pct": 100.0 * served / decided if decided else None,
        "wait_s_mean": _mean(waits),
        "wait_s_p95": percentile(waits, 95),
    }


def _product_order(name: str) -> tuple[int, str]:
    order = ("standard", "xl", "accessible")
    return (order.index(name) if name in order else len(order), name)


def revenue(records: list[RideRecord]) -> dict[str, str]:
    """The final fares of the completed rides, summed exactly by currency."""
    totals: dict[str, Decimal] = {}
    for r in records:
        if r.fare_total is not None and r.fare_currency is not None:
            totals[r.fare_currency] = totals.get(r.fare_currency, Decimal(0)) + Decimal(
                r.fare_total
            )
    return {currency: str(total) for currency, total in sorted(totals.items())}


def _deadhead(empty_km: float, pickup_m_mean: float | None) -> str:
    pickup = "-" if pickup_m_mean is None else f"{pickup_m_mean:,.0f} m"
    return f"{empty_km:,.1f} km, {pickup}"
