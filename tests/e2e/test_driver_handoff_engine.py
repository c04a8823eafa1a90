"""Driver hand-off on the embedded engine (issue #14): a free driver whose pings stay in
another shard's region is handed to that shard, which serves it from then on; the shard it
left answers for it with "moved"; ``replay verify`` checks that one shard serves it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.driver import Driver, DriverStatus
from dispatch.domain.ids import new_id
from dispatch.domain.ride import Ride, RideStatus
from dispatch.messages import Ping
from dispatch.pricing.rules import default_fares
from dispatch.replay.operations import verify
from dispatch.settings import MarketConfig, Settings
from dispatch.simulator.clock import SimClock
from schemas import commands as c

A, B = 0, 1  # San Francisco's shard (the driver's home), San Jose's
SF = (37.7749, -122.4194)
SAN_JOSE = (37.3382, -121.8863)
SAN_JOSE_DROPOFF = {"lat": 37.3440, "lng": -121.8800}
MARKETS = [
    MarketConfig(name="sf", shard=A, lat=SF[0], lng=SF[1], radius_km=6),
    MarketConfig(name="san-jose", shard=B, lat=SAN_JOSE[0], lng=SAN_JOSE[1], radius_km=6),
]
FARES = default_fares(MARKETS)  # markets of one's own need fare rules for the API
AFTER_S = 30.0


class City:
    def __init__(self, data_dir: Path, **overrides: Any) -> None:
        """Two shards, San Francisco's and San Jose's; ``overrides``: other settings."""
        defaults = {"handoff_after_s": AFTER_S, "offer_timeout_s": 60.0}
        self.settings = Settings(data_dir=data_dir, shards=2, markets=MARKETS,
                                 **{**defaults, **overrides})  # fmt: skip
        self.clock = SimClock()
        self.clock.now = 1_767_600_000.0
        self.engine = build_embedded_engine(self.settings, self.clock)
        self.seq = 0

    def send(self, command: Any, shard: int | None = None) -> str:
        self.seq += 1
        envelope = c.CommandEnvelope(command_id=f"cmd-{self.seq}", issued_at=self.clock.now,
                                     command=command, shard=shard)  # fmt: skip
        self.engine.transport.send_command(envelope)
        return envelope.command_id

    def ping(self, driver: UUID, place: tuple[float, float]) -> None:
        self.engine.transport.send_pings([Ping(driver, place[0], place[1], self.clock.now)])

    def run(self, *shards: int) -> None:
        for shard in shards or (A, B):
            self.clock.now += 1.0
            self.engine.run_batch(self.engine.workers[shard])

    def settle(self) -> None:
        for _ in range(3):
            self.run()

    def outcome(self, command_id: str) -> c.Outcome:
        outcome = self.engine.transport.wait_outcome(command_id, 0)
        assert outcome is not None, command_id
        return outcome

    def get(self, shard: int, aggregate_id: UUID) -> Any:
        return self.engine.workers[shard].app.repository.get(aggregate_id)

    def verify(self) -> list[Any]:
        source = SqliteLogSource(self.settings.data_dir)
        try:
            return verify(source)[1]
        finally:
            source.close()

    def driver_online_at_home(self) -> UUID:
        driver = new_id(A)
        self.send(c.RegisterDriver(driver_id=driver, name="Dee"))
        self.send(c.GoOnline(driver_id=driver))
        self.run(A)
        return driver

    def ride_in_san_jose(self) -> tuple[UUID, UUID]:
        """A rider of San Jose's shard requests a ride there (rider, ride)."""
        rider, ride = new_id(B), new_id(B)
        self.send(c.RegisterRider(rider_id=rider, name="Ray"))
        pickup = {"lat": SAN_JOSE[0], "lng": SAN_JOSE[1]}
        self.send(c.RequestRide(ride_id=ride, rider_id=rider, pickup=pickup,
                                dropoff=SAN_JOSE_DROPOFF))  # fmt: skip
        return rider, ride

    def ride_offered_at_home(self, driver: UUID) -> tuple[UUID, UUID]:
        """A rider of San Francisco's shard requests a ride there, offered to ``driver``
        (pinging at the pickup): (rider, ride)."""
        rider, ride = new_id(A), new_id(A)
        self.send(c.RegisterRider(rider_id=rider, name="Ray"))
        pickup, dropoff = {"lat": SF[0], "lng": SF[1]}, {"lat": 37.78, "lng": -122.41}
        self.send(c.RequestRide(ride_id=ride, rider_id=rider, pickup=pickup, dropoff=dropoff))
        self.ping(driver, SF)
        self.settle()
        return rider, ride

    def drive_to(self, driver: UUID, place: tuple[float, float], seconds: float) -> None:
        """Ping from ``place`` every 5 s for ``seconds``, running both shards."""
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.ping(driver, place)
            self.clock.now += 3.0
            self.run()


