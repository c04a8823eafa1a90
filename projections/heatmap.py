"""Supply and demand per H3 cell, for a heatmap.

Counts are kept at a fine resolution (8) and summed to the caller's resolution (4 to 8) at
query time. Supply is available drivers with a known position, demand is rides waiting for
a driver (requested or offered), by pickup cell. What came from pings (positions, supply)
is not kept with the view: pings are not events, and a serving process takes them up again
from the ping stream (``__getstate__``).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

import h3

from dispatch.domain.driver import (
    AVAILABILITY_TOPICS,
    REGISTERED,
    Availability,
    DriverStatus,
    next_availability,
)
from dispatch.domain.ride import (
    CREATED_STATUS,
    RIDE_ENDINGS,
    RIDE_TRANSITIONS,
    WAITING_FOR_DRIVER,
)
from dispatch.log import LogEvent
from dispatch.messages import Ping
from dispatch.privacy import KeyNotYetKnown, Opener, as_is
from projections.tenures import Tenures

log = logging.getLogger(__name__)

BASE_RESOLUTION = 8
MIN_RESOLUTION = 4

# Whether a ride waits for a driver after each of its events (the aggregate's table).
_RIDE_WAITING = {
    **{topic: status in WAITING_FOR_DRIVER for topic, status in CREATED_STATUS.items()},
    **{
        topic: after in WAITING_FOR_DRIVER
        for topic, (_, after) in RIDE_TRANSITIONS.items()
        if after is not None  # (a notice changes nothing here)
    },
}
_RIDE_CLOSED = frozenset(RIDE_ENDINGS)


@dataclass
class HeatmapView:
    supply: Counter[str] = field(default_factory=Counter)
    demand: Counter[str] = field(default_factory=Counter)
    available: set[str] = field(default_factory=set)
    drivers: dict[str, Availability] = field(default_factory=dict)
    driver_cell: dict[str, str] = field(default_factory=dict)
    last_cell: dict[str, str] = field(default_factory=dict)
    last_ping_at: dict[str, float] = field(default_factory=dict)
    ride_cell: dict[str, str] = field(default_factory=dict)
    waiting: set[str] = field(default_factory=set)
    # Rides whose sealed pickup could not be opened yet (``KeyNotYetKnown``: its key not
    # yet readable here): ride -> [the sealed pickup, whether the ride waits for a driver].
    # Placed, and counted if waiting, at the ride's next event or the runner's next pass.
    unplaced: dict[str, list[Any]] = field(default_factory=dict)
    # Kept by driver or ride id (``projections.parts``); the counts and tenures kept whole.
    KEPT_BY_KEY: ClassVar[tuple[str, ...]] = (
        "drivers",
        "available",
        "ride_cell",
        "waiting",
        "unplaced",
    )
    tenures: Tenures = field(default_factory=Tenures)  # drivers handed off between shards

    def __getstate__(self) -> dict[str, Any]:
        """What the events made, without what pings did (kept views, see the module)."""
        return {k: v for k, v in self.__dict__.items() if k not in _FROM_PINGS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("unplaced", {})  # a view kept before it was
        for name in _FROM_PINGS:
            setattr(self, name, Counter() if name == "supply" else {})

    def cells(self, resolution: int) -> dict[str, tuple[int, int]]:
        """(supply, demand) per cell at ``resolution``."""
        if not MIN_RESOLUTION <= resolution <= BASE_RESOLUTION:
            raise ValueError(f"resolution must be between {MIN_RESOLUTION} and {BASE_RESOLUTION}")
        out: dict[str, list[int]] = {}
        for index, counter in ((0, self.supply), (1, self.demand)):
            for cell, count in counter.items():
                if count <= 0:
                    continue
                key = cell if resolution == BASE_RESOLUTION else h3.cell_to_parent(cell, resolution)
                out.setdefault(key, [0, 0])[index] += count
        return {cell: (v[0], v[1]) for cell, v in out.items()}


_FROM_PINGS = ("supply", "driver_cell", "last_cell", "last_ping_at")
_AVAILABLE = DriverStatus.AVAILABLE  # looked up once, not per event


class HeatmapProjection:
    """``open``: how a sealed pickup is read (docs/PRIVACY.md), only to find its cell; a
    pickup that does not open (erased: only ended rides are) counts nowhere. A pickup whose
    key is not yet known here (``KeyNotYetKnown``, on Kafka) neither stops the fold nor is
    given up: the ride is kept unplaced and placed again at its next event or at the
    runner's next pass (``settle``), counted from then on if it still waits."""

    name = "heatmap"
    topics = frozenset(_RIDE_WAITING) | AVAILABILITY_TOPICS
    params = f"resolution={BASE_RESOLUTION}"

    def __init__(self, open: Opener = as_is) -> None:
        self.open = open

    def initial(self) -> HeatmapView:
        return HeatmapView()

    def apply(self, view: HeatmapView, e: LogEvent) -> HeatmapView:
        topic, agg = e.topic, e.aggregate_id
        if topic in _RIDE_WAITING:
            if topic in CREATED_STATUS:  # a scheduled ride is demand once dispatched
                self._place(view, agg, e.data["pickup"])
            elif agg in view.unplaced:
                self._place(view, agg, view.unplaced[agg][0])  # its key may be known now
            unplaced = view.unplaced.get(agg)
            if unplaced is not None:
                unplaced[1] = _RIDE_WAITING[topic]
                if topic in _RIDE_CLOSED:
                    del view.unplaced[agg]
                return view
            cell = view.ride_cell.get(agg)
            if cell is not None:
                if _RIDE_WAITING[topic] and agg not in view.waiting:
                    view.waiting.add(agg)
                    view.demand[cell] += 1
                elif not _RIDE_WAITING[topic] and agg in view.waiting:
                    view.waiting.discard(agg)
                    view.demand[cell] -= 1
                if topic in _RIDE_CLOSED:
                    del view.ride_cell[agg]
            return view
        if topic in AVAILABILITY_TOPICS and view.tenures.admits(e):
            before = view.drivers.get(agg, REGISTERED)
            after = view.drivers[agg] = next_availability(before, topic)
            available = after[0] == _AVAILABLE
            if available != (before[0] == _AVAILABLE):  # most events change neither
                self._set_available(view, agg, available)
        return view

    def settle(self, view: HeatmapView) -> list[str]:
        """Place the rides left unplaced (their key not yet known), counting the ones that
        wait; stops at the first key still unknown (each lookup may wait for its key). The
        rides placed (their parts changed: ``projections.parts``)."""
        placed: list[str] = []
        for agg in list(view.unplaced):
            sealed, waiting = view.unplaced[agg]
            if not self._place(view, agg, sealed):
                return placed
            placed.append(agg)
            cell = view.ride_cell.get(agg)
            if waiting and cell is not None and agg not in view.waiting:
                view.waiting.add(agg)
                view.demand[cell] += 1
        return placed

    def _place(self, view: HeatmapView, agg: str, sealed: Any) -> bool:
        """Find the ride's cell from its pickup; False, the ride kept unplaced, when the
        pickup's key is not yet known here."""
        try:
            pickup = self.open(sealed, "pickup")
        except KeyNotYetKnown as error:
            if agg not in view.unplaced:
                log.warning("heatmap: ride %s unplaced for now (%s); retried later", agg, error)
                view.unplaced[agg] = [sealed, False]
            return False
        view.unplaced.pop(agg, None)
        if isinstance(pickup, list):
            lat, lng = pickup
            view.ride_cell[agg] = h3.latlng_to_cell(lat, lng, BASE_RESOLUTION)
        return True

    def apply_ping(self, view: HeatmapView, ping: Ping) -> HeatmapView:
        driver_id = str(ping.driver_id)
        if view.last_ping_at.get(driver_id, -math.inf) >= ping.at:
            return view  # no newer than the ping already counted (a redelivery, or late)
        view.last_ping_at[driver_id] = ping.at
        cell = h3.latlng_to_cell(ping.lat, ping.lng, BASE_RESOLUTION)
        view.last_cell[driver_id] = cell
        if driver_id in view.available:
            old = view.driver_cell.get(driver_id)
            if old != cell:
                if old is not None:
                    view.supply[old] -= 1
                view.supply[cell] += 1
                view.driver_cell[driver_id] = cell
        return view

    def _set_available(self, view: HeatmapView, driver_id: str, available: bool) -> None:
        if available:
            view.available.add(driver_id)
            cell = view.last_cell.get(driver_id)
            if cell is not None and driver_id not in view.driver_cell:
                view.supply[cell] += 1
                view.driver_cell[driver_id] = cell
        else:
            view.available.discard(driver_id)
            old = view.driver_cell.pop(driver_id, None)
            if old is not None:
                view.supply[old] -= 1
