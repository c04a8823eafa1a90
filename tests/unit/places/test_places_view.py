"""The places view (``projections.places``): each shard's part of a queue in its log's
order, the parts merged by time of joining; a hand-off, going offline or an erasure take
a driver out of its places; only places that keep a queue queue. And the settings refuse
a place id used twice and a place too large."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from dispatch.log import LogEvent
from dispatch.settings import MarketConfig, PlaceConfig, Settings
from projections.places import PlacesProjection, PlacesView

ONLINE, ENTERED = "dispatch.Driver.WentOnline", "dispatch.Driver.EnteredPlace"


class Log:
    def __init__(self, queued: frozenset[str] | None = None) -> None:
        self.projection = PlacesProjection(queued)
        self.view: PlacesView = self.projection.initial()
        self.positions: dict[int, int] = {}

    def __call__(self, shard: int, driver: str, topic: str, at: float, **data: Any) -> None:
        self.positions[shard] = self.positions.get(shard, 0) + 1
        event = LogEvent(shard, self.positions[shard], driver, 1, topic, at, data)
        self.view = self.projection.apply(self.view, event)

    def queue(self, place: str = "sfo") -> list[str]:
        return [d for d, _ in self.view.queue(place)]


def test_a_shards_part_keeps_its_log_order_even_when_its_clock_stepped_back() -> None:
    log = Log()
    for driver, at in (("a", 100.0), ("b", 97.0)):  # a takeover by a worker 3 s behind
        log(0, driver, ONLINE, at)
        log(0, driver, ENTERED, at, place="sfo")
    assert log.queue() == ["a", "b"]


def test_two_shards_parts_merge_by_time_of_joining() -> None:
    log = Log()
    for shard, driver, at in ((0, "a", 10.0), (1, "x", 11.0), (0, "b", 12.0), (1, "y", 13.0)):
        log(shard, driver, ONLINE, at)
        log(shard, driver, ENTERED, at, place="sfo")
    assert log.queue() == ["a", "x", "b", "y"]


@pytest.mark.parametrize(
    "topic", ["dispatch.Driver.HandedOff", "dispatch.Driver.WentOffline", "dispatch.Driver.Erased"]
)
def test_a_hand_off_going_offline_or_an_erasure_leaves_every_place(topic: str) -> None:
    log = Log()
    log(0, "a", ONLINE, 1.0)
    log(0, "a", ENTERED, 2.0, place="sfo")
    log(0, "a", ENTERED, 2.0, place="terminal")
    if topic.endswith("Erased"):
        log(0, "a", "dispatch.Driver.WentOffline", 3.0)
    log(0, "a", topic, 4.0)
    assert log.view.inside("sfo") == 0 and log.view.inside("terminal") == 0
    assert log.queue() == [] and log.view.occupied() == []


def test_only_places_that_keep_a_queue_queue() -> None:
    log = Log(frozenset({"sfo"}))
    log(0, "a", ONLINE, 1.0)
    log(0, "a", ENTERED, 2.0, place="sfo")
    log(0, "a", ENTERED, 2.0, place="pier")
    assert log.queue("sfo") == ["a"] and log.queue("pier") == []
    assert log.view.inside("pier") == 1


def box(west: float, south: float, side: float) -> dict[str, Any]:
    ring = [[west, south], [west + side, south], [west + side, south + side],
            [west, south + side], [west, south]]  # fmt: skip
    return {"type": "Polygon", "coordinates": [ring]}


def market(name: str, *places: PlaceConfig, lat: float = 37.77) -> MarketConfig:
    return MarketConfig(name=name, shard=0, lat=lat, lng=-122.42, radius_km=200,
                        places=list(places))  # fmt: skip


def test_the_settings_refuse_a_place_id_used_twice() -> None:
    sfo = PlaceConfig(id="sfo", area=box(-122.40, 37.60, 0.02), queue=True)
    with pytest.raises(ValidationError, match="place id 'sfo' is used twice"):
        Settings(markets=[market("a", sfo), market("b", sfo, lat=37.6)])


def test_the_settings_refuse_a_place_larger_than_an_airport() -> None:
    huge = PlaceConfig(id="bay", area=box(-122.60, 37.50, 0.4))  # about 1,400 km2
    with pytest.raises(ValidationError, match=r"place 'bay' covers 1,[0-9]{3} km2, more than 500"):
        market("sf", huge)


def test_a_sealed_place_is_opened_and_one_that_does_not_open_is_no_crossing() -> None:
    from dispatch.privacy import ERASED

    opened = {"pf1.tok-sfo": "sfo", "pf1.tok-gone": ERASED}
    log = Log()
    log.projection = PlacesProjection(None, lambda value, _field: opened.get(value, value))
    for driver, token in (("a", "pf1.tok-sfo"), ("b", "pf1.tok-gone"), ("c", "pf1.no-key")):
        log(0, driver, ONLINE, 1.0)
        log(0, driver, ENTERED, 2.0, place=token)
    # a: opened; b: erased (its Erased follows); c: still sealed (a reader without keys)
    assert log.queue() == ["a"] and log.view.occupied() == ["sfo"]
