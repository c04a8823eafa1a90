"""Products through a real shard worker: a ride is offered only to drivers whose vehicle
serves its product, after a decline too, and after the shard restarts from its log and
checkpoint."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

from engine_commands import decide

from dispatch.adapters.embedded.engine import EmbeddedEngine
from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.fares import FareRule
from dispatch.domain.ids import new_id
from dispatch.domain.ride_fare import FareTerms
from dispatch.messages import Ping
from dispatch.settings import Settings
from schemas import commands as c
from schemas.common import LatLng, VehicleData
from schemas.fares import FareTermsData

T0 = 1_767_600_000.0
PICKUP = (37.77, -122.42)
STANDARD = VehicleData(product="standard", seats=4)
XL = VehicleData(product="xl", seats=6)


class World:
    def __init__(self, tmp: Path) -> None:
        self.now, self.tmp = T0, tmp
        self.drivers: dict[uuid.UUID, tuple[float, float]] = {}
        self.engine = self.start()

    def start(self) -> EmbeddedEngine:
        settings = Settings(
            data_dir=self.tmp,
            shards=1,
            offer_timeout_s=15,
            max_wait_s=600,
            ping_ttl_s=30,
            checkpoint_every_events=5,
            checkpoint_chunk_rows=2,
        )
        self.engine = build_embedded_engine(settings, lambda: self.now)
        return self.engine

    def restart(self) -> None:
        self.engine.stop()
        self.start()
        self.ping_all()

    def send(self, command: c.Command) -> c.Outcome:
        return decide(self.engine, self.now, command)

    def driver(self, vehicle: VehicleData, north: float) -> uuid.UUID:
        d = new_id(0)
        assert self.send(c.RegisterDriver(driver_id=d, name="d", vehicle=vehicle)).accepted
        assert self.send(c.GoOnline(driver_id=d)).accepted
        self.drivers[d] = (PICKUP[0] + north, PICKUP[1])
        self.ping_all()
        return d

    def ping_all(self) -> None:
        pings = [Ping(d, lat, lng, self.now) for d, (lat, lng) in self.drivers.items()]
        self.engine.transport.send_pings(pings)
        self.engine.run_once()

    def request(self, product: str, *, priced: bool = True) -> uuid.UUID:
        """A ride of ``product``; not ``priced``: with no fare terms (a deployment with no
        fare rules), only the product of its own."""
        rider, ride = new_id(0), new_id(0)
        assert self.send(c.RegisterRider(rider_id=rider, name="r")).accepted
        outcome = self.send(self.request_of(rider, ride, product, priced=priced))
        assert outcome.accepted, outcome
        return ride

    def request_of(
        self, rider: uuid.UUID, ride: uuid.UUID, product: str | None, *, priced: bool
    ) -> c.RequestRide:
        here = LatLng(lat=PICKUP[0], lng=PICKUP[1])
        there = LatLng(lat=37.8, lng=-122.4)
        fare = self.terms(product or "standard") if priced else None
        return c.RequestRide(ride_id=ride, rider_id=rider, pickup=here, dropoff=there,
                             fare=fare, product=product)  # fmt: skip

    def terms(self, product: str) -> FareTermsData:
        """The ride's fare terms, which carry its product (as the API makes them)."""
        rule = FareRule("USD", Decimal("2.50"), Decimal("1.10"), Decimal("0.30"), Decimal(7))
        terms = FareTerms(product, "san-francisco", "sha256:0123456789abcdef", rule, Decimal(1))
        return FareTermsData.model_validate(terms.to_data())

    def offered_to(self, ride: uuid.UUID) -> uuid.UUID | None:
        offer = self.engine.workers[0].matcher.offers.get(ride)
        return offer[0] if offer else None


