"""What the matcher decides; the shard application turns each into events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple
from uuid import UUID


@dataclass(frozen=True, slots=True)
class MakeOffer:
    ride_id: UUID
    driver_id: UUID
    pickup_eta_s: float
    distance_m: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class ExpireOffer:
    ride_id: UUID


@dataclass(frozen=True, slots=True)
class ExpireRequest:
    ride_id: UUID


class ChangeSurge(NamedTuple):
    """A surge cell's multiplier moves (decimal texts, ``"1.35"``), with its inputs (a
    tuple: a cadence may make thousands)."""

    cell: str
    multiplier: str
    target: str
    demand: int
    supply: int
    window_s: float


Decision = MakeOffer | ExpireOffer | ExpireRequest | ChangeSurge