@pytest.fixture
def city(tmp_path: Path) -> City:
    return City(tmp_path)


def test_a_free_driver_pinging_in_another_region_is_handed_to_that_shard(city: City) -> None:
    driver = city.driver_online_at_home()

    city.drive_to(driver, SAN_JOSE, AFTER_S + 10)

    left: Driver = city.get(A, driver)
    arrived: Driver = city.get(B, driver)
    assert (left.status, left.handed_to) == (DriverStatus.HANDED_OFF, B)
    assert (arrived.status, arrived.epoch, arrived.name) == (DriverStatus.AVAILABLE, 1, "Dee")
    assert driver in city.engine.workers[B].matcher.own
    assert driver not in city.engine.workers[A].matcher.own
    assert city.verify() == []


def test_a_driver_pinging_elsewhere_for_less_than_the_dwell_stays(city: City) -> None:
    driver = city.driver_online_at_home()

    city.drive_to(driver, SAN_JOSE, AFTER_S - 10)
    city.drive_to(driver, SF, 10)
    city.drive_to(driver, SAN_JOSE, AFTER_S - 10)

    assert city.get(A, driver).status == DriverStatus.AVAILABLE


def test_the_new_shard_offers_its_rides_the_driver_as_its_own(city: City) -> None:
    driver = city.driver_online_at_home()
    city.drive_to(driver, SAN_JOSE, AFTER_S + 10)
    _, ride = city.ride_in_san_jose()
    city.ping(driver, SAN_JOSE)
    city.settle()

    offered: Ride = city.get(B, ride)
    assert offered.status == RideStatus.OFFERED and offered.offered_to == driver
    assert offered.asks == 0, "no other shard was asked: the driver is the ride shard's"
    at_home = city.send(c.AcceptOffer(driver_id=driver, ride_id=ride))  # sent to its home
    city.settle()
    moved = city.outcome(at_home)
    assert (moved.accepted, moved.code, moved.moved_to) == (False, "moved", B)

    accepted = city.send(c.AcceptOffer(driver_id=driver, ride_id=ride), shard=B)
    city.settle()
    assert city.outcome(accepted).accepted
    for command in (c.MarkArrived, c.StartTrip, c.CompleteTrip):
        done = city.send(command(driver_id=driver, ride_id=ride))
        city.settle()
        assert city.outcome(done).accepted, city.outcome(done)
    assert city.get(B, ride).status == RideStatus.COMPLETED
    assert city.get(B, driver).trips == 1
    assert city.verify() == []


def test_a_driver_command_at_the_shard_it_left_names_where_it_went(city: City) -> None:
    driver = city.driver_online_at_home()
    city.drive_to(driver, SAN_JOSE, AFTER_S + 10)

    refused = city.send(c.GoOffline(driver_id=driver))
    city.settle()
    followed = city.send(c.GoOffline(driver_id=driver), shard=B)
    city.settle()

    assert (city.outcome(refused).code, city.outcome(refused).moved_to) == ("moved", B)
    assert city.outcome(followed).accepted
    assert city.get(B, driver).status == DriverStatus.OFFLINE


