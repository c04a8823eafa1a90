"""The log checker: folds a shard's events and reports every invariant violation.

Used by the simulator's report, by ``dispatch replay verify`` and by the failover tests:
- each aggregate's versions are gapless and unique;
- only legal transitions (the aggregates' own tables, ``RIDE_TRANSITIONS`` and
  ``DRIVER_TRANSITIONS``);
- no driver holds two active rides at any moment, no ride has two drivers;
- every offer is resolved (accepted, declined, expired or cancelled) once its expiry passed;
- a revocation raises its principal's token version (``Credentials``);
- every command id has exactly one outcome within the idempotency window: a second
  record of a command id is a ``duplicate_outcome`` unless the first had left the window
  by then (the first record's own window; for a record that carries none, written before
  windows were recorded, the second's; with neither, forever);
- every completed ride's fare is the one its terms (in its requested event) give for the
  trip it recorded, and a ride without terms records none (``fare_mismatch``);
- a completed ride's recorded trip is the one its events give (``trip_mismatch``): a
  duration timed by the clock is the seconds from its ``TripStarted`` to its completion
  (within the half second of rounding), and, when its terms recorded the road factor, the
  distance is the great circle between its requested pickup and drop-off times it;
- a rider holds at most one active ride (requested, or a scheduled one whose dispatch
  started), and every due scheduled ride was dispatched or explicitly expired
  (``invariants_scheduled``);
- a driver serving shared rides holds several rides only when they were pooled to it
  (``Ride.Pooled``: no offer to it meanwhile), and every plan it recorded is well formed,
  names only shared rides it holds, and keeps the vehicle's seats and its riders' bounds
  with the times it recorded (``invariants_pooled``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dispatch.domain.command_record import CommandRecord
from dispatch.domain.credentials import Credentials
from dispatch.domain.driver import (
    DRIVER_TRANSITIONS,
    REGISTERED,
    Availability,
    Driver,
    next_availability,
)
from dispatch.domain.ride import (
    CREATED_STATUS,
    HOLDS_NO_DRIVER,
    RIDE_TRANSITIONS,
    TERMINAL,
    Ride,
    RideStatus,
)
from dispatch.domain.ride_fare import FareTerms, final_fare
from dispatch.domain.rider import Rider
from dispatch.domain.surge import (
    COLUMNS,
    NO_SURGE_TEXT,
    Surge,
    SurgeChange,
    recorded_changes,
)
from dispatch.invariants_pooled import TOPICS as POOLED_TOPICS
from dispatch.invariants_pooled import PooledChecks
from dispatch.invariants_scheduled import TOPICS as SCHEDULED_TOPICS
from dispatch.invariants_scheduled import ScheduledChecks
from dispatch.log import LogEvent, parse_time
from dispatch.matching.geo import haversine_m
from dispatch.pricing.surge import rederive
from dispatch.privacy import DamagedValue, KeyNotYetKnown, Opener, as_is

RIDER_EVENTS = {
    Rider.RideRequested.TOPIC,
    Rider.RideEnded.TOPIC,
    Rider.RideBooked.TOPIC,
    Rider.ScheduledRideActivated.TOPIC,
}
_RECORDS = frozenset({CommandRecord.Created.TOPIC, CommandRecord.Carried.TOPIC})
_REVOKED = frozenset({Credentials.TokensRevoked.TOPIC, Credentials.TokensRevokedByOperator.TOPIC})


@dataclass(frozen=True, slots=True)
class Violation:
    position: str
    aggregate_id: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.position}] {self.kind}: {self.detail} (aggregate {self.aggregate_id})"


@dataclass(frozen=True, slots=True)
class CommandSeen:
    """A command id's latest record: where, when (epoch s) and the window it carried."""

    where: str
    at: float
    window_s: float | None


