"""Two embedded shards driven through random interleavings of cross-shard rides (issue #14).

Riders of either shard request rides at either shard's pickups; drivers of either shard
are offered them (asks, holds, grants), accept, decline, arrive, start, complete or cancel;
riders cancel; clocks move past offer timeouts and max waits; each step runs one shard's
batch (so messages cross in any order), delivers a message again, or restarts the engine
on its files (what was in flight between shards is lost with the process and sent again).
After every step the log, read as ``replay verify`` reads it, has no violation; at the end,
once everything settled, every rider's lock, ride and driver agree across the shards.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.driver import Driver, DriverStatus
from dispatch.domain.ids import new_id
from dispatch.domain.ride import TERMINAL, Ride, RideStatus
from dispatch.domain.rider import Rider
from dispatch.messages import Ping
from dispatch.replay.operations import verify
from dispatch.settings import Settings
from dispatch.simulator.clock import SimClock
from schemas import commands as c

SHARDS = (0, 1)
PICKUP = {"lat": 37.3382, "lng": -121.8863}
DROPOFF = {"lat": 37.3440, "lng": -121.8800}
NEAR = (37.3388, -121.8856)
shard = st.sampled_from(SHARDS)
ride_shard = st.sampled_from((1, 1, 0))  # mostly where the drivers are another shard's
index = st.integers(min_value=0, max_value=7)


class CrossShardEngine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="cross-shard-sm-")
        self.settings = Settings(data_dir=Path(self.folder.name), shards=2, offer_timeout_s=15)
        self.clock = SimClock()
        self.clock.now = 1_767_600_000.0
        self.engine = build_embedded_engine(self.settings, self.clock)
        self.seq = 0
        self.riders = [new_id(s) for s in SHARDS for _ in range(2)]
        # Without markets the pickup's neighbourhood is shard 1's (the default rule): shard
        # 0's drivers are offered shard 1's rides across shards, and shard 0's own.
        self.drivers = [new_id(0) for _ in range(4)]
        self.rides: list[UUID] = []
        for rider in self.riders:
            self.send(c.RegisterRider(rider_id=rider, name="r"))
        for driver in self.drivers:
            self.send(c.RegisterDriver(driver_id=driver, name="d"))
        self.settle()
        for driver in self.drivers:
            self.send(c.GoOnline(driver_id=driver))
        self.settle()
        self.ping()
        for i, where in enumerate((1, 1, 0)):  # every run starts with rides in both shards
            self.request(i, where)

    def teardown(self) -> None:
        if hasattr(self, "engine"):
            self.settle(rounds=6)
            self.clock.now += 2 * self.settings.max_wait_s
            self.settle(rounds=6)
            self.check_settled()
            asked = sum(
                1 for r in self.rides if self._known(r) and self.get(r, r.int >> 112).asks > 0
            )
            shown = f"{min(asked, 3)}{'+' if asked >= 3 else ''}"
            event(f"rides asking a driver of another shard: {shown}")
            for worker in self.engine.workers.values():
                worker.app.close()
            self.folder.cleanup()

    # -- helpers ---------------------------------------------------------------------------
    def send(self, command: Any) -> None:
        self.seq += 1
        envelope = c.CommandEnvelope(
            command_id=f"cmd-{self.seq}", issued_at=self.clock.now, command=command
        )
        self.engine.transport.send_command(envelope)

    def ping(self) -> None:
        self.engine.transport.send_pings([Ping(d, *NEAR, self.clock.now) for d in self.drivers])

    def run(self, s: int) -> None:
        self.clock.now += 0.5
        self.engine.run_batch(self.engine.workers[s])

    def settle(self, rounds: int = 3) -> None:
        for _ in range(rounds):
            for s in SHARDS:
                self.run(s)

    def get(self, aggregate_id: UUID, owner: int) -> Any:
        return self.engine.workers[owner].app.repository.get(aggregate_id)

    def ride(self, i: int) -> UUID | None:
        return self.rides[i % len(self.rides)] if self.rides else None

    # -- rules -----------------------------------------------------------------------------
    @rule(i=index, where=ride_shard)
    def request(self, i: int, where: int) -> None:
        ride = new_id(where)
        self.rides.append(ride)
        rider = self.riders[i % len(self.riders)]
        self.send(c.RequestRide(ride_id=ride, rider_id=rider, pickup=PICKUP, dropoff=DROPOFF))

    @rule(s=shard)
    def run_one_shard(self, s: int) -> None:
        self.run(s)

    @rule(i=index, answer=st.sampled_from(["accept", "decline"]))
    def driver_answers_its_offer(self, i: int, answer: str) -> None:
        driver_id = self.drivers[i % len(self.drivers)]
        driver: Driver = self.get(driver_id, driver_id.int >> 112)
        if driver.ride_id is None:
            return
        kind = c.AcceptOffer if answer == "accept" else c.DeclineOffer
        self.send(kind(ride_id=driver.ride_id, driver_id=driver_id))

    @precondition(lambda self: bool(self.rides))
    @rule(
        i=index, step=st.sampled_from([c.MarkArrived, c.StartTrip, c.CompleteTrip, c.DriverCancel])
    )
    def driver_drives(self, i: int, step: Any) -> None:
        ride_id = self.ride(i)
        assert ride_id is not None
        ride: Ride = self.get(ride_id, ride_id.int >> 112) if self._known(ride_id) else None
        if ride is None or ride.driver_id is None:
            return
        extra = {"reason": "r"} if step is c.DriverCancel else {}
        self.send(step(ride_id=ride_id, driver_id=ride.driver_id, **extra))

    @precondition(lambda self: bool(self.rides))
    @rule(i=index)
    def rider_cancels(self, i: int) -> None:
        ride_id = self.ride(i)
        assert ride_id is not None
        rider = next((r for r in self.riders if self._active(r) == ride_id), None)
        if rider is not None:
            self.send(c.CancelRide(ride_id=ride_id, rider_id=rider, reason="r"))

    @rule(seconds=st.sampled_from([1.0, 10.0, 20.0, 400.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds
        self.ping()

    @rule(s=shard)
    def a_message_arrives_twice(self, s: int) -> None:
        pending = self.engine.workers[s].app.pending_messages([p for p in SHARDS if p != s])
        self.engine.transport.send_between_shards(pending[:2], [])

    @rule()
    def the_process_restarts(self) -> None:
        for worker in self.engine.workers.values():
            worker.app.close()
        self.engine = build_embedded_engine(self.settings, self.clock)
        self.ping()

    # -- checks ----------------------------------------------------------------------------
    @invariant()
    def the_log_has_no_violation(self) -> None:
        if hasattr(self, "engine"):
            source = SqliteLogSource(self.settings.data_dir)
            try:
                _, violations = verify(source)
            finally:
                source.close()
            assert violations == [], [str(v) for v in violations]

    def check_settled(self) -> None:
        """Everything delivered and the clock past every wait: no ride waits for an answer,
        every lock is its live ride's, every held driver backs its ride."""
        for rider_id in self.riders:
            active = self._active(rider_id)
            if active is not None:
                ride: Ride = self.get(active, active.int >> 112)
                assert ride.status not in TERMINAL, (rider_id, active, ride.status)
        for ride_id in self.rides:
            if not self._known(ride_id):
                continue
            ride = self.get(ride_id, ride_id.int >> 112)
            assert ride.status in TERMINAL or ride.asking is None, ride_id  # answered
            if ride.status in (RideStatus.ACCEPTED, RideStatus.DRIVER_ARRIVED):
                assert ride.driver_id is not None
                driver: Driver = self.get(ride.driver_id, ride.driver_id.int >> 112)
                assert driver.ride_id == ride_id and driver.status == DriverStatus.EN_ROUTE
        for driver_id in self.drivers:
            driver = self.get(driver_id, driver_id.int >> 112)
            if driver.ride_id is not None:
                ride = self.get(driver.ride_id, driver.ride_id.int >> 112)
                assert driver_id in (ride.offered_to, ride.driver_id), (driver_id, ride.status)

    def _active(self, rider_id: UUID) -> UUID | None:
        rider: Rider = self.get(rider_id, rider_id.int >> 112)
        return rider.active_ride

    def _known(self, ride_id: UUID) -> bool:
        app = self.engine.workers[ride_id.int >> 112].app
        return bool(app.recorder.select_events(ride_id, limit=1))


CrossShardEngine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a shrink takes minutes here
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_cross_shard_rides_hold_under_any_interleaving = CrossShardEngine.TestCase
