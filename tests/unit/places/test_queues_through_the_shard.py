"""Geofenced places through a real shard worker: drivers' pings inside a place are
recorded as they enter and leave (once, debounced), the available ones queue in arrival
order, a pickup inside goes to the queue's head first (past nearer drivers), and the
queues survive a restart from the shard's checkpoint."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from engine_commands import decide
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dispatch.adapters.embedded.engine import EmbeddedEngine
from dispatch.bootstrap import build_embedded_engine
from dispatch.cli import app
from dispatch.domain.ids import new_id
from dispatch.messages import Ping
from dispatch.settings import MarketConfig, PlaceConfig, Settings
from schemas import commands as c
from schemas.common import LatLng, VehicleData

T0 = 1_767_600_000.0
# a 2.2 km x 1.7 km box around the airport; its southern edge at 37.600
AIRPORT = {"type": "Polygon", "coordinates": [[[-122.40, 37.600], [-122.375, 37.600],
           [-122.375, 37.615], [-122.40, 37.615], [-122.40, 37.600]]]}  # fmt: skip
PICKUP = (37.605, -122.385)  # the terminal, inside
FAR_INSIDE = (37.613, -122.398)  # inside, about 1.7 km from the pickup
NEAR_INSIDE = (37.6052, -122.3852)  # inside, some 30 m from the pickup
OUTSIDE_NEAR = (37.5996, -122.385)  # 45 m south of the edge: within the 50 m margin
OUTSIDE_FAR = (37.5985, -122.385)  # 170 m south of the edge


class World:
    def __init__(self, tmp: Path) -> None:
        self.now, self.tmp = T0, tmp
        self.where: dict[uuid.UUID, tuple[float, float]] = {}
        self.engine = self.start()

    def start(self) -> EmbeddedEngine:
        place = PlaceConfig(id="sfo", name="SFO", area=AIRPORT, queue=True)
        market = MarketConfig(name="san-francisco", shard=0, lat=37.77, lng=-122.42,
                              radius_km=40, places=[place])  # fmt: skip
        settings = Settings(data_dir=self.tmp, shards=1, markets=[market], offer_timeout_s=15,
                            max_wait_s=600, ping_ttl_s=600, checkpoint_every_events=5,
                            checkpoint_chunk_rows=2)  # fmt: skip
        self.engine = build_embedded_engine(settings, lambda: self.now)
        return self.engine

    @property
    def matcher(self):  # type: ignore[no-untyped-def]
        return self.engine.workers[0].matcher

    def send(self, command: c.Command) -> c.Outcome:
        return decide(self.engine, self.now, command)

    def driver(self, at: tuple[float, float]) -> uuid.UUID:
        d = new_id(0)
        assert self.send(c.RegisterDriver(driver_id=d, name="d")).accepted
        assert self.send(c.GoOnline(driver_id=d)).accepted
        self.move(d, at)
        return d

    def move(self, d: uuid.UUID, at: tuple[float, float]) -> None:
        self.now += 1
        self.where[d] = at
        self.engine.transport.send_pings([Ping(d, at[0], at[1], self.now)])
        self.engine.run_once()
        self.engine.run_once()  # the crossing decided in the first, folded back here

    def places_entered(self, driver: uuid.UUID) -> list[str | None]:
        """The places of the driver's ``EnteredPlace`` events, as its shard reads them."""
        events = self.engine.workers[0].app.repository.event_store.get(driver)
        return [e.place for e in events if type(e).__name__ == "EnteredPlace"]

    def restart(self) -> None:
        self.engine.stop()
        self.start()
        self.engine.transport.send_pings(
            [Ping(d, lat, lng, self.now) for d, (lat, lng) in self.where.items()]
        )
        self.engine.run_once()

    def queue(self) -> list[uuid.UUID]:
        return [d for d, _ in self.matcher.place_queues.queue("sfo")]

    def request(self, at: tuple[float, float] = PICKUP) -> uuid.UUID:
        rider, ride = new_id(0), new_id(0)
        assert self.send(c.RegisterRider(rider_id=rider, name="r")).accepted
        pickup, dropoff = LatLng(lat=at[0], lng=at[1]), LatLng(lat=37.77, lng=-122.42)
        command = c.RequestRide(ride_id=ride, rider_id=rider, pickup=pickup, dropoff=dropoff)
        assert self.send(command).accepted
        return ride

    def offered_to(self, ride: uuid.UUID) -> uuid.UUID | None:
        offer = self.matcher.offers.get(ride)
        return offer[0] if offer else None

    def crossings(self, driver: uuid.UUID) -> list[str]:
        recorder = self.engine.workers[0].app.recorder
        return [
            e.topic.rsplit(".", 1)[-1]
            for e in recorder.select_events(driver)
            if e.topic.endswith("Place")
        ]


