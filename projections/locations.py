"""Driver locations view: every online driver's status and last position, H3-indexed.

Statuses come from the event log, positions from the ping stream. Available drivers are
kept in a ``DriverIndex`` (ring search with an exact distance bound), so "nearest
available drivers" and "where is driver X" are answered from memory. Positions are not kept
with the view (``__getstate__``): pings are not events, and a serving process takes them up
again from the ping stream (embedded, from the next pings; on Kafka, from the last TTL of
the locations topic), as after a full fold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from dispatch.domain.driver import AVAILABILITY_TOPICS, Driver, DriverStatus, next_availability
from dispatch.log import LogEvent
from dispatch.matching.index import DriverIndex
from dispatch.messages import Ping
from projections.tenures import Tenures

# Registration is left out: a registered driver is offline, not shown.
_TOPICS = AVAILABILITY_TOPICS - {Driver.Created.TOPIC}


class DriverLocation(NamedTuple):
    driver_id: str
    status: str
    lat: float | None
    lng: float | None
    at: float | None


@dataclass
class LocationsView:
    index: DriverIndex[str]
    ttl_s: float
    status: dict[str, str] = field(default_factory=dict)
    positions: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    offline_after_trip: set[str] = field(default_factory=set)
    # What `nearest` answers for each indexed (available) driver, made once per ping.
    available: dict[str, DriverLocation] = field(default_factory=dict)
    tenures: Tenures = field(default_factory=Tenures)  # drivers handed off between shards
    # Kept by driver id (``projections.parts``); the tenures kept whole.
    KEPT_BY_KEY: ClassVar[tuple[str, ...]] = ("status", "offline_after_trip")

    def __getstate__(self) -> dict[str, Any]:
        """Statuses, without positions or their index (kept views, see the module)."""
        return {
            "resolution": self.index.resolution,
            "ttl_s": self.ttl_s,
            "status": self.status,
            "offline_after_trip": self.offline_after_trip,
            "tenures": self.tenures,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.index = DriverIndex[str](state["resolution"], state["ttl_s"])
        self.ttl_s = state["ttl_s"]
        self.status, self.offline_after_trip = state["status"], state["offline_after_trip"]
        self.tenures = state["tenures"]
        self.positions, self.available = {}, {}

    def where(self, driver_id: str, now: float) -> DriverLocation | None:
        status = self.status.get(driver_id)
        if status is None:
            return None
        pos = self.positions.get(driver_id)
        if pos is None or pos[2] < now - self.ttl_s:
            return DriverLocation(driver_id, status, None, None, pos[2] if pos else None)
        return DriverLocation(driver_id, status, pos[0], pos[1], pos[2])

    def nearest(
        self, lat: float, lng: float, k: int, radius_m: float, now: float
    ) -> list[tuple[DriverLocation, float]]:
        available = self.available
        return [(available[d], dist) for d, dist in self.index.nearest(lat, lng, k, radius_m, now)]


# Members looked up once (an enum member read off its class costs a Python call per event).
_OFFLINE, _AVAILABLE = DriverStatus.OFFLINE, DriverStatus.AVAILABLE


class LocationsProjection:
    name = "locations"
    topics = _TOPICS

    def __init__(self, resolution: int = 9, ttl_s: float = 30.0) -> None:
        self.resolution, self.ttl_s = resolution, ttl_s
        self.params = f"resolution={resolution},ttl_s={ttl_s}"

    def initial(self) -> LocationsView:
        return LocationsView(DriverIndex[str](self.resolution, self.ttl_s), self.ttl_s)

    def apply(self, view: LocationsView, e: LogEvent) -> LocationsView:
        driver_id = e.aggregate_id
        if e.topic not in _TOPICS or not view.tenures.admits(e):
            return view
        # A driver not shown is offline, yet may have asked to go offline after a trip (out
        # of place, but the other readers keep that flag too).
        before = view.status.get(driver_id, _OFFLINE)
        after_trip = driver_id in view.offline_after_trip
        after, after_trip = next_availability((before, after_trip), e.topic)
        if after_trip:
            view.offline_after_trip.add(driver_id)
        else:
            view.offline_after_trip.discard(driver_id)
        status = str(after)
        if status == _OFFLINE:
            view.status.pop(driver_id, None)
            view.positions.pop(driver_id, None)
            self._unlist(view, driver_id)
            return view
        view.status[driver_id] = status
        if status == _AVAILABLE:
            pos = view.positions.get(driver_id)
            if pos is not None:
                self._list(view, driver_id, *pos)
        else:
            self._unlist(view, driver_id)
        return view

    def apply_ping(self, view: LocationsView, ping: Ping) -> LocationsView:
        driver_id = str(ping.driver_id)
        last = view.positions.get(driver_id)
        if last is not None and last[2] >= ping.at:
            return view  # no newer than what is kept (a redelivery, or out of order)
        # Kept even while the driver's status is not known here yet: pings and events come
        # by different roads, and a ping may overtake the event that puts its driver online.
        view.positions[driver_id] = (ping.lat, ping.lng, ping.at)
        if view.status.get(driver_id) == _AVAILABLE:
            self._list(view, driver_id, ping.lat, ping.lng, ping.at)
        return view

    @staticmethod
    def _list(view: LocationsView, driver_id: str, lat: float, lng: float, at: float) -> None:
        view.index.upsert(driver_id, lat, lng, at)
        view.available[driver_id] = DriverLocation(
            driver_id, DriverStatus.AVAILABLE.value, lat, lng, at
        )

    @staticmethod
    def _unlist(view: LocationsView, driver_id: str) -> None:
        view.index.remove(driver_id)
        view.available.pop(driver_id, None)
