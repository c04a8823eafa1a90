"""The offer protocol, driven through a real shard worker with a controlled clock."""

from __future__ import annotations

import uuid
from pathlib import Path

import h3
import pytest
from engine_commands import decide

from dispatch.adapters.embedded.engine import EmbeddedEngine
from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.ids import new_id
from dispatch.matching.geo import haversine_m
from dispatch.messages import Ping
from dispatch.settings import Settings
from schemas import commands as c
from schemas.common import LatLng

T0 = 1_767_600_000.0
PICKUP = (37.77, -122.42)


class World:
    def __init__(self, tmp: Path, **settings: object) -> None:
        self.now = T0
        self.engine: EmbeddedEngine = build_embedded_engine(
            Settings(
                data_dir=tmp,
                shards=1,
                offer_timeout_s=15,
                max_wait_s=120,
                ping_ttl_s=30,
                **settings,
            ),  # type: ignore[arg-type]
            lambda: self.now,
        )
        self.worker = self.engine.workers[0]

    def send(self, command: c.Command) -> c.Outcome:
        return decide(self.engine, self.now, command)

    def driver(self, lat: float, lng: float) -> uuid.UUID:
        d = new_id(0)
        assert self.send(c.RegisterDriver(driver_id=d, name="d")).accepted
        assert self.send(c.GoOnline(driver_id=d)).accepted
        self.ping(d, lat, lng)
        return d

    def ping(self, d: uuid.UUID, lat: float, lng: float) -> None:
        self.engine.transport.send_pings([Ping(d, lat, lng, self.now)])
        self.engine.run_once()

    def request(self) -> uuid.UUID:
        rider, ride = new_id(0), new_id(0)
        assert self.send(c.RegisterRider(rider_id=rider, name="r")).accepted
        assert self.send(
            c.RequestRide(
                ride_id=ride,
                rider_id=rider,
                pickup=LatLng(lat=PICKUP[0], lng=PICKUP[1]),
                dropoff=LatLng(lat=37.8, lng=-122.4),
            )
        ).accepted
        return ride

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.engine.run_once()

    def offered_to(self, ride: uuid.UUID) -> uuid.UUID | None:
        offer = self.worker.matcher.offers.get(ride)
        return offer[0] if offer else None


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_request_is_offered_at_once_to_the_nearest_available_driver(world: World) -> None:
    far = world.driver(PICKUP[0] + 0.01, PICKUP[1])
    near = world.driver(PICKUP[0] + 0.001, PICKUP[1])
    ride = world.request()
    assert world.offered_to(ride) == near != far


def test_an_unanswered_offer_expires_and_the_ride_goes_to_the_next_driver(world: World) -> None:
    first = world.driver(PICKUP[0] + 0.001, PICKUP[1])
    second = world.driver(PICKUP[0] + 0.003, PICKUP[1])
    ride = world.request()
    assert world.offered_to(ride) == first
    world.advance(14)
    assert world.offered_to(ride) == first  # not yet
    world.ping(first, PICKUP[0] + 0.001, PICKUP[1])
    world.ping(second, PICKUP[0] + 0.003, PICKUP[1])
    world.advance(1)
    world.advance(0)
    assert world.offered_to(ride) == second
    assert (
        first
        in world.worker.matcher.pending.get(ride, world.worker.matcher.offers[ride][2]).excluded
    )


def test_a_declined_ride_is_redispatched_without_that_driver(world: World) -> None:
    first = world.driver(PICKUP[0] + 0.001, PICKUP[1])
    world.driver(PICKUP[0] + 0.002, PICKUP[1])
    ride = world.request()
    assert world.send(c.DeclineOffer(ride_id=ride, driver_id=first)).accepted
    world.advance(0)
    assert world.offered_to(ride) not in (None, first)


def test_a_driver_whose_pings_stopped_is_not_offered_rides(world: World) -> None:
    world.driver(PICKUP[0] + 0.001, PICKUP[1])
    world.advance(31)  # past the ping TTL, no new ping
    ride = world.request()
    assert world.offered_to(ride) is None


def test_a_request_nobody_can_serve_expires_after_the_max_wait(world: World) -> None:
    ride = world.request()
    world.advance(119)
    assert ride in world.worker.matcher.pending
    world.advance(1)
    assert ride not in world.worker.matcher.pending
    assert world.worker.matcher.stats.request_expiries == 1


