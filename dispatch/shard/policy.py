"""Settings the shard's decisions need (kept apart from the handlers so tests can vary
them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dispatch.domain.command_record import DEFAULT_WINDOW_S
from dispatch.domain.geo import straight_line_pace
from dispatch.domain.pooling import PoolBounds
from dispatch.domain.products import DEFAULT_CATALOG, Catalog
from dispatch.domain.scheduling import SchedulingRules
from dispatch.pricing.trip import TripEstimator

StopsCheck = Callable[[tuple[float, float], tuple[float, float]], None]


@dataclass(frozen=True, slots=True)
class RoadTrips:
    """How a trip driven is routed where a road network is configured: ``estimator`` (the
    quotes' own, so an unquoted ride is metered on the distance a quote would have given)
    and ``graph``, the network's identity, recorded with each routed trip."""

    estimator: TripEstimator
    graph: str


class Policy:
    """Settings the shard's decisions need (kept apart from the handlers so tests can vary
    them): a request's wait, how long a command record answers for its command id, and the
    straight-line estimate of a trip driven (``road_factor``, ``speed_kmh``) and its road
    route where a network is configured (``road_trips``)."""

    def __init__(
        self,
        max_wait_s: float = 300.0,
        idempotency_window_s: float = DEFAULT_WINDOW_S,
        offer_timeout_s: float = 15.0,
        road_factor: float = 1.35,
        speed_kmh: float = 25.0,
        erasable: bool = False,
        catalog: Catalog = DEFAULT_CATALOG,
        road_trips: RoadTrips | None = None,
        check_stops: StopsCheck | None = None,
        scheduling: SchedulingRules | None = None,
        pool: PoolBounds | None = None,
    ) -> None:
        if idempotency_window_s <= 0:
            raise ValueError(f"idempotency_window_s must be > 0, got {idempotency_window_s}")
        self.max_wait_s = max_wait_s
        self.idempotency_window_s = idempotency_window_s
        self.offer_timeout_s = offer_timeout_s  # how long an owner holds a driver asked for
        self.road_factor, self.speed_kmh = road_factor, speed_kmh
        # Whether riders and drivers may be erased: only where personal fields are sealed
        # (docs/PRIVACY.md); elsewhere an erasure is refused.
        self.erasable = erasable
        self.catalog = catalog  # the products a driver's vehicle is checked against
        self.road_trips = road_trips  # None: trips driven by the straight-line estimate
        # The markets' service areas (``MarketMap.check_stops``): raises
        # ``OutsideServiceArea`` for a ride's pickup or drop-off outside; None: no areas.
        self.check_stops = check_stops
        # Scheduled rides' rules: lead time, horizon, rides a rider may hold, the free
        # cancellation cutoff, the late search window (docs/MARKETPLACE.md).
        self.scheduling = scheduling or SchedulingRules()
        # Shared rides' bounds (docs/ARCHITECTURE.md, "Shared rides"); None: a shared
        # ride is refused (``DISPATCH_POOL`` off, the default).
        self.pool = pool

    @property
    def seconds_per_m(self) -> float:
        """The straight-line estimate's pace: a direct trip's seconds per metre."""
        return straight_line_pace(self.road_factor, self.speed_kmh)