def test_a_pickup_inside_goes_to_the_queue_head_past_a_nearer_driver(tmp_path: Path) -> None:
    world = World(tmp_path)
    first = world.driver(FAR_INSIDE)
    second = world.driver(NEAR_INSIDE)
    assert world.queue() == [first, second]
    ride = world.request()
    assert world.offered_to(ride) == first
    assert world.matcher.stats.queue_offers == 1


def test_a_declined_queue_offer_goes_to_the_next_and_the_decliner_rejoins_at_the_tail(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    first, second = world.driver(FAR_INSIDE), world.driver(FAR_INSIDE)
    ride = world.request()
    assert world.offered_to(ride) == first and world.queue() == [second]
    assert world.send(c.DeclineOffer(ride_id=ride, driver_id=first)).accepted
    world.engine.run_once()
    assert world.offered_to(ride) == second
    assert world.queue() == [first]


def test_a_pickup_outside_the_place_goes_to_the_nearest_driver(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.driver(FAR_INSIDE)
    near = world.driver((37.597, -122.385))  # outside the airport
    ride = world.request((37.596, -122.385))
    assert world.offered_to(ride) == near


def test_crossings_are_recorded_once_and_the_exit_margin_holds_a_driver_in(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    d = world.driver(FAR_INSIDE)
    for _ in range(3):
        world.move(d, NEAR_INSIDE)
    world.move(d, OUTSIDE_NEAR)  # within the margin: still inside, still queued
    assert world.queue() == [d]
    assert world.crossings(d) == ["EnteredPlace"]
    world.move(d, OUTSIDE_FAR)
    assert world.queue() == [] and world.crossings(d) == ["EnteredPlace", "LeftPlace"]
    world.move(d, OUTSIDE_NEAR)  # outside the polygon: not entered again
    assert world.crossings(d) == ["EnteredPlace", "LeftPlace"]


def test_going_offline_leaves_the_queue_and_coming_back_joins_at_the_tail(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    first, second = world.driver(FAR_INSIDE), world.driver(FAR_INSIDE)
    assert world.send(c.GoOffline(driver_id=first)).accepted
    world.engine.run_once()
    assert world.queue() == [second]
    assert world.send(c.GoOnline(driver_id=first)).accepted
    world.move(first, FAR_INSIDE)  # its first ping back puts it inside again
    assert world.queue() == [second, first]


def test_the_queue_survives_a_restart_from_the_checkpoint(tmp_path: Path) -> None:
    world = World(tmp_path)
    drivers = [world.driver(FAR_INSIDE) for _ in range(4)]
    assert world.send(c.GoOffline(driver_id=drivers[0])).accepted
    assert world.send(c.GoOnline(driver_id=drivers[0])).accepted
    world.move(drivers[0], FAR_INSIDE)
    expected = [*drivers[1:], drivers[0]]
    assert world.queue() == expected
    world.restart()
    assert world.engine.workers[0].restored_from is not None  # a checkpoint, then the tail
    assert world.queue() == expected
    assert world.offered_to(world.request()) == drivers[1]


def test_replay_state_at_shows_the_queue_of_a_past_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCH_SHARDS", "1")
    world = World(tmp_path)
    first, second = world.driver(FAR_INSIDE), world.driver(FAR_INSIDE)
    both = world.now
    world.move(first, OUTSIDE_FAR)
    world.engine.stop()

    def places_at(at: float) -> object:
        moment = datetime.fromtimestamp(at, UTC).isoformat()
        args = ["replay", "state", "--at", moment, "--data-dir", str(tmp_path), "--json"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["places"]

    assert places_at(T0) == {}
    assert places_at(both) == {"sfo": {"inside": 2, "queue": [str(first), str(second)]}}
    assert places_at(world.now) == {"sfo": {"inside": 1, "queue": [str(second)]}}


def test_replay_state_without_the_key_store_says_so_and_makes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader must not leave a new, empty key store behind: the next serve would refuse it
    as another store than the one sealing began with."""
    monkeypatch.setenv("DISPATCH_SHARDS", "1")
    world = World(tmp_path)
    world.driver(FAR_INSIDE)
    world.engine.stop()
    (tmp_path / "subject-keys.sqlite").unlink()
    moment = datetime.fromtimestamp(world.now, UTC).isoformat()
    args = ["replay", "state", "--at", moment, "--data-dir", str(tmp_path), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "subject-keys.sqlite is missing, but sealing began" in result.output
    assert not (tmp_path / "subject-keys.sqlite").exists()


def test_in_one_tick_the_head_takes_the_inside_pickup_and_nobody_queued_the_outside_one(
    tmp_path: Path,
) -> None:
    """No driver gets two offers in a tick, and a queue's drivers wait for its place's
    pickups: the outside pickup goes to the driver outside, not to the queue's second."""
    world = World(tmp_path)
    head, second = world.driver(FAR_INSIDE), world.driver(NEAR_INSIDE)
    outside = world.driver(OUTSIDE_FAR)
    inside_ride, outside_ride = world.request(), world.request((37.5984, -122.385))
    assert world.offered_to(inside_ride) == head
    assert world.offered_to(outside_ride) == outside
    assert world.queue() == [second]


def test_a_queued_driver_is_not_offered_a_pickup_outside_its_place(tmp_path: Path) -> None:
    world = World(tmp_path)
    head = world.driver(NEAR_INSIDE)
    ride = world.request(OUTSIDE_FAR)  # 170 m outside the airport: nobody outside
    assert world.offered_to(ride) is None and world.queue() == [head]


def test_the_head_must_serve_the_rides_product(tmp_path: Path) -> None:
    world = World(tmp_path)
    standard, xl = world.driver(FAR_INSIDE), new_id(0)
    six_seats = VehicleData(product="xl", seats=6)
    assert world.send(c.RegisterDriver(driver_id=xl, name="x", vehicle=six_seats)).accepted
    assert world.send(c.GoOnline(driver_id=xl)).accepted
    world.move(xl, FAR_INSIDE)
    assert world.queue() == [standard, xl]
    rider, ride = new_id(0), new_id(0)
    assert world.send(c.RegisterRider(rider_id=rider, name="r")).accepted
    here, there = LatLng(lat=PICKUP[0], lng=PICKUP[1]), LatLng(lat=37.77, lng=-122.42)
    command = c.RequestRide(ride_id=ride, rider_id=rider, pickup=here, dropoff=there,
                            product="xl")  # fmt: skip
    assert world.send(command).accepted
    assert world.offered_to(ride) == xl  # past the head, whose car is not an xl


def test_going_offline_or_being_erased_leaves_the_place_itself(tmp_path: Path) -> None:
    world = World(tmp_path)
    first, second = world.driver(FAR_INSIDE), world.driver(FAR_INSIDE)
    assert world.send(c.GoOffline(driver_id=first)).accepted
    world.engine.run_once()
    assert first not in world.matcher.place_queues.where  # not counted inside while off
    assert world.send(c.GoOnline(driver_id=first)).accepted
    world.engine.run_once()
    assert world.queue() == [second], "not queued again before a ping says it is inside"
    world.move(first, FAR_INSIDE)
    assert world.queue() == [second, first]
    assert world.crossings(first) == ["EnteredPlace", "EnteredPlace"]
    assert world.send(c.GoOffline(driver_id=second)).accepted
    assert world.send(c.EraseDriver(driver_id=second, by="self")).accepted
    world.engine.run_once()
    assert second not in world.matcher.place_queues.where
    assert all(str(second) != row[1] for row in world.matcher.place_queues.rows())


def test_a_place_without_a_queue_records_crossings_and_queues_nobody(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.engine.stop()
    place = PlaceConfig(id="sfo", area=AIRPORT, queue=False)
    market = MarketConfig(name="san-francisco", shard=0, lat=37.77, lng=-122.42,
                          radius_km=40, places=[place])  # fmt: skip
    settings = Settings(data_dir=tmp_path / "plain", shards=1, markets=[market],
                        ping_ttl_s=600, hint_every_s=30)  # fmt: skip
    world.engine = build_embedded_engine(settings, lambda: world.now)
    d = world.driver(FAR_INSIDE)
    assert world.crossings(d) == ["EnteredPlace"]
    assert world.queue() == [] and world.matcher._may_hint(d)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(order=st.permutations(range(5)), tmp=st.uuids())
def test_drivers_arriving_in_one_batch_queue_in_the_order_their_pings_came(
    tmp_path_factory: pytest.TempPathFactory, order: list[int], tmp: uuid.UUID
) -> None:
    """Concurrent arrivals: five drivers' first pings inside reach the shard in one batch,
    in any order; the queue is that order, and the same after a restart."""
    world = World(tmp_path_factory.mktemp(f"arrivals-{tmp.hex[:8]}"))
    drivers = []
    for _ in range(5):
        d = new_id(0)
        assert world.send(c.RegisterDriver(driver_id=d, name="d")).accepted
        assert world.send(c.GoOnline(driver_id=d)).accepted
        drivers.append(d)
    world.now += 1
    arriving = [drivers[i] for i in order]
    pings = [Ping(d, FAR_INSIDE[0], FAR_INSIDE[1], world.now) for d in arriving]
    world.engine.transport.send_pings(pings)
    world.engine.run_once()
    world.engine.run_once()
    assert world.queue() == arriving
    for d in arriving:
        world.where[d] = FAR_INSIDE
    world.restart()
    assert world.queue() == arriving
    world.engine.stop()


class PoolingWorld(World):
    """The same airport, on a deployment that pools shared rides."""

    def start(self) -> EmbeddedEngine:
        place = PlaceConfig(id="sfo", name="SFO", area=AIRPORT, queue=True)
        market = MarketConfig(name="san-francisco", shard=0, lat=37.77, lng=-122.42,
                              radius_km=40, places=[place])  # fmt: skip
        settings = Settings(data_dir=self.tmp, shards=1, markets=[market], offer_timeout_s=15,
                            max_wait_s=600, ping_ttl_s=600, pool=True)  # fmt: skip
        self.engine = build_embedded_engine(settings, lambda: self.now)
        return self.engine


def test_a_shared_ride_inside_the_place_goes_to_the_queue_head_with_its_plan(
    tmp_path: Path,
) -> None:
    world = PoolingWorld(tmp_path)
    head = world.driver(NEAR_INSIDE)
    world.now += 30
    world.driver(NEAR_INSIDE)
    assert world.queue()[0] == head
    rider, ride = new_id(0), new_id(0)
    assert world.send(c.RegisterRider(rider_id=rider, name="r")).accepted
    pickup, dropoff = LatLng(lat=PICKUP[0], lng=PICKUP[1]), LatLng(lat=37.64, lng=-122.40)
    assert world.send(c.RequestRide(ride_id=ride, rider_id=rider, pickup=pickup,
                                    dropoff=dropoff, shared=True)).accepted  # fmt: skip
    assert world.offered_to(ride) == head
    assert world.matcher.pool.plans[head].offer_plan == [[str(ride), "P"], [str(ride), "D"]]


def test_a_queue_head_offered_a_shared_ride_is_not_offered_a_single_one_in_the_same_tick(
    tmp_path: Path,
) -> None:
    world = PoolingWorld(tmp_path)
    head = world.driver(NEAR_INSIDE)
    world.now += 30
    behind = world.driver(NEAR_INSIDE)
    assert world.queue() == [head, behind]
    pickup, dropoff = LatLng(lat=PICKUP[0], lng=PICKUP[1]), LatLng(lat=37.64, lng=-122.40)
    riders = {shared: new_id(0) for shared in (True, False)}
    for rider in riders.values():
        assert world.send(c.RegisterRider(rider_id=rider, name="r")).accepted
    world.engine.transport.send_pings([])  # nothing: the two requests land in one batch
    rides = {}
    for shared, rider in riders.items():  # one tick for both: the shared one is matched first
        ride = rides[shared] = new_id(0)
        command = c.RequestRide(ride_id=ride, rider_id=rider, pickup=pickup, dropoff=dropoff,
                                shared=shared)  # fmt: skip
        at = datetime.fromtimestamp(world.now, UTC)
        envelope = c.CommandEnvelope(command_id=str(uuid.uuid4()), command=command, issued_at=at)
        world.engine.transport.send_command(envelope)
    world.now += 1
    world.engine.run_once()
    assert world.offered_to(rides[True]) == head
    assert world.offered_to(rides[False]) == behind  # in the same tick, the next in the queue


def test_a_crossing_is_kept_sealed_under_the_drivers_key_and_goes_with_its_erasure(
    tmp_path: Path,
) -> None:
    """The place a driver entered is personal (where it was, and when): its events, the
    driver's snapshots and the checkpoints' place rows keep it sealed under the driver's
    key (docs/PRIVACY.md); the matcher and the views read it opened; once the driver is
    erased it reads as no place, after a restart too."""
    world = World(tmp_path)
    gone, kept = world.driver(FAR_INSIDE), world.driver(FAR_INSIDE)
    other = world.driver(OUTSIDE_FAR)
    for _ in range(30):  # events, so that checkpoints (every 5) complete, and a snapshot
        for command in (c.GoOffline, c.GoOnline):
            assert world.send(command(driver_id=other if _ < 6 else gone)).accepted
            world.engine.run_once()
    world.move(gone, FAR_INSIDE)
    world.move(kept, FAR_INSIDE)
    assert world.queue() == [gone, kept] or world.queue() == [kept, gone]
    assert world.engine.workers[0].app.repository.get(gone).places == ["sfo"]
    assert _place_rows(tmp_path), "no complete checkpoint with place rows: nothing checked"
    stored = b"".join(f.read_bytes() for f in tmp_path.glob("shard-0000.sqlite*"))  # and -wal
    assert b"sfo" not in stored
    entered = world.places_entered(gone)
    assert entered and set(entered) == {"sfo"}  # opened for the shard that holds the key
    assert world.send(c.GoOffline(driver_id=gone)).accepted
    assert world.send(c.EraseDriver(driver_id=gone, by="self")).accepted
    world.engine.run_once()
    assert world.queue() == [kept]
    for _ in range(6):  # a checkpoint after the erasure: the erased driver's row left out
        for command in (c.GoOffline, c.GoOnline):
            assert world.send(command(driver_id=other)).accepted
            world.engine.run_once()
    rows = _place_rows(tmp_path)
    assert rows and str(gone) not in json.dumps(rows[-1]) and str(kept) in json.dumps(rows[-1])
    world.where.pop(gone)
    world.restart()
    assert world.queue() == [kept]
    assert world.places_entered(gone) and set(world.places_entered(gone)) == {None}
    assert world.places_entered(kept) == ["sfo"]


def _place_rows(tmp: Path) -> list[list[object]]:
    """The place rows of each complete checkpoint of shard 0 (as stored: sealed)."""
    with sqlite3.connect(tmp / "shard-0000.sqlite") as db:
        rows = db.execute(
            "SELECT position, last, data FROM shard_checkpoints ORDER BY position, seq"
        ).fetchall()
    complete = {position for position, last, _ in rows if last}
    return [
        json.loads(data)["parts"]["places"]
        for position, _, data in rows
        if position in complete and "places" in json.loads(data)["parts"]
    ]