def test_a_command_of_another_kind_addressed_away_from_its_target_is_misrouted(
    city: City,
) -> None:
    rider = new_id(A)
    refused = city.send(c.RegisterRider(rider_id=rider, name="Ray"), shard=B)
    city.settle()
    assert city.outcome(refused).code == "misrouted"


def test_a_held_driver_is_not_handed_off(city: City) -> None:
    driver = city.driver_online_at_home()
    city.ride_offered_at_home(driver)
    assert city.get(A, driver).status == DriverStatus.OFFERED

    city.drive_to(driver, SAN_JOSE, AFTER_S + 10)

    assert city.get(A, driver).status == DriverStatus.OFFERED
    assert city.verify() == []


def test_a_driver_handed_back_to_its_home_starts_a_later_tenure_there(city: City) -> None:
    driver = city.driver_online_at_home()
    city.drive_to(driver, SAN_JOSE, AFTER_S + 10)
    city.drive_to(driver, SF, AFTER_S + 10)

    home: Driver = city.get(A, driver)
    assert (home.status, home.epoch) == (DriverStatus.AVAILABLE, 2)
    assert city.get(B, driver).status == DriverStatus.HANDED_OFF
    assert driver in city.engine.workers[A].matcher.own
    assert city.verify() == []


def test_a_hand_off_survives_a_restart_of_the_engine(city: City) -> None:
    driver = city.driver_online_at_home()
    city.drive_to(driver, SAN_JOSE, AFTER_S + 10)

    city.engine = build_embedded_engine(city.settings, city.clock)

    assert driver in city.engine.workers[B].matcher.own
    assert driver not in city.engine.workers[A].matcher.own
    assert city.engine.workers[B].told[driver].epoch == 1


def test_the_api_follows_a_handed_off_driver_to_the_shard_serving_it(tmp_path: Path) -> None:
    """Over HTTP: the driver's home shard answers ``moved``; the API sends the command on
    to the shard named and answers with that shard's outcome."""
    from test_api_embedded import serve
    from test_rides_across_markets import NEAR_SAN_JOSE, register
    from test_rides_across_markets import SF as SF_HOME

    settings = Settings(
        data_dir=tmp_path, shards=2, markets=MARKETS, fares=FARES, handoff_after_s=0.5
    )
    for api in serve(settings):
        driver_id, driver = register(api, "driver", SF_HOME)
        online = api.client.post(f"/drivers/{driver_id}/online", headers=driver)
        assert online.status_code == 200, online.text
        deadline = time.monotonic() + 30
        engine = api.runtime.engine
        assert engine is not None
        while UUID(driver_id) not in engine.workers[B].matcher.own:
            assert time.monotonic() < deadline, "the driver was never handed off"
            r = api.client.post(f"/drivers/{driver_id}/location", headers=driver,
                                json=NEAR_SAN_JOSE)  # fmt: skip
            assert r.status_code == 202, r.text
            time.sleep(0.2)

        offline = api.client.post(f"/drivers/{driver_id}/offline", headers=driver)

        assert offline.status_code == 200, offline.text
        assert offline.json()["position"].startswith(f"{B}:"), "answered by the new shard"


def test_a_driver_handed_back_keeps_the_trips_it_drove_elsewhere(city: City) -> None:
    driver = city.driver_online_at_home()
    city.drive_to(driver, SAN_JOSE, AFTER_S + 10)
    _, ride = city.ride_in_san_jose()
    city.ping(driver, SAN_JOSE)
    city.settle()
    for command in (c.AcceptOffer, c.MarkArrived, c.StartTrip, c.CompleteTrip):
        done = city.send(command(driver_id=driver, ride_id=ride), shard=B)
        city.settle()
        assert city.outcome(done).accepted, city.outcome(done)

    city.drive_to(driver, SF, AFTER_S + 10)

    home: Driver = city.get(A, driver)
    assert (home.status, home.epoch, home.trips) == (DriverStatus.AVAILABLE, 2, 1)


