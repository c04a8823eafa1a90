"""A driver's vehicle: which products it serves under the catalog, what registration
refuses, and that drivers registered (or handed off) before vehicles drive the default."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from eventsourcing.persistence import StoredEvent

from dispatch.domain.driver import Driver, vehicle_of
from dispatch.domain.ids import new_id
from dispatch.domain.products import (
    DEFAULT_CATALOG,
    DEFAULT_VEHICLE,
    Catalog,
    ProductSpec,
    Vehicle,
    in_catalog_order,
)
from dispatch.shard.application import ShardApplication
from dispatch.shard.links import Link, envelope_of
from schemas import commands as c
from schemas.common import VehicleData

AT = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("vehicle", "serves"),
    [
        (Vehicle("standard", 4, False), {"standard"}),
        (Vehicle("standard", 7, False), {"standard", "xl"}),
        (Vehicle("xl", 6, False), {"standard", "xl"}),
        (Vehicle("accessible", 4, True), {"standard", "accessible"}),
        (Vehicle("accessible", 3, True), {"accessible"}),
        (Vehicle("accessible", 6, True), {"standard", "xl", "accessible"}),
    ],
)
def test_a_vehicle_serves_every_product_it_qualifies_for(
    vehicle: Vehicle, serves: set[str]
) -> None:
    DEFAULT_CATALOG.check(vehicle)
    assert DEFAULT_CATALOG.serves(vehicle) == serves


@pytest.mark.parametrize(
    ("vehicle", "reason"),
    [
        (Vehicle("limo", 4, False), "unknown product 'limo': the products are standard, xl, "
                                    "accessible"),
        (Vehicle("xl", 5, True), "a vehicle of 5 seats, accessible cannot serve 'xl', which "
                                 "needs at least 6 seats"),
        (Vehicle("standard", 3, False), "cannot serve 'standard', which needs at least 4 seats"),
        (Vehicle("standard", 9, False), "seats must be from 1 to 8, got 9"),
    ],
)  # fmt: skip
def test_a_vehicle_that_does_not_qualify_is_refused_with_the_reason(
    vehicle: Vehicle, reason: str
) -> None:
    with pytest.raises(ValueError, match="^.*" + reason.replace("(", r"\(")):
        DEFAULT_CATALOG.check(vehicle)


def test_a_product_added_by_configuration_is_served_by_the_vehicles_that_qualify() -> None:
    catalog = Catalog([*DEFAULT_CATALOG.specs.values(), ProductSpec("van", min_seats=8)])
    assert catalog.serves(Vehicle("van", 8, False)) == {"standard", "xl", "van"}
    assert "van" not in catalog.serves(Vehicle("xl", 7, False))
    assert in_catalog_order(["van", "accessible", "standard", "bike"]) == [
        "standard", "accessible", "bike", "van"
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["", "XL", "x l", "1x", "a" * 33])
def test_a_product_name_is_checked(name: str) -> None:
    with pytest.raises(ValueError, match="product name"):
        ProductSpec(name)


def test_a_catalog_lists_each_product_once() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        Catalog([ProductSpec("xl", 6), ProductSpec("xl", 7)])


def _stored_as_version(app: ShardApplication, event: object, version: int) -> StoredEvent:
    """``event`` as an older class version stored it: without its vehicle."""
    mapper = app.mapper
    stored = mapper.to_stored_event(event)  # type: ignore[arg-type]
    state = mapper.transcoder.decode(stored.state)
    del state["vehicle"]
    state["class_version"] = version
    return StoredEvent(
        stored.originator_id, stored.originator_version, stored.topic,
        mapper.transcoder.encode(state),
    )  # fmt: skip


def test_a_driver_registered_before_vehicles_drives_the_default_vehicle() -> None:
    app = ShardApplication(1)
    driver = Driver.register(uuid.uuid4(), "Dee", AT, Vehicle("xl", 6, False))
    old = _stored_as_version(app, driver.collect_events()[0], 1)

    event = app.mapper.to_domain_event(old)

    assert event.vehicle == DEFAULT_VEHICLE.to_data()  # type: ignore[attr-defined]
    assert vehicle_of(event.mutate(None)) == DEFAULT_VEHICLE  # type: ignore[arg-type]


def test_a_driver_handed_off_before_vehicles_arrives_with_the_default_vehicle() -> None:
    app = ShardApplication(1)
    vehicle = Vehicle("accessible", 4, True)
    driver = Driver.arrive(uuid.uuid4(), "Dee", 1, 0, 3, {}, AT, vehicle)
    assert vehicle_of(driver) == vehicle
    old = _stored_as_version(app, driver.collect_events()[0], 2)

    event = app.mapper.to_domain_event(old)

    assert vehicle_of(event.mutate(None)) == DEFAULT_VEHICLE  # type: ignore[arg-type]


def test_a_handed_off_driver_arrives_at_the_other_shard_with_its_vehicle() -> None:
    home, there = ShardApplication(0), ShardApplication(1)
    driver_id, vehicle = new_id(0), Vehicle("xl", 7, False)
    for command in (c.RegisterDriver(driver_id=driver_id, name="Dee",
                                     vehicle=VehicleData.of(vehicle)),
                    c.GoOnline(driver_id=driver_id)):  # fmt: skip
        home.handle(c.CommandEnvelope(command_id=str(uuid.uuid4()), issued_at=AT,
                                      command=command), AT)  # fmt: skip
        home.commit()
    sent = [e for e in home.hand_off(driver_id, 1, AT) if isinstance(e, Link.Sent)]
    home.commit()

    events, _ = there.receive(envelope_of(sent[0]), AT)

    (arrived,) = [e for e in events if isinstance(e, Driver.Arrived)]
    assert Vehicle.from_data(arrived.vehicle) == vehicle