@dataclass
class InvariantChecker:
    violations: list[Violation] = field(default_factory=list)
    events: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    ride_status: dict[str, RideStatus] = field(default_factory=dict)
    drivers: dict[str, Availability] = field(default_factory=dict)
    rider_active: dict[str, str | None] = field(default_factory=dict)
    rider_scheduled: dict[str, set[str]] = field(default_factory=dict)
    scheduled: ScheduledChecks = field(default_factory=ScheduledChecks)
    pooled: PooledChecks = field(default_factory=PooledChecks)
    driver_ride: dict[str, str] = field(default_factory=dict)
    # A driver serving shared rides: the rides put in its plan (``Ride.Pooled``) and live.
    driver_pool: dict[str, set[str]] = field(default_factory=dict)
    ride_driver: dict[str, str] = field(default_factory=dict)
    open_offers: dict[str, tuple[float, str]] = field(default_factory=dict)
    command_ids: dict[str, CommandSeen] = field(default_factory=dict)
    token_versions: dict[str, int] = field(default_factory=dict)  # credentials -> version
    ride_terms: dict[str, Any] = field(default_factory=dict)  # live priced rides' terms
    ride_ends: dict[str, Any] = field(default_factory=dict)  # live rides' pickup, drop-off
    trip_started: dict[str, float] = field(default_factory=dict)  # live rides' trip start
    surge_levels: dict[str, tuple[str, int]] = field(default_factory=dict)  # cell -> (x, shard)
    last_time: float = float("-inf")
    # How a sealed pickup or drop-off is read (docs/PRIVACY.md); one that does not read as a
    # point (sealed and not opened, erased, damaged) leaves the trip's distance unchecked.
    open: Opener = as_is

    def check(self, e: LogEvent) -> None:
        self.events += 1
        agg_id, topic = e.aggregate_id, e.topic
        self.last_time = max(self.last_time, e.at)
        last = self.versions.get(agg_id, 0)
        if e.version != last + 1:
            self._flag(e, "version_gap", f"version {e.version} where {last + 1} was expected")
        self.versions[agg_id] = max(e.version, last)
        if topic in SCHEDULED_TOPICS:
            self.scheduled.check(e)
        if topic in POOLED_TOPICS:
            for where, aggregate_id, kind, detail in self.pooled.check(e):
                self.violations.append(Violation(where, aggregate_id, kind, detail))
        if topic in RIDE_TRANSITIONS:
            self._ride(e)
        elif topic in DRIVER_TRANSITIONS:
            self._driver(e)
        elif topic in RIDER_EVENTS:
            self._rider(e)
        elif topic in CREATED_STATUS:
            self.ride_status[agg_id] = CREATED_STATUS[topic]
            if e.data.get("fare") is not None:
                self.ride_terms[agg_id] = e.data["fare"]
            self.ride_ends[agg_id] = (
                self.point(e.data.get("pickup"), "pickup"),
                self.point(e.data.get("dropoff"), "dropoff"),
            )
        elif topic == Driver.Created.TOPIC:
            self.drivers[agg_id] = REGISTERED
        elif topic == Driver.Arrived.TOPIC:  # handed off to this shard: its first event here
            self.drivers[agg_id] = next_availability(REGISTERED, topic)
        elif topic == Rider.Created.TOPIC:
            self.rider_active[agg_id] = None
        elif topic in _RECORDS:  # a carried record counts as the command id's record here
            self._command_record(e)
        elif topic in _REVOKED:
            self._revocation(e)
        elif topic == Surge.Recomputed.TOPIC:
            self._surge_recomputed(e)
        elif topic == Surge.Changed.TOPIC:
            for change in recorded_changes(topic, e.data):
                self._surge(e, change)

    def finish(self) -> list[Violation]:
        """Flag offers whose expiry passed before the log's last event and were never closed."""
        for ride_id, (expires_at, where) in self.open_offers.items():
            if expires_at < self.last_time:
                self.violations.append(
                    Violation(
                        where,
                        ride_id,
                        "unresolved_offer",
                        f"offer expired at {expires_at:.0f} (epoch s) but was never closed",
                    )
                )
        self.open_offers.clear()
        for where, ride_id, kind, detail in self.scheduled.finish(self.last_time):
            self.violations.append(Violation(where, ride_id, kind, detail))
        return self.violations

    # -- per aggregate type ------------------------------------------------------------
    def _ride(self, e: LogEvent) -> None:
        ride_id = e.aggregate_id
        allowed, after = RIDE_TRANSITIONS[e.topic]
        status = self.ride_status.get(ride_id)
        if status not in allowed:
            self._flag(e, "illegal_transition", f"{e.kind} while the ride is {status}")
        if after is None:  # a notice (Overdue): the ride keeps its status
            return
        self.ride_status[ride_id] = after
        if e.topic == Ride.TripStarted.TOPIC:
            self.trip_started[ride_id] = e.at
        if after in TERMINAL:
            terms = self.ride_terms.pop(ride_id, None)
            ends = self.ride_ends.pop(ride_id, None)
            started = self.trip_started.pop(ride_id, None)
            if e.topic == Ride.Completed.TOPIC:
                self._trip(e, terms, ends, started)
                self._fare(e, terms)
        driver = e.data.get("driver_id")
        if e.topic == Ride.Offered.TOPIC:
            assert driver is not None
            held = self.driver_ride.get(driver) or min(
                self.driver_pool.get(driver, ()), default=None
            )
            if held is not None and held != ride_id:
                self._flag(
                    e,
                    "driver_in_two_rides",
                    f"driver {driver} offered ride {ride_id} while holding {held}",
                )
            other = self.ride_driver.get(ride_id)
            if other is not None and other != driver:
                self._flag(
                    e, "ride_with_two_drivers", f"ride offered to {driver} while held by {other}"
                )
            self.driver_ride[driver] = ride_id
            self.ride_driver[ride_id] = driver
            self.open_offers[ride_id] = (parse_time(e.data["offer_expires_at"]), e.where)
        elif e.topic == Ride.Pooled.TOPIC:
            if driver is None:  # flagged by the pooled checks (pooled_event_damaged)
                return
            other = self.ride_driver.get(ride_id)
            if other is not None and other != driver:
                self._flag(
                    e, "ride_with_two_drivers", f"ride pooled to {driver} while held by {other}"
                )
            held = self.driver_ride.get(driver)
            if held is not None and held != ride_id and held not in self.pooled.terms:
                self._flag(
                    e,
                    "driver_in_two_rides",
                    f"driver {driver} pooled ride {ride_id} while holding single ride {held}",
                )
            self.ride_driver[ride_id] = driver
            self.driver_pool.setdefault(driver, set()).add(ride_id)
        elif e.topic == Ride.Accepted.TOPIC:
            self.open_offers.pop(ride_id, None)
            holder = self.ride_driver.get(ride_id)
            if holder != driver:
                self._flag(
                    e, "ride_with_two_drivers", f"ride accepted by {driver} but offered to {holder}"
                )
        elif after in HOLDS_NO_DRIVER:
            self.open_offers.pop(ride_id, None)
            holder = self.ride_driver.pop(ride_id, None)
            if holder is not None and self.driver_ride.get(holder) == ride_id:
                del self.driver_ride[holder]
            if holder is not None and holder in self.driver_pool:
                self.driver_pool[holder].discard(ride_id)
                if not self.driver_pool[holder]:
                    del self.driver_pool[holder]

    def point(self, value: Any, name: str) -> tuple[float, float] | None:
        """A requested ride's pickup or drop-off as a point, or None when it does not read
        as one (sealed without an opener, erased, or damaged): not checked then."""
        try:
            opened = self.open(value, name)
        except (DamagedValue, KeyNotYetKnown):
            return None
        if (
            isinstance(opened, list | tuple)
            and len(opened) == 2
            and all(isinstance(c, int | float) and not isinstance(c, bool) for c in opened)
        ):
            return float(opened[0]), float(opened[1])
        return None

    def _trip(
        self, e: LogEvent, terms: dict[str, Any] | None, ends: Any, started: float | None
    ) -> None:
        """The completed ride's recorded trip against what its events give."""
        metres, seconds = e.data.get("distance_m"), e.data.get("duration_s")
        if metres is None or seconds is None:  # completed before trips were recorded
            return
        found = e.data.get("trip_by") or {}
        # Timed by the clock: completion minus start, both event times (the shard's clock),
        # rounded to whole seconds (never below 0) when recorded; a start this checker
        # did not see (the log read from after it) is not checked.
        if found.get("duration") == "clock" and started is not None:
            elapsed = max(0.0, e.at - started)
            if abs(int(seconds) - elapsed) > 0.5 + 1e-3:
                self._flag(
                    e, "trip_mismatch",
                    f"duration {seconds} s recorded, {elapsed:.3f} s from trip start to end",
                )  # fmt: skip
        if found.get("distance") == "road_network":  # routed over the graph it names
            self._road_trip(e, int(metres), ends)
            return
        factor = (terms or {}).get("road_factor")
        if factor is None or ends is None or None in ends:
            return
        (plat, plng), (dlat, dlng) = ends
        expected = round(haversine_m(plat, plng, dlat, dlng) * float(factor))
        if int(metres) != expected:
            self._flag(
                e, "trip_mismatch",
                f"distance {metres} m recorded, the great circle times {factor} gives "
                f"{expected} m",
            )  # fmt: skip

    def _road_trip(self, e: LogEvent, metres: int, ends: Any) -> None:
        """A trip routed over the road network: this checker holds no graph, so it checks
        only that the route is no shorter than the great circle between its ends (less 1 %
        and a metre for how the router measures its access legs) and names its graph."""
        if not (e.data.get("trip_by") or {}).get("road_graph"):
            self._flag(e, "trip_mismatch", "a trip routed over a road graph it does not name")
        if ends is None or None in ends:
            return
        (plat, plng), (dlat, dlng) = ends
        crow = haversine_m(plat, plng, dlat, dlng)
        if metres < crow * 0.99 - 1:
            self._flag(
                e, "trip_mismatch",
                f"distance {metres} m routed over the road network, shorter than the great "
                f"circle between its ends ({crow:.0f} m)",
            )  # fmt: skip

    def _fare(self, e: LogEvent, terms: dict[str, Any] | None) -> None:
        """The completed ride's recorded fare against its terms over its recorded trip."""
        recorded, metres, seconds = (e.data.get(k) for k in ("fare", "distance_m", "duration_s"))
        if metres is None or seconds is None:  # completed before fares: nothing to check
            return
        if terms is None:
            if recorded is not None:
                self._flag(e, "fare_mismatch", "a fare recorded for a ride with no fare terms")
            return
        try:
            expected = final_fare(FareTerms.from_data(terms), int(metres), int(seconds))
        except (KeyError, TypeError, ValueError, ArithmeticError) as error:
            self._flag(e, "fare_mismatch", f"its fare terms do not price: {error}")
            return
        if recorded != expected.to_data():
            self._flag(
                e, "fare_mismatch", f"recorded {recorded}, its terms give {expected.to_data()}"
            )

    def _driver(self, e: LogEvent) -> None:
        driver_id = e.aggregate_id
        state = self.drivers.get(driver_id)
        status = state[0] if state is not None else None
        if status not in DRIVER_TRANSITIONS[e.topic][0]:
            self._flag(e, "illegal_transition", f"{e.kind} while the driver is {status}")
        self.drivers[driver_id] = next_availability(state or REGISTERED, e.topic)

    def _rider(self, e: LogEvent) -> None:
        rider_id, ride = e.aggregate_id, e.data["ride_id"]
        active = self.rider_active.get(rider_id)
        booked = self.rider_scheduled.setdefault(rider_id, set())
        if e.topic == Rider.RideBooked.TOPIC:
            booked.add(ride)
        elif e.topic in (Rider.RideRequested.TOPIC, Rider.ScheduledRideActivated.TOPIC):
            if active is not None:
                self._flag(e, "rider_with_two_rides", f"{e.kind} {ride} while {active} is active")
            if e.topic == Rider.ScheduledRideActivated.TOPIC and ride not in booked:
                self._flag(e, "illegal_transition", f"activated {ride}, which was not booked")
            booked.discard(ride)
            self.rider_active[rider_id] = ride
        elif ride in booked:  # a scheduled ride ended before its dispatch started
            booked.discard(ride)
        else:
            if active != ride:
                self._flag(e, "illegal_transition", f"ended {ride} but the active ride is {active}")
            self.rider_active[rider_id] = None

    def _command_record(self, e: LogEvent) -> None:
        command_id, window = e.data["command_id"], e.data.get("window_s")
        seen = CommandSeen(e.where, e.at, window)
        before = self.command_ids.setdefault(command_id, seen)
        if before is seen:
            return
        self.command_ids[command_id] = seen
        limit = before.window_s if before.window_s is not None else window
        if limit is None or e.at - before.at < limit:
            within = (
                ""
                if limit is None
                else f", {e.at - before.at:.0f} s before, in a {limit:g} s window"
            )
            self._flag(
                e,
                "duplicate_outcome",
                f"command {command_id} already had an outcome at {before.where}{within}",
            )

    def _revocation(self, e: LogEvent) -> None:
        version, before = e.data["token_version"], self.token_versions.get(e.aggregate_id, 0)
        if version <= before:
            self._flag(e, "token_version_not_raised", f"token version {version} after {before}")
        self.token_versions[e.aggregate_id] = max(version, before)

    def _surge_recomputed(self, e: LogEvent) -> None:
        """A cadence's changes (or a part of them): its columns line up, it records its
        curve (always written: without it no row could be re-derived), then each row."""
        d = e.data
        lengths = {k: len(d[k]) if isinstance(d.get(k), list) else None for k in COLUMNS}
        if None in lengths.values() or len(set(lengths.values())) != 1:
            self._flag(e, "surge_columns_misaligned", f"column lengths {lengths}")
            return  # (no row can be read as one cell's change)
        if not isinstance(d.get("curve"), dict):
            self._flag(e, "surge_not_rederivable", "a Recomputed without its curve")
        for change in recorded_changes(e.topic, d):
            self._surge(e, change)

    def _surge(self, e: LogEvent, change: SurgeChange) -> None:
        """A surge change (one of a ``Recomputed``'s rows, or a ``Changed``): from the
        cell's last recorded level, by the cell's one shard, and (when it records its
        curve) re-derived from what it records."""
        cell, multiplier, previous = change.cell, change.multiplier, change.previous
        last, shard = self.surge_levels.get(cell, (NO_SURGE_TEXT, e.shard))
        if shard != e.shard:
            self._flag(
                e, "surge_cell_two_shards", f"{cell} recorded by shards {shard} and {e.shard}"
            )
        if previous != last or multiplier == previous:
            self._flag(e, "surge_not_from_last", f"{cell}: {previous} -> {multiplier}, last {last}")
        if isinstance(change.curve, dict):
            derived = rederive(previous, change.demand, change.supply, change.curve)
            if derived != (multiplier, change.target):
                self._flag(
                    e, "surge_not_rederived",
                    f"{cell}: recorded {multiplier} (target {change.target}), inputs give "
                    f"{derived[0]} (target {derived[1]})",
                )  # fmt: skip
        self.surge_levels[cell] = (multiplier, e.shard)

    def _flag(self, e: LogEvent, kind: str, detail: str) -> None:
        self.violations.append(Violation(e.where, e.aggregate_id, kind, detail))
