"""What the matcher decides; the shard application turns each into events."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

from dispatch.domain.pooling import Plan


@dataclass(frozen=True, slots=True)
class MakeOffer:
    ride_id: UUID
    driver_id: UUID
    pickup_eta_s: float
    distance_m: float
    expires_at: float
    # A shared ride's offer: the plan the driver would serve (its pickup, then its drop-off)
    # and each stop's estimated time (epoch s); None for a single ride.
    plan: Plan | None = None
    times: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class ExtendPlan:
    """Put a shared ride into the plan of a driver serving shared rides: ``plan`` is its
    plan with the ride's stops put in, ``times`` each stop's estimated time (epoch s), as
    the matcher judged them (``dispatch.domain.pooling.walk``)."""

    ride_id: UUID
    driver_id: UUID
    plan: Plan
    times: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class ExpireOffer:
    ride_id: UUID


@dataclass(frozen=True, slots=True)
class ExpireRequest:
    ride_id: UUID


@dataclass(frozen=True, slots=True)
class ChangeSurge:
    """Surge cells whose multipliers move, one cadence's, as columns (one entry a cell: a
    cadence may move thousands, and a decision object each would cost more than the
    cadence's arithmetic): the cell, its new multiplier and the curve's target (decimal
    texts, ``"1.35"``), its demand and supply; and the window the demand was counted over."""

    cells: list[str]
    multipliers: list[str]
    targets: list[str]
    demand: list[int]
    supply: list[int]
    window_s: float
    # the curve's settings (``SurgeCurve.record``), recorded with each change
    curve: dict[str, str | float]

    def __len__(self) -> int:
        return len(self.cells)

    def rows(self) -> Iterator[tuple[str, str, str, int, int]]:
        """``(cell, multiplier, target, demand, supply)`` of each cell, in order."""
        return zip(self.cells, self.multipliers, self.targets, self.demand, self.supply,
                   strict=True)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LocateDriver:
    """The driver's pings put it inside exactly ``places`` (geofenced places, debounced):
    the shard records the crossings (``Driver.locate``)."""

    driver_id: UUID
    places: frozenset[str]


@dataclass(frozen=True, slots=True)
class HintDriver:
    """Tell an idle driver where demand outruns supply (``dispatch.matching.hints``): the
    cell, its centre, its waiting rides and available drivers, and the driver's ETA there."""

    driver_id: UUID
    cell: str
    lat: float
    lng: float
    demand: int
    supply: int
    eta_s: float


@dataclass(frozen=True, slots=True)
class StartDispatch:
    """A scheduled ride is due: its time less ``expected_pickup_s`` and ``margin_s``."""

    ride_id: UUID
    expected_pickup_s: float
    margin_s: float


@dataclass(frozen=True, slots=True)
class MarkOverdue:
    """A scheduled ride has no driver at its time (searching, or still held while its
    rider is busy): its rider is told."""

    ride_id: UUID


Decision = (
    MakeOffer
    | ExtendPlan
    | ExpireOffer
    | ExpireRequest
    | ChangeSurge
    | LocateDriver
    | HintDriver
    | StartDispatch
    | MarkOverdue
)