def test_an_older_ping_arriving_late_does_not_move_the_driver_back(world: World) -> None:
    d = world.driver(PICKUP[0] + 0.001, PICKUP[1])
    world.engine.transport.send_pings([Ping(d, 0.0, 0.0, world.now - 10)])
    world.engine.run_once()
    assert world.worker.matcher.positions[d][:2] == (PICKUP[0] + 0.001, PICKUP[1])


def test_the_batch_strategy_offers_only_when_its_window_is_due(tmp_path: Path) -> None:
    world = World(tmp_path, strategy="batch", batch_window_s=5)
    world.driver(PICKUP[0] + 0.001, PICKUP[1])
    world.driver(PICKUP[0] + 0.002, PICKUP[1])
    first = world.request()  # the first pending ride opens a window at once
    assert world.offered_to(first) is not None
    world.advance(1)
    second = world.request()
    waited = 1
    while world.offered_to(second) is None and waited < 10:
        world.advance(1)
        waited += 1
    assert waited == 5  # the next window, five seconds after the first


def test_a_driver_freed_out_of_reach_does_not_make_a_waiting_ride_search_again(
    world: World,
) -> None:
    ride = world.request()  # nobody near: it searched once and sleeps
    searches = world.worker.matcher.stats.searches
    world.driver(PICKUP[0] + 0.5, PICKUP[1])  # online 55 km away
    world.advance(1)
    assert world.worker.matcher.stats.searches == searches
    assert world.offered_to(ride) is None


def test_a_driver_coming_online_within_reach_wakes_a_waiting_ride_before_its_backoff(
    world: World,
) -> None:
    ride = world.request()
    for _ in range(3):  # backoffs of 2, 4 and 8 s: the next one is 16 s away
        world.advance(world.worker.matcher.pending[ride].retry_at - world.now)
    driver = world.driver(PICKUP[0] + 0.01, PICKUP[1])  # 1.1 km away, at once
    assert world.offered_to(ride) == driver


def same_cell_across_the_reach(reach_m: float = 3_000.0) -> tuple[float, float]:
    """Two latitudes north of the pickup, one just beyond ``reach_m`` and one just within
    it, in the same resolution-9 cell: a move between them announces nothing."""
    step = 1e-5  # about 1.1 m
    for outer in range(int(reach_m / 1.11) + 10, int(reach_m / 1.11) + 400):
        far, near = PICKUP[0] + outer * step, PICKUP[0] + (outer - 40) * step
        if haversine_m(*PICKUP, far, PICKUP[1]) > reach_m >= haversine_m(
            *PICKUP, near, PICKUP[1]
        ) and h3.latlng_to_cell(far, PICKUP[1], 9) == h3.latlng_to_cell(near, PICKUP[1], 9):
            return far, near
    raise AssertionError("no such pair of points")


def test_a_driver_drifting_into_reach_within_its_cell_is_found_by_the_backoff(
    world: World,
) -> None:
    far, near = same_cell_across_the_reach()
    ride = world.request()
    driver = world.driver(far, PICKUP[1])  # just out of reach
    for _ in range(4):  # backoffs of 2, 4, 8 and 16 s (the request expires after 120 s)
        world.advance(world.worker.matcher.pending[ride].retry_at - world.now)
    assert world.offered_to(ride) is None
    next_search = world.worker.matcher.pending[ride].retry_at
    world.ping(driver, near, PICKUP[1])  # within reach now, same cell: no wake
    while world.now < next_search - 1:
        world.advance(1)
        world.ping(driver, near, PICKUP[1])
    assert world.offered_to(ride) is None  # nothing announced the move
    world.advance(next_search - world.now + 0.5)
    assert world.offered_to(ride) == driver


def test_an_available_driver_moving_into_reach_wakes_a_waiting_ride_at_once(
    world: World,
) -> None:
    ride = world.request()
    driver = world.driver(PICKUP[0] + 0.05, PICKUP[1])  # 5.6 km: out of reach
    for _ in range(4):  # backoffs of 2, 4, 8 and 16 s: the next one is 32 s away
        world.advance(world.worker.matcher.pending[ride].retry_at - world.now)
    woken = world.worker.matcher.stats.woken
    world.ping(driver, PICKUP[0] + 0.01, PICKUP[1])  # another cell, 1.1 km away
    assert world.worker.matcher.stats.woken == woken + 1
    assert world.offered_to(ride) == driver
