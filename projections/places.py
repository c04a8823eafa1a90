"""Places view: who is inside each geofenced place and each place's queue, per shard.

The same fold as the matcher's (``dispatch.domain.place_queues``), fed the drivers'
crossings (``Driver.EnteredPlace`` / ``LeftPlace``) and availability events, with each
event's time. It is kept per shard: a shard's events come in its log's order, but two
shards' may be folded in any order, and a driver handed from one to the other leaves the
first one's places (``HandedOff``) while it may already be inside one at the other.
Serves ``GET /places/{id}/queue`` (docs/MARKETPLACE.md, "Places: geofences and queues").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dispatch.domain.driver import (
    AVAILABILITY_TOPICS,
    REGISTERED,
    Availability,
    Driver,
    DriverStatus,
    next_availability,
)
from dispatch.domain.place_queues import PlaceQueues
from dispatch.log import LogEvent

ENTERED, LEFT = Driver.EnteredPlace.TOPIC, Driver.LeftPlace.TOPIC


@dataclass
class ShardPlaces:
    queues: PlaceQueues[str] = field(default_factory=PlaceQueues)
    drivers: dict[str, Availability] = field(default_factory=dict)


@dataclass
class PlacesView:
    shards: dict[int, ShardPlaces] = field(default_factory=dict)

    def queue(self, place: str) -> list[tuple[str, float]]:
        """The place's queue across shards, head first: by when each joined (one shard's
        drivers in its log's order)."""
        merged = [
            (at, shard, n, driver)
            for shard, held in sorted(self.shards.items())
            for n, (driver, at) in enumerate(held.queues.queue(place))
        ]
        merged.sort()
        return [(driver, at) for at, _, _, driver in merged]

    def occupied(self) -> list[str]:
        """The places someone is inside, by id."""
        return sorted({p for held in self.shards.values() for p in held.queues.inside})

    def inside(self, place: str) -> int:
        """How many drivers are inside the place (queued or not)."""
        return sum(len(held.queues.inside.get(place, {})) for held in self.shards.values())


class PlacesProjection:
    name = "places"
    topics = AVAILABILITY_TOPICS | {ENTERED, LEFT}
    params = "v1"

    def initial(self) -> PlacesView:
        return PlacesView()

    def apply(self, view: PlacesView, e: LogEvent) -> PlacesView:
        held = view.shards.get(e.shard)
        if held is None:
            held = view.shards[e.shard] = ShardPlaces()
        driver, topic = e.aggregate_id, e.topic
        if topic == ENTERED:
            state = held.drivers.get(driver, REGISTERED)
            available = state[0] == DriverStatus.AVAILABLE
            held.queues.entered(e.data["place"], driver, e.at, available)
        elif topic == LEFT:
            held.queues.left(e.data["place"], driver)
        else:
            after = next_availability(held.drivers.get(driver, REGISTERED), topic)
            held.drivers[driver] = after
            if topic == Driver.HandedOff.TOPIC:
                held.queues.leave_all(driver)
            elif driver in held.queues.where:
                held.queues.availability(driver, after[0] == DriverStatus.AVAILABLE, e.at)
        return view
