"""Places view: who is inside each geofenced place and each place's queue, per shard.

The same fold as the matcher's (``dispatch.domain.place_queues``), fed the drivers'
crossings (``Driver.EnteredPlace`` / ``LeftPlace``, their place sealed under the driver's
key and opened here), availability and erasure events, with each event's time; only the
places that keep a queue (``queued``, from the settings: None, every place) queue. It is
kept per shard: a shard's events come in its log's order, but two shards' may be folded in
any order, and a driver handed from one to the other leaves the first one's places
(``HandedOff``) while it may already be inside one at the other. A place's queue is each
shard's part in its log's order, merged across shards by time of joining.
Serves ``GET /places/{id}/queue`` (docs/MARKETPLACE.md, "Places: geofences and queues").
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field
from typing import ClassVar

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
from dispatch.privacy import KeyNotYetKnown, Opener, as_is, is_sealed

log = logging.getLogger(__name__)

ENTERED, LEFT = Driver.EnteredPlace.TOPIC, Driver.LeftPlace.TOPIC
OUT_OF_PLACES = frozenset({Driver.HandedOff.TOPIC, Driver.Erased.TOPIC,
                           Driver.ErasedByOperator.TOPIC})  # fmt: skip


@dataclass
class ShardPlaces:
    queues: PlaceQueues[str] = field(default_factory=PlaceQueues)


@dataclass
class PlacesView:
    shards: dict[int, ShardPlaces] = field(default_factory=dict)
    # Each driver's availability at each shard that served it (driver -> shard -> it).
    availability: dict[str, dict[int, Availability]] = field(default_factory=dict)
    # Kept by driver id (``projections.parts``); the queues kept whole.
    KEPT_BY_KEY: ClassVar[tuple[str, ...]] = ("availability",)

    def queue(self, place: str) -> list[tuple[str, float]]:
        """The place's queue across shards, head first: each shard's part in its log's
        order (the order its matcher offers in), the parts merged by time of joining."""
        parts = [held.queues.queue(place) for _, held in sorted(self.shards.items())]
        return list(heapq.merge(*parts, key=lambda entry: entry[1]))

    def occupied(self) -> list[str]:
        """The places someone is inside, by id."""
        return sorted({p for held in self.shards.values() for p in held.queues.inside})

    def inside(self, place: str) -> int:
        """How many drivers are inside the place (queued or not)."""
        return sum(len(held.queues.inside.get(place, {})) for held in self.shards.values())


class PlacesProjection:
    name = "places"
    topics = AVAILABILITY_TOPICS | OUT_OF_PLACES | {ENTERED, LEFT}

    def __init__(self, queued: frozenset[str] | None = None, open: Opener = as_is) -> None:
        """``open``: how a crossing's sealed place is read (docs/PRIVACY.md); a place that
        reads as erased (or is not a place's id) is no crossing."""
        self.queued, self.open = queued, open
        # a view kept under another set of queue places is folded again
        self.params = "v2;queued=" + ("*" if queued is None else ",".join(sorted(queued)))

    def initial(self) -> PlacesView:
        return PlacesView()

    def apply(self, view: PlacesView, e: LogEvent) -> PlacesView:
        held = view.shards.get(e.shard)
        if held is None:
            held = view.shards[e.shard] = ShardPlaces(PlaceQueues(self.queued))
        driver, topic = e.aggregate_id, e.topic
        if topic in (ENTERED, LEFT):
            try:
                place = self.open(e.data["place"], "place")
            except KeyNotYetKnown as error:  # on Kafka, a key not readable here in time:
                log.warning("places: a crossing of driver %s skipped (%s)", driver, error)
                return view  # the view misses it (the matcher, which decides, does not)
            if not isinstance(place, str) or is_sealed(place):  # erased (its Erased takes
                return view  # the driver out of all), or a reader without the keys
            if topic == ENTERED:
                state = view.availability.get(driver, {}).get(e.shard, REGISTERED)
                available = state[0] == DriverStatus.AVAILABLE
                held.queues.entered(place, driver, e.at, available)
            else:
                held.queues.left(place, driver)
        elif topic in OUT_OF_PLACES and topic != Driver.HandedOff.TOPIC:  # erased
            held.queues.leave_all(driver)
        else:
            shards = view.availability.setdefault(driver, {})
            after = shards[e.shard] = next_availability(shards.get(e.shard, REGISTERED), topic)
            if topic == Driver.HandedOff.TOPIC or after[0] == DriverStatus.OFFLINE:
                held.queues.leave_all(driver)
            elif driver in held.queues.where:
                held.queues.availability(driver, after[0] == DriverStatus.AVAILABLE, e.at)
        return view
