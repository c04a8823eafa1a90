"""Drivers view: status, current ride and counts per driver, plus totals per status."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dispatch.domain.driver import (
    AVAILABILITY_TOPICS,
    Driver,
    DriverStatus,
    OfferOutcome,
    ReleaseReason,
    next_availability,
)
from dispatch.log import LogEvent
from projections.rows import pickled_by_position, rows_from_chunks, rows_to_chunks
from projections.tenures import Tenures

ERASED_TOPICS = frozenset({Driver.Erased.TOPIC, Driver.ErasedByOperator.TOPIC})


@pickled_by_position
@dataclass(slots=True)
class DriverRow:
    driver_id: str
    name: str
    status: str = DriverStatus.OFFLINE.value
    ride_id: str | None = None
    offline_after_trip: bool = False
    offers: int = 0
    declined: int = 0
    expired: int = 0
    trips: int = 0
    cancelled: int = 0
    updated_at: float = 0.0
    version: int = 0
    erased: bool = False  # its pings are refused (a row kept before this field: getattr)
    # ``Vehicle.to_data()`` (None: registered before vehicles, or a row kept before this
    # field: getattr; either drives the default vehicle)
    vehicle: dict[str, Any] | None = None


@dataclass
class DriversView:
    rows: dict[str, DriverRow] = field(default_factory=dict)
    by_status: Counter[str] = field(default_factory=Counter)
    tenures: Tenures = field(default_factory=Tenures)  # drivers handed off between shards
    # Kept by driver id (``projections.parts``); the totals and tenures kept whole.
    KEPT_BY_KEY: ClassVar[tuple[str, ...]] = ("rows",)

    def __getstate__(self) -> dict[str, Any]:
        """The rows in pickled chunks (``projections.rows``)."""
        chunks = rows_to_chunks(self.rows.values(), DriverRow)
        return {"rows": chunks, "by_status": self.by_status, "tenures": self.tenures}

    def __setstate__(self, state: dict[str, Any]) -> None:
        rows = rows_from_chunks(state["rows"], DriverRow)
        self.rows = {row.driver_id: row for row in rows}
        self.by_status, self.tenures = state["by_status"], state["tenures"]


class DriversProjection:
    name = "drivers"
    topics = AVAILABILITY_TOPICS | ERASED_TOPICS
    params = ""

    def initial(self) -> DriversView:
        return DriversView()

    def apply(self, view: DriversView, e: LogEvent) -> DriversView:
        topic = e.topic
        admitted = view.tenures.admits(e)
        row = view.rows.get(e.aggregate_id)
        new = row is None and topic in (Driver.Created.TOPIC, Driver.Arrived.TOPIC)
        if new:  # registered at home; or arrived elsewhere, read before its home's events
            row = view.rows[e.aggregate_id] = DriverRow(e.aggregate_id, e.data["name"])
        if row is None:
            return view
        if topic in (Driver.Created.TOPIC, Driver.Arrived.TOPIC) and e.data.get("vehicle"):
            row.vehicle = e.data["vehicle"]
        if topic in ERASED_TOPICS:  # not an availability event: the status stays offline
            row.erased = True
            return view
        if topic == Driver.Created.TOPIC:  # the home's name, whichever shard was read first:
            row.name = e.data["name"]  # sealed, each shard's copy is another token

        _count(row, e)
        if not admitted:  # a shard that no longer serves it: its counts only
            if new:  # its registration, read after a later tenure had begun: not current
                row.status = DriverStatus.HANDED_OFF.value
                view.by_status[row.status] += 1
            return view
        if not new:
            view.by_status[row.status] -= 1
        after, row.offline_after_trip = next_availability(
            (row.status, row.offline_after_trip), topic
        )
        status = str(after)
        data = e.data
        if topic == Driver.OfferReceived.TOPIC:
            row.ride_id = data["ride_id"]
        elif topic in _FREE:  # a tenure begins free: a stale tenure's ride is not its
            row.ride_id = None
        elif topic == Driver.PlanExtended.TOPIC and data["plan"]:  # the next stop's ride
            row.ride_id = data["plan"][0][0]
        elif topic in _POOL_ENDED and row.ride_id == data["ride_id"]:
            row.ride_id = None  # (the next stop's ride is known again at the next extension)
        row.status, row.updated_at, row.version = status, e.at, e.version
        view.by_status[status] += 1
        return view


# A shared plan's ride ended, others left (docs/ARCHITECTURE.md, "Shared rides").
_POOL_ENDED = frozenset({Driver.PoolRideEnded.TOPIC, Driver.AboardEmptied.TOPIC})
_FREE = frozenset(
    {Driver.OfferClosed.TOPIC, Driver.Released.TOPIC, Driver.Arrived.TOPIC, Driver.Returned.TOPIC}
)


def _count(row: DriverRow, e: LogEvent) -> None:
    """The driver's counts, summed over every shard that served it (in any order)."""
    topic = e.topic
    if topic == Driver.OfferReceived.TOPIC:
        row.offers += 1
    elif topic == Driver.OfferClosed.TOPIC:
        outcome: OfferOutcome = e.data["outcome"]
        if outcome == "declined":
            row.declined += 1
        elif outcome == "expired":
            row.expired += 1
    elif topic == Driver.Released.TOPIC or topic in _POOL_ENDED:
        reason: ReleaseReason = e.data["reason"]
        if reason == "completed":
            row.trips += 1
        elif reason == "cancelled_by_driver":
            row.cancelled += 1