def test_a_ping_dated_ahead_does_not_hurry_a_hand_off(city: City) -> None:
    driver = city.driver_online_at_home()
    city.ping(driver, SAN_JOSE)
    city.run()
    city.engine.transport.send_pings([Ping(driver, *SAN_JOSE, city.clock.now + 55)])
    city.run()
    city.engine.transport.send_pings([Ping(driver, *SAN_JOSE, city.clock.now + 3_600)])
    city.run()

    assert city.get(A, driver).status == DriverStatus.AVAILABLE


def test_verify_reads_each_shard_that_served_a_driver_in_any_order(city: City) -> None:
    """The driver's home (shard B) is read after shard A, where it was handed to and is
    now assigned: an offer its home closed long before does not free it there."""
    driver = new_id(B)
    city.send(c.RegisterDriver(driver_id=driver, name="Dee"))
    city.send(c.GoOnline(driver_id=driver))
    city.ping(driver, SAN_JOSE)
    rider, ride = city.ride_in_san_jose()
    city.settle()
    declined = city.send(c.DeclineOffer(driver_id=driver, ride_id=ride))
    city.send(c.CancelRide(ride_id=ride, rider_id=rider, reason="no"))
    city.settle()
    assert city.outcome(declined).accepted
    city.drive_to(driver, SF, AFTER_S + 10)
    assert city.get(A, driver).status == DriverStatus.AVAILABLE
    _, ride_a = city.ride_offered_at_home(driver)
    accepted = city.send(c.AcceptOffer(driver_id=driver, ride_id=ride_a), shard=A)
    city.settle()
    assert city.outcome(accepted).accepted

    assert city.verify() == []


def test_a_drivers_offer_stream_follows_it_to_the_shard_it_was_handed_to(tmp_path: Path) -> None:
    """The stream's cursor is a position per shard: the new shard's events, at positions
    below the home shard's, still reach the driver's app."""
    from test_api_embedded import EventStream, serve
    from test_rides_across_markets import NEAR_SAN_JOSE, register, request
    from test_rides_across_markets import SAN_JOSE as SJ_PLACE
    from test_rides_across_markets import SF as SF_HOME

    settings = Settings(
        data_dir=tmp_path, shards=2, markets=MARKETS, fares=FARES, handoff_after_s=0.5
    )
    for api in serve(settings):
        driver_id, driver = register(api, "driver", SF_HOME)
        for _ in range(15):  # the home shard's log runs ahead of San Jose's
            for way in ("online", "offline"):
                r = api.client.post(f"/drivers/{driver_id}/{way}", headers=driver)
                assert r.status_code == 200, r.text
                time.sleep(0.06)  # within the API's rate limit
        online = api.client.post(f"/drivers/{driver_id}/online", headers=driver)
        assert online.status_code == 200, online.text
        url = f"/drivers/{driver_id}/offers?max_s=30&after={online.json()['position']}"
        offers = EventStream(api.client, url, driver).open()
        try:
            offers.next("snapshot")
            engine = api.runtime.engine
            assert engine is not None
            deadline = time.monotonic() + 30
            while UUID(driver_id) not in engine.workers[B].matcher.own:
                assert time.monotonic() < deadline, "the driver was never handed off"
                r = api.client.post(f"/drivers/{driver_id}/location", headers=driver,
                                    json=NEAR_SAN_JOSE)  # fmt: skip
                assert r.status_code == 202, r.text
                time.sleep(0.2)
            _, rider = register(api, "rider", SJ_PLACE)
            r = request(api, rider, SJ_PLACE)
            assert r.status_code == 201, r.text

            _, offer = offers.next("Driver.OfferReceived")

            assert offer["data"]["ride_id"] == r.json()["ride_id"]
            assert offer["position"].startswith(f"{B}:")
        finally:
            offers.close()
