"""Where a fare's surge came from, checked against the log (``replay fare``, ``replay
verify``).

A ride's fare terms name the surge event that set its pickup cell's multiplier when it was
priced (``SurgeSource``: the event's shard, position in the log and time). The event there
must be a surge event that set the pickup's surge cell to that multiplier, at the time the
terms say, no later than the ride was requested (give or take ``CLOCK_SKEW_S``: the event
and the ride may come from shards with clocks of their own); terms that name no event (the
cell had no change) must be at 1.00. The cell is not recorded (it says where the rider
was): it is found again from the pickup, opened with the rider's key. A quoted ride's
surge is the quote's, whose pickup may lie a few metres from the ride's, so the pickup's
cell or a neighbour will do; a pickup that cannot be opened (erased) leaves the cell
unchecked: some row of the event must then give the multiplier.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import h3

from dispatch.domain.fares import NO_SURGE
from dispatch.domain.ride import CREATED_STATUS
from dispatch.domain.ride_fare import FareTerms, SurgeSource
from dispatch.domain.surge import SURGE_RESOLUTION, recorded_changes
from dispatch.log import LogEvent, LogSource

CLOCK_SKEW_S = 60.0  # how far apart two shards' clocks may be (docs/ARCHITECTURE.md)
# The pickup (lat, lng) of a ride's requested event, or None when it does not open.
Pickup = Callable[[LogEvent], tuple[float, float] | None]


def pickup_cells(pickup: tuple[float, float] | None, quoted: bool) -> frozenset[str] | None:
    """The surge cells a ride's surge may come from: its pickup's (and, quoted, the ring
    around it); None when the pickup is unknown."""
    if pickup is None:
        return None
    try:
        cell = h3.latlng_to_cell(pickup[0], pickup[1], SURGE_RESOLUTION)
    except (h3.H3BaseException, ValueError, TypeError):  # a damaged pickup: not checked
        return None
    return frozenset(h3.grid_disk(cell, 1) if quoted else [cell])


def surge_problem(
    surge: Decimal,
    found: SurgeSource,
    event: LogEvent | None,
    requested_at: float,
    cells: frozenset[str] | None,
) -> str | None:
    """Why ``surge`` from ``found`` is not what the log says (None: it is). ``event``: the
    event at the place ``found`` names (None when it names none, or the log has none
    there); ``cells``: the surge cells the ride's pickup allows (None: unknown)."""
    if found.shard is None:
        if surge != NO_SURGE:
            return f"surge {surge} names no surge event (only 1.00 may)"
        return None
    where = f"{found.shard}:{found.position}"
    if event is None:
        return f"surge {surge} names the event at {where}, and the log has none there"
    rows = {c.cell: Decimal(c.multiplier) for c in recorded_changes(event.topic, event.data)}
    if not rows:
        return f"surge {surge} names the event at {where}, a {event.topic}, not a surge event"
    if found.at is None or abs(found.at - event.at) > 1e-3:
        return f"surge {surge} names the event at {where} at {found.at}, which is at {event.at}"
    if event.at > requested_at + CLOCK_SKEW_S:
        return f"surge {surge} names the event at {where}, later than the ride's request"
    candidates = rows if cells is None else {c: m for c, m in rows.items() if c in cells}
    if surge not in candidates.values():
        whose = "any cell" if cells is None else "the pickup's surge cell"
        return f"surge {surge} names the event at {where}, which does not set {whose} to it"
    return None


def surge_events(source: LogSource, places: set[tuple[int, int]]) -> dict[Any, LogEvent]:
    """The events at ``places`` ((shard, position)), read once per shard from the first
    one asked for; a place the log has no event at is left out."""
    wanted: dict[int, set[int]] = defaultdict(set)
    for shard, position in places:
        wanted[shard].add(position)
    out: dict[Any, LogEvent] = {}
    shards = set(source.shards())
    for shard, positions in wanted.items():
        if shard not in shards:
            continue
        last = max(positions)
        for event in source.read(shard, max(0, min(positions) - 1)):
            if event.position > last:
                break
            if event.position in positions:
                out[(shard, event.position)] = event
    return out


@dataclass(frozen=True)
class Claim:
    """A ride's surge as its terms recorded it, where the ride's event is."""

    where: str
    ride_id: str
    surge: Decimal
    found: SurgeSource
    requested_at: float
    cells: frozenset[str] | None


@dataclass
class SurgeClaims:
    """The surge claims of the rides a pass over the log met, checked at its end against
    the events they name (each shard read once more, from the first event named)."""

    pickup: Pickup
    claims: list[Claim] = field(default_factory=list)
    # rides whose recorded source does not read: (where, ride, why)
    unreadable: list[tuple[str, str, str]] = field(default_factory=list)

    def see(self, e: LogEvent) -> None:
        """Collect the claim of a ride's requested event (any other event: nothing)."""
        if e.topic not in CREATED_STATUS:
            return
        fare = e.data.get("fare")
        if not isinstance(fare, dict) or fare.get("surge_from") is None:
            return
        try:
            terms = FareTerms.from_data(fare)
        except (KeyError, TypeError, ValueError, ArithmeticError) as error:
            self.unreadable.append((e.where, e.aggregate_id, f"its fare terms do not read: "
                                    f"{error}"))  # fmt: skip
            return
        if terms.surge_from is not None:
            cells = pickup_cells(self.pickup(e), terms.quote is not None)
            self.claims.append(Claim(e.where, e.aggregate_id, terms.surge, terms.surge_from,
                                     e.at, cells))  # fmt: skip

    def problems(self, source: LogSource) -> list[tuple[Claim, str]]:
        """Each claim the log does not bear out, with the reason."""
        places: set[tuple[int, int]] = set()
        for c in self.claims:
            if c.found.shard is not None and c.found.position is not None:
                places.add((c.found.shard, c.found.position))
        events = surge_events(source, places)
        out = []
        for claim in self.claims:
            event = events.get((claim.found.shard, claim.found.position))
            problem = surge_problem(claim.surge, claim.found, event, claim.requested_at,
                                    claim.cells)  # fmt: skip
            if problem is not None:
                out.append((claim, problem))
        return out
