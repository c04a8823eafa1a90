"""Driver-availability records (the Kafka topic other shards' matchers read, issue #14):
what they hold, what a bad one says, and what a hosted shard's matcher takes from them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.availability import for_shard
from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.driver import Driver, DriverStatus
from dispatch.domain.ids import new_id
from dispatch.domain.products import Vehicle
from dispatch.settings import Settings
from dispatch.shard.inbound import ForeignDriver, Inbound
from dispatch.shard.worker import ShardWorker
from schemas import commands as c

ONLINE, ASSIGNED = Driver.WentOnline.TOPIC, Driver.Assigned.TOPIC
AFTER_TRIP = Driver.OfflineAfterTripRequested.TOPIC


def test_a_record_round_trips_the_driver_its_event_types_and_its_tenure() -> None:
    state = ForeignDriver(new_id(1), 3, 2, (ASSIGNED, AFTER_TRIP))
    key, value = wire.encode_availability(state)
    assert wire.decode_availability(key, value, 3) == state


def test_a_record_carries_the_drivers_vehicle() -> None:
    state = ForeignDriver(new_id(1), 3, 2, (ONLINE,), Vehicle("xl", 6, False))
    key, value = wire.encode_availability(state)
    assert wire.decode_availability(key, value, 3) == state


def test_a_record_from_before_hand_offs_is_of_the_first_tenure() -> None:
    driver = new_id(1)
    value = b'{"leads_to": ["dispatch.Driver.WentOnline"]}'
    decoded = wire.decode_availability(str(driver).encode(), value, 1)
    assert decoded == ForeignDriver(driver, 1, 0, (ONLINE,))


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"not-a-uuid", b'{"leads_to": ["dispatch.Driver.WentOnline"]}', "is not a driver id"),
        (None, b'{"leads_to": ["dispatch.Driver.WentOnline"]}', "is not a driver id"),
        (b"KEY", b"{not json", "not JSON"),
        (b"KEY", None, "not JSON"),
        (b"KEY", b'{"leads_to": []}', '{"leads_to": [event type, ...]}'),
        (b"KEY", b'["dispatch.Driver.WentOnline"]', '{"leads_to": [event type, ...]}'),
        (b"KEY", b'{"leads_to": ["Ride.Requested"]}', "not driver availability events"),
        (b"KEY", b'{"leads_to": ["dispatch.Driver.WentOnline"], "epoch": -1}', "epoch must be"),
        (
            b"KEY",
            b'{"leads_to": ["dispatch.Driver.WentOnline"], "vehicle": {"seats": 4}}',
            "vehicle is not a vehicle",
        ),
    ],
)
def test_a_bad_record_is_refused_with_the_reason(
    key: bytes | None, value: bytes | None, reason: str
) -> None:
    key = str(new_id(0)).encode() if key == b"KEY" else key
    with pytest.raises(ValueError) as refused:
        wire.decode_availability(key, value, 0)
    assert reason in str(refused.value)


def test_a_shard_takes_the_other_shards_drivers_and_not_its_own() -> None:
    mine, theirs = new_id(0), new_id(1)
    changes = [ForeignDriver(mine, 0, 0, (ONLINE,)), ForeignDriver(theirs, 1, 0, (ONLINE,))]

    taken = for_shard(changes, 0)

    assert [state.driver_id for state in taken] == [theirs]


def told(worker: ShardWorker, *states: ForeignDriver) -> None:
    worker.process(Inbound(foreign=list(states)))


def test_each_record_sets_the_drivers_state_whatever_the_matcher_folded_before(
    tmp_path: Path,
) -> None:
    """A record is a state, not an event: a driver the matcher last saw assigned and going
    offline after its trip, then told free, is free (and no longer going offline)."""
    worker = build_embedded_engine(Settings(data_dir=tmp_path, shards=2)).workers[0]
    driver = new_id(1)
    told(worker, ForeignDriver(driver, 1, 0, (ASSIGNED, AFTER_TRIP)))
    assert worker.matcher.drivers[driver] == (DriverStatus.EN_ROUTE, True)

    told(worker, ForeignDriver(driver, 1, 0, (ASSIGNED,)))
    assert worker.matcher.drivers[driver] == (DriverStatus.EN_ROUTE, False)

    told(worker, ForeignDriver(driver, 1, 0, (ONLINE,)))
    assert worker.matcher.drivers[driver] == (DriverStatus.AVAILABLE, False)
    assert driver in worker.matcher.available
    assert driver not in worker.matcher.own


def test_a_word_of_an_older_tenure_is_ignored(tmp_path: Path) -> None:
    """Shard 1 handed the driver to shard 2 (tenure 1): what shard 1 said of tenure 0,
    arriving late, does not undo what shard 2 said."""
    worker = build_embedded_engine(Settings(data_dir=tmp_path, shards=3)).workers[0]
    driver = new_id(1)
    told(worker, ForeignDriver(driver, 2, 1, (ONLINE,)))
    told(worker, ForeignDriver(driver, 1, 0, (Driver.HandedOff.TOPIC,)))

    assert worker.matcher.drivers[driver] == (DriverStatus.AVAILABLE, False)
    assert worker.app.owner_hint(driver) == 2


def test_a_word_about_a_driver_this_shard_serves_is_ignored(tmp_path: Path) -> None:
    engine = build_embedded_engine(Settings(data_dir=tmp_path, shards=2))
    worker, driver = engine.workers[0], new_id(0)
    for n, command in enumerate((c.RegisterDriver(driver_id=driver, name="D"),
                                 c.GoOnline(driver_id=driver))):  # fmt: skip
        envelope = c.CommandEnvelope(command_id=f"cmd-{n}", issued_at=datetime.now(UTC),
                                     command=command)  # fmt: skip
        worker.process(Inbound(commands=[envelope]))

    told(worker, ForeignDriver(driver, 1, 0, (ASSIGNED,)))

    assert worker.matcher.drivers[driver] == (DriverStatus.AVAILABLE, False)
    assert driver in worker.matcher.own


def test_another_shards_driver_is_offered_the_products_its_vehicle_serves(
    tmp_path: Path,
) -> None:
    """A record from before vehicles is the default vehicle; a later one with another
    vehicle changes what the driver is searched for."""
    worker = build_embedded_engine(Settings(data_dir=tmp_path, shards=2)).workers[0]
    driver = new_id(1)
    told(worker, ForeignDriver(driver, 1, 0, (ONLINE,)))
    worker.matcher.ping(driver, 37.77, -122.42, 1_000.0)
    assert worker.matcher.fleet.serves(driver) == {"standard"}

    told(worker, ForeignDriver(driver, 1, 0, (ONLINE,), Vehicle("accessible", 6, True)))

    assert worker.matcher.fleet.serves(driver) == {"standard", "xl", "accessible"}
