"""Driver-availability records (the Kafka topic other shards' matchers read, issue #14):
what they hold, what a bad one says, and what a hosted shard's matcher takes from them."""

from __future__ import annotations

import pytest

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.availability import for_shard
from dispatch.bootstrap import build_matcher
from dispatch.domain.driver import Driver, DriverStatus
from dispatch.domain.ids import new_id
from dispatch.settings import Settings

ONLINE, ASSIGNED = Driver.WentOnline.TOPIC, Driver.Assigned.TOPIC
AFTER_TRIP = Driver.OfflineAfterTripRequested.TOPIC


def test_a_record_round_trips_the_driver_and_its_event_types() -> None:
    driver = new_id(1)
    key, value = wire.encode_availability(driver, (ASSIGNED, AFTER_TRIP))
    assert wire.decode_availability(key, value) == (driver, (ASSIGNED, AFTER_TRIP))


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"not-a-uuid", b'{"leads_to": ["Driver.WentOnline"]}', "is not a driver id"),
        (None, b'{"leads_to": ["Driver.WentOnline"]}', "is not a driver id"),
        (b"KEY", b"{not json", "not JSON"),
        (b"KEY", None, "not JSON"),
        (b"KEY", b'{"leads_to": []}', '{"leads_to": [event type, ...]}'),
        (b"KEY", b'["Driver.WentOnline"]', '{"leads_to": [event type, ...]}'),
        (b"KEY", b'{"leads_to": ["Ride.Requested"]}', "not driver availability events"),
    ],
)
def test_a_bad_record_is_refused_with_the_reason(
    key: bytes | None, value: bytes | None, reason: str
) -> None:
    key = str(new_id(0)).encode() if key == b"KEY" else key
    with pytest.raises(ValueError) as refused:
        wire.decode_availability(key, value)
    assert reason in str(refused.value)


def test_a_shard_takes_the_other_shards_drivers_and_not_its_own() -> None:
    mine, theirs = new_id(0), new_id(1)
    changes = [(0, mine, (ONLINE,)), (1, theirs, (ONLINE,))]

    taken = for_shard(changes, 0)

    assert {driver for driver, _ in taken} == {theirs}


def test_each_record_sets_the_drivers_state_whatever_the_matcher_folded_before() -> None:
    """A record is a state, not an event: a driver the matcher last saw assigned and going
    offline after its trip, then told free, is free (and no longer going offline)."""
    driver = new_id(1)
    matcher = build_matcher(Settings())
    for _, topic in for_shard([(1, driver, (ASSIGNED, AFTER_TRIP))], 0):
        matcher.observe_driver(driver, topic)
    assert matcher.drivers[driver] == (DriverStatus.EN_ROUTE, True)

    for _, topic in for_shard([(1, driver, (ASSIGNED,))], 0):
        matcher.observe_driver(driver, topic)
    assert matcher.drivers[driver] == (DriverStatus.EN_ROUTE, False)

    for _, topic in for_shard([(1, driver, (ONLINE,))], 0):
        matcher.observe_driver(driver, topic)
    assert matcher.drivers[driver] == (DriverStatus.AVAILABLE, False)
    assert driver in matcher.available
