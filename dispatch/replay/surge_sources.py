"""Where a fare's surge came from, checked against the log (``replay fare``, ``replay
verify``).

A ride's fare terms name the surge event that set its pickup cell's multiplier when it was
priced (``SurgeSource``: shard and position in the log, and the cell). The event at that
place must be a surge event that set that cell to that multiplier, no later than the ride
was requested; terms that name no event (the cell had no change) must be at 1.00. A quoted
ride's cell is the quote's pickup's, which may lie a few metres from the ride's, so the
cell is checked against the event, not against the ride's pickup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from dispatch.domain.fares import NO_SURGE
from dispatch.domain.ride import CREATED_STATUS
from dispatch.domain.ride_fare import FareTerms, SurgeSource
from dispatch.domain.surge import recorded_changes
from dispatch.log import LogEvent, LogSource


def surge_event(source: LogSource, shard: int, position: int) -> LogEvent | None:
    """The event at ``position`` of ``shard``, or None when the log has none there."""
    if shard not in source.shards() or position < 1:
        return None
    for event in source.read(shard, position - 1):
        return event if event.position == position else None
    return None


def surge_problem(
    surge: Decimal, found: SurgeSource, event: LogEvent | None, requested_at: float
) -> str | None:
    """Why ``surge`` from ``found`` is not what the log says (None: it is). ``event``: the
    event at the place ``found`` names (None when it names none, or the log has none)."""
    if found.shard is None:
        if surge != NO_SURGE:
            return f"surge {surge} names no surge event for cell {found.cell} (only 1.00 may)"
        return None
    where = f"{found.shard}:{found.position}"
    if event is None:
        return f"surge {surge} names the event at {where}, and the log has none there"
    rows = {c.cell: c.multiplier for c in recorded_changes(event.topic, event.data)}
    if not rows:
        return f"surge {surge} names the event at {where}, a {event.topic}, not a surge event"
    if found.cell not in rows:
        return f"surge {surge} names the event at {where}, which does not change {found.cell}"
    if Decimal(rows[found.cell]) != surge:
        return (f"surge {surge} names the event at {where}, which set {found.cell} to "
                f"{rows[found.cell]}")  # fmt: skip
    if event.at > requested_at + 1e-6:
        return f"surge {surge} names the event at {where}, later than the ride's request"
    return None


@dataclass(frozen=True)
class Claim:
    """A ride's surge as its terms recorded it, where the ride's event is."""

    where: str
    ride_id: str
    surge: Decimal
    found: SurgeSource
    requested_at: float


@dataclass
class SurgeClaims:
    """The surge claims of the rides a pass over the log met, checked at its end against
    the events they name (each read once)."""

    claims: list[Claim] = field(default_factory=list)

    def see(self, e: LogEvent) -> None:
        """Collect the claim of a ride's requested event (any other event: nothing)."""
        if e.topic not in CREATED_STATUS:
            return
        fare = e.data.get("fare")
        if not isinstance(fare, dict) or fare.get("surge_from") is None:
            return
        try:
            terms = FareTerms.from_data(fare)
        except (KeyError, TypeError, ValueError, ArithmeticError):
            return  # terms that do not read are the fare check's to flag
        if terms.surge_from is not None:
            self.claims.append(Claim(e.where, e.aggregate_id, terms.surge, terms.surge_from,
                                     e.at))  # fmt: skip

    def problems(self, source: LogSource) -> list[tuple[Claim, str]]:
        """Each claim the log does not bear out, with the reason."""
        events: dict[tuple[int, int], LogEvent | None] = {}
        out = []
        for claim in self.claims:
            event = None
            found = claim.found
            if found.shard is not None and found.position is not None:
                key = (found.shard, found.position)
                if key not in events:
                    events[key] = surge_event(source, *key)
                event = events[key]
            problem = surge_problem(claim.surge, found, event, claim.requested_at)
            if problem is not None:
                out.append((claim, problem))
        return out
