"""The trip a completed ride drove, from what its shard knows (docs/MARKETPLACE.md, "The trip
driven").

The distance is the fastest route over the road network between the ride's pickup and
drop-off where one is configured (``Policy.road_trips``: the quote's own estimate, the
graph named in the event), else (and where either end is off the network, or no road
joins them) the straight-line estimate (the great circle times the road factor its fare
terms recorded, else ``Policy.road_factor``), the one the pickup ETAs use. It is an
estimate between the two ends, not the path driven: the ride's shard keeps no track of
the driver's pings (the
matcher keeps each driver's last position only, pings are not in the log, and a driver
another shard serves pings there), so a distance from pings could not be explained from the
log. The duration is measured: the time from the ride's ``TripStarted`` to its completion,
both on the shard's clock and in the log. A ride restored from a snapshot taken before
trips were timed has no start: its duration is then the route's free-flow time, or the
straight-line estimate's (at ``Policy.speed_kmh``), and the event says so.
"""

from __future__ import annotations

from datetime import datetime

from dispatch.domain.ride import DrivenTrip, Ride
from dispatch.matching.geo import haversine_m
from dispatch.shard.policy import Policy


def driven_trip(ride: Ride, now: datetime, p: Policy) -> DrivenTrip:
    """The trip ``ride`` drove, completed at ``now``."""
    # Only an ended ride's pickup and drop-off are erased (docs/PRIVACY.md): never one
    # being completed.
    assert ride.pickup is not None and ride.dropoff is not None
    pickup, dropoff = (ride.pickup.lat, ride.pickup.lng), (ride.dropoff.lat, ride.dropoff.lng)
    distance_m = round(haversine_m(*pickup, *dropoff) * road_factor_of(ride, p))
    found = {"distance": "straight_line"}
    estimated_s = round(distance_m / (p.speed_kmh / 3.6))
    if p.road_trips is not None:
        routed = p.road_trips.estimator.trip(pickup, dropoff)
        if routed.estimated_by == "road_network":
            distance_m, estimated_s = routed.distance_m, routed.duration_s
            found = {"distance": "road_network", "road_graph": p.road_trips.graph}
    started = ride.trip_started_at
    if started is not None:
        duration_s, timed_by = max(0, round((now - started).total_seconds())), "clock"
    else:
        duration_s, timed_by = estimated_s, found["distance"]
    return DrivenTrip(distance_m, duration_s, {**found, "duration": timed_by})


def road_factor_of(ride: Ride, p: Policy) -> float:
    """The factor of the ride's trip distance: the one its fare terms recorded (so the
    distance is the terms' and replay verify can recompute it), else the policy's."""
    recorded = ride.fare.get("road_factor") if ride.fare is not None else None
    return float(recorded) if recorded is not None else p.road_factor
