"""Rides view: status, rider, driver and a timeline of the ride's events with their times.

An ended ride (completed, cancelled, expired) leaves the view ``retention_s`` seconds after
it ended, by the clock of the log: the time of the later ride events of its shard. So a
replay evicts the same rides at the same events, whatever order the shards are folded in.
Evicted rows wait in ``RidesView.evicted`` until the view's keeper moves them to the ended
rides archive (``projections.keeper``), which answers for them from then on.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dispatch.domain.driver import Driver
from dispatch.domain.pooling import PICKUP
from dispatch.domain.ride import CREATED_STATUS, RIDE_ENDINGS, RIDE_TRANSITIONS, Ride, RideStatus
from dispatch.log import LogEvent, parse_time
from projections.parts import ITSELF
from projections.rows import pickled_by_position, rows_from_chunks, rows_to_chunks

# A ride's status after each of its events: the aggregate's own transition table (None: a
# notice, the status is kept).
_STATUS_AFTER: dict[str, str | None] = {
    **{topic: status.value for topic, status in CREATED_STATUS.items()},
    **{
        topic: None if after is None else after.value
        for topic, (_, after) in RIDE_TRANSITIONS.items()
    },
}
_STARTED = Ride.DispatchStarted.TOPIC


_KIND = {topic: topic.removeprefix("dispatch.") for topic in _STATUS_AFTER}


@pickled_by_position
@dataclass(slots=True)
class RideRow:
    ride_id: str
    rider_id: str
    pickup: list[float]
    dropoff: list[float]
    status: str
    requested_at: float
    updated_at: float
    version: int
    driver_id: str | None = None
    offered_to: str | None = None
    pickup_eta_s: float | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    # a scheduled ride's time (epoch s; None: an immediate ride)
    scheduled_for: float | None = None
    # a shared ride: its own stops' estimated times (epoch s) in its vehicle's plan, as the
    # plan was last judged (an offer's or an extension's); None: not planned
    planned_pickup_at: float | None = None
    planned_dropoff_at: float | None = None


_ENDINGS = frozenset(RIDE_ENDINGS)
# A driver's events that carry a shared plan's stops and their estimated times.
_PLANNED = frozenset({Driver.OfferReceived.TOPIC, Driver.PlanExtended.TOPIC})


class RidesView(dict[str, RideRow]):
    """Rides by id, and the ended ones by shard and end time, next to leave.

    Kept by ride id (``projections.parts``); the rest (the ending heaps, each rider's
    booked and active rides, the evicted rows not yet archived) kept whole. A fold that
    changes or removes another ride's row than its event's names it in ``touched``."""

    KEPT_BY_KEY: ClassVar[tuple[str, ...]] = (ITSELF,)

    def __init__(self) -> None:
        super().__init__()
        self.touched: set[str] = set()  # not kept: drained by ``ViewSet.take_changed``
        self.ending: dict[int, list[tuple[float, str]]] = {}  # a heap per shard
        self.evicted: dict[str, RideRow] = {}  # left the view, not archived yet
        # each rider's scheduled rides whose dispatch has not started (booked, not ended)
        self.booked: dict[str, set[str]] = {}
        # each rider's immediate ride not ended (a rider holds one at a time)
        self.active: dict[str, str] = {}

    def booked_of(self, rider_id: str) -> list[RideRow]:
        """The rider's scheduled rides not yet dispatched, soonest first."""
        rows = [self[r] for r in self.booked.get(rider_id, ()) if r in self]
        return sorted(rows, key=lambda row: (row.scheduled_for or 0.0, row.ride_id))

    def find(self, ride_id: str) -> RideRow | None:
        """The ride, also when it left the view and is not archived yet."""
        return self.get(ride_id) or self.evicted.get(ride_id)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Kept as chunks of rows (``projections.rows``; a ride's timeline is most of it)."""
        chunks = rows_to_chunks(self.values(), RideRow, RIDE_CHUNK)
        evicted = rows_to_chunks(self.evicted.values(), RideRow, RIDE_CHUNK)
        return _rides_view, (chunks, self.ending, evicted, self.booked, self.active)


RIDE_CHUNK = 200


def _rides_view(
    chunks: list[bytes],
    ending: dict[int, list[tuple[float, str]]],
    evicted: list[bytes],
    booked: dict[str, set[str]],
    active: dict[str, str],
) -> RidesView:
    view = RidesView()
    view.update((row.ride_id, row) for row in rows_from_chunks(chunks, RideRow))
    view.evicted = {row.ride_id: row for row in rows_from_chunks(evicted, RideRow)}
    view.ending, view.booked, view.active = ending, booked, active
    return view


def _moved(row: RideRow, topic: str, status: str, data: dict[str, Any]) -> None:
    """Who holds or is offered the ride after an event that moved it."""
    if topic == Ride.Offered.TOPIC:
        row.offered_to, row.pickup_eta_s = data["driver_id"], data["pickup_eta_s"]
    elif topic in (Ride.Accepted.TOPIC, Ride.Pooled.TOPIC):  # (pooled: no offer before)
        row.driver_id, row.offered_to = data["driver_id"], None
    elif status == RideStatus.REQUESTED:
        row.offered_to = None
        row.driver_id = None
    elif status == RideStatus.CANCELLED:
        row.offered_to = None


class RidesProjection:
    """``retention_s`` None keeps every ride (replay's time travel)."""

    name = "rides"
    topics = frozenset(_STATUS_AFTER) | _PLANNED

    def __init__(self, retention_s: float | None = None) -> None:
        self.retention_s = retention_s
        self.params = f"retention_s={retention_s}"

    def initial(self) -> RidesView:
        return RidesView()

    def apply(self, view: RidesView, e: LogEvent) -> RidesView:
        if e.topic in _PLANNED:
            self._planned(view, e.data)
            return view
        if e.topic not in _STATUS_AFTER:
            return view
        topic, data, status = e.topic, e.data, _STATUS_AFTER[e.topic]
        if topic in CREATED_STATUS:
            assert status is not None
            row = RideRow(
                e.aggregate_id,
                data["rider_id"],
                data["pickup"],
                data["dropoff"],
                status,
                e.at,
                e.at,
                e.version,
            )
            view[e.aggregate_id] = row
            if topic == Ride.Booked.TOPIC:
                row.scheduled_for = parse_time(data["scheduled_for"])
                view.booked.setdefault(row.rider_id, set()).add(e.aggregate_id)
            else:
                view.active[row.rider_id] = e.aggregate_id
        else:
            found = view.get(e.aggregate_id)
            if found is None:
                return view
            row = found
            row.updated_at, row.version = e.at, e.version
            if status is not None:  # (None: a notice, Overdue: only the timeline says it)
                row.status = status
                _moved(row, topic, status, data)
            if row.scheduled_for is not None and (topic == _STARTED or topic in _ENDINGS):
                self._unbook(view, row)
            if topic == _STARTED:  # a booking dispatched: the rider's active ride
                view.active[row.rider_id] = row.ride_id
            elif topic in _ENDINGS and view.active.get(row.rider_id) == row.ride_id:
                del view.active[row.rider_id]
        row.timeline.append({"at": e.at, "event": _KIND[topic], "position": e.where, **data})
        if self.retention_s is not None:
            if topic in _ENDINGS:
                heapq.heappush(view.ending.setdefault(e.shard, []), (e.at, e.aggregate_id))
            self._evict(view, e.shard, e.at - self.retention_s)
        return view

    @staticmethod
    def _planned(view: RidesView, data: dict[str, Any]) -> None:
        """A shared plan offered or extended: each ride of it in the view gets its own
        stops' estimated times (and nothing of the others')."""
        plan, times = data.get("plan"), data.get("times")
        if not isinstance(plan, list) or not isinstance(times, list) or len(plan) != len(times):
            return
        for (ride_id, kind), at in zip(plan, times, strict=True):
            row = view.get(str(ride_id))
            if row is None:
                continue
            view.touched.add(row.ride_id)
            if kind == PICKUP:
                row.planned_pickup_at = float(at)
            else:
                row.planned_dropoff_at = float(at)

    @staticmethod
    def _unbook(view: RidesView, row: RideRow) -> None:
        booked = view.booked.get(row.rider_id)
        if booked is not None:
            booked.discard(row.ride_id)
            if not booked:
                del view.booked[row.rider_id]

    @staticmethod
    def _evict(view: RidesView, shard: int, ended_by: float) -> None:
        """Every ride of ``shard`` that ended at or before ``ended_by`` leaves the view."""
        heap = view.ending.get(shard)
        while heap and heap[0][0] <= ended_by:
            _, ride_id = heapq.heappop(heap)
            row = view.pop(ride_id, None)
            if row is not None:
                view.evicted[ride_id] = row
                view.touched.add(ride_id)