def test_an_xl_ride_goes_past_nearer_standard_cars_to_an_xl_one(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.driver(STANDARD, 0.0005)
    xl = world.driver(XL, 0.004)
    assert world.offered_to(world.request("xl")) == xl


def test_a_declined_xl_ride_is_offered_to_the_next_xl_car_only(tmp_path: Path) -> None:
    world = World(tmp_path)
    first = world.driver(XL, 0.001)
    world.driver(STANDARD, 0.002)
    second = world.driver(VehicleData(product="standard", seats=7), 0.006)  # serves xl too
    ride = world.request("xl")
    assert world.offered_to(ride) == first
    assert world.send(c.DeclineOffer(ride_id=ride, driver_id=first)).accepted
    world.ping_all()
    assert world.offered_to(ride) == second


def test_a_ride_no_vehicle_serves_waits_for_one(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.driver(STANDARD, 0.001)
    ride = world.request("accessible")
    assert world.offered_to(ride) is None
    assert ride in world.engine.workers[0].matcher.pending
    van = world.driver(VehicleData(product="accessible", seats=4, accessible=True), 0.01)
    assert world.offered_to(ride) == van


def test_a_restarted_shard_still_offers_rides_by_vehicle(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.driver(STANDARD, 0.0005)
    xl = world.driver(XL, 0.004)
    for _ in range(3):  # enough events for a checkpoint, and some after it
        world.driver(STANDARD, 0.001)
    waiting = world.request("accessible")
    world.restart()
    worker = world.engine.workers[0]
    assert worker.restored_from is not None  # from a checkpoint, then the log after it
    assert worker.matcher.vehicles[xl].product == "xl"
    assert worker.matcher.pending[waiting].product == "accessible"
    assert world.offered_to(world.request("xl")) == xl


def test_a_registration_with_a_vehicle_that_cannot_serve_its_product_is_refused(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    outcome = world.send(c.RegisterDriver(driver_id=new_id(0), name="d",
                                          vehicle=VehicleData(product="xl", seats=5)))  # fmt: skip
    assert not outcome.accepted
    assert outcome.code == "invalid_command"
    assert "cannot serve 'xl', which needs at least 6 seats" in (outcome.reason or "")


ACCESSIBLE = VehicleData(product="accessible", seats=4, accessible=True)


def test_an_unpriced_accessible_ride_is_offered_only_to_an_accessible_vehicle(
    tmp_path: Path,
) -> None:
    """A ride with no fare terms (no fare rule priced it) keeps its product: it goes past
    the nearer standard car to the accessible one, and after a restart too."""
    world = World(tmp_path)
    world.driver(STANDARD, 0.0005)
    van = world.driver(ACCESSIBLE, 0.004)
    ride = world.request("accessible", priced=False)
    assert world.offered_to(ride) == van
    assert world.engine.workers[0].matcher.offers[ride][2].product == "accessible"


def test_an_unpriced_accessible_ride_waits_rather_than_go_to_a_standard_car(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    world.driver(STANDARD, 0.0005)
    ride = world.request("accessible", priced=False)
    assert world.offered_to(ride) is None
    for _ in range(3):  # enough events for a checkpoint, and some after it
        world.driver(STANDARD, 0.001)
    world.restart()
    assert world.engine.workers[0].matcher.pending[ride].product == "accessible"
    assert world.offered_to(ride) is None
    van = world.driver(ACCESSIBLE, 0.01)
    assert world.offered_to(ride) == van


def test_a_request_without_a_product_takes_its_fares_or_standard(tmp_path: Path) -> None:
    """A command sent before rides carried their own product (no ``product``)."""
    world = World(tmp_path)
    world.driver(STANDARD, 0.0005)
    xl = world.driver(XL, 0.004)
    rider, ride = new_id(0), new_id(0)
    assert world.send(c.RegisterRider(rider_id=rider, name="r")).accepted
    command = world.request_of(rider, ride, "xl", priced=True).model_copy(update={"product": None})
    assert world.send(command).accepted
    assert world.offered_to(ride) == xl


def test_a_request_whose_product_is_not_its_fares_is_refused(tmp_path: Path) -> None:
    world = World(tmp_path)
    rider, ride = new_id(0), new_id(0)
    assert world.send(c.RegisterRider(rider_id=rider, name="r")).accepted
    command = world.request_of(rider, ride, "xl", priced=True)
    command = command.model_copy(update={"fare": world.terms("standard")})
    outcome = world.send(command)
    assert not outcome.accepted
    assert outcome.code == "invalid_command"
    assert "'xl' is not its fare terms' 'standard'" in (outcome.reason or "")


def test_a_request_of_a_product_not_in_the_catalog_is_refused(tmp_path: Path) -> None:
    world = World(tmp_path)
    rider, ride = new_id(0), new_id(0)
    assert world.send(c.RegisterRider(rider_id=rider, name="r")).accepted
    outcome = world.send(world.request_of(rider, ride, "limo", priced=False))
    assert not outcome.accepted
    assert outcome.code == "invalid_command"
