"""Two embedded shards driven through random interleavings of cross-shard rides and driver
hand-offs (issue #14).

Riders of either shard request rides at either shard's pickups; drivers of either shard
are offered them (asks, holds, grants), accept, decline, arrive, start, complete or cancel;
riders cancel; clocks move past offer timeouts and max waits. The city is one market split
over both shards and hand-off is on with a short dwell: a driver drives into the other
shard's region (and back), and once its pings stay there long enough, free, its owner hands
it off. The driver's own commands (go online, go offline, accept) are addressed as an app
would: to the shard it last learned serves the driver, or to its home, following ``moved``
to the shard named and sending again on ``not_here_yet``. Each step runs one shard's batch
(so messages cross in any order), delivers a message again, holds back every message to a
shard (and lets them through later, out of order with the copies sent again meanwhile), or
restarts the engine on its files (what was in flight between shards is lost with the
process and sent again, or a held-back copy still arrives afterwards).

After every step the log, read as ``replay verify`` reads it, has no violation, and no
driver has two owners: at most one shard has it in its matcher's own drivers, at most one
has its ``Driver`` not handed off, the two agree, and the one serving it is in its latest
tenure. At the end, once everything settled, every rider's lock, ride and driver agree
across the shards and exactly one shard serves each driver.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.driver import Driver, DriverStatus
from dispatch.domain.ids import new_id, shard_of
from dispatch.domain.ride import TERMINAL, Ride, RideStatus
from dispatch.domain.rider import Rider
from dispatch.markets import MarketMap
from dispatch.messages import Ping
from dispatch.replay.operations import verify
from dispatch.settings import MarketConfig, Settings
from dispatch.shard.crossshard.messages import Ack, Envelope, HandOff
from dispatch.simulator.clock import SimClock
from schemas import commands as c

SHARDS = (0, 1)
PICKUP = {"lat": 37.3382, "lng": -121.8863}
DROPOFF = {"lat": 37.3440, "lng": -121.8800}
# One market split over both shards: its north is shard 1's region, the rest shard 0's.
MARKET = MarketConfig(name="san-jose", shard=0, shards=2, lat=PICKUP["lat"], lng=PICKUP["lng"],
                      radius_km=6)  # fmt: skip
# Where a driver pings from in each shard's region: both within 2 km of the pickup, so
# either shard's rides may be offered a driver in either region.
PLACES = {0: (37.3302, -121.8863), 1: (37.3532, -121.8863)}
HANDOFF_AFTER_S = 5.0
# The drivers' home shards, and the regions they start in: the third one starts away from
# home (handed off once it has been free there for the dwell).
HOMES, STARTS = (0, 0, 0, 1), (0, 0, 1, 1)
shard = st.sampled_from(SHARDS)
ride_shard = st.sampled_from((1, 1, 0))  # mostly where most drivers are another shard's
index = st.integers(min_value=0, max_value=7)


class CrossShardEngine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="cross-shard-sm-")
        self.settings = Settings(data_dir=Path(self.folder.name), shards=2, offer_timeout_s=15,
                                 markets=[MARKET], handoff_after_s=HANDOFF_AFTER_S,
                                 checkpoint_every_events=20)  # fmt: skip
        regions = MarketMap(self.settings.markets, self.settings.shards)
        assert all(regions.shard_for(*PLACES[s]) == s for s in SHARDS), "the places moved"
        self.clock = SimClock()
        self.clock.now = 1_767_600_000.0
        # What the network holds back: every message (and ack) to the shards cut off.
        self.cut: set[int] = set()
        self.held: list[Envelope | Ack] = []
        self.engine = build_embedded_engine(self.settings, self.clock)
        self._hold_back_what_is_cut()
        self.seq = 0
        self.riders = [new_id(s) for s in SHARDS for _ in range(2)]
        self.drivers = [new_id(home) for home in HOMES]
        self.place = dict(zip(self.drivers, STARTS, strict=True))  # where it pings from
        # The app's side of the driver's commands: where it last learned the driver is
        # served, and the commands it still waits an answer for (by id, as last sent).
        self.believed: dict[UUID, int] = {}
        self.waiting: dict[str, c.CommandEnvelope] = {}
        self.followed = 0
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
            self.settle_fully()
            self.clock.now += 2 * self.settings.max_wait_s
            self.settle_fully()
            self.check_settled()
            asked = sum(
                1 for r in self.rides if self._known(r) and self.get(r, r.int >> 112).asks > 0
            )
            event(f"rides asking a driver of another shard: {_bucket(asked)}")
            event(f"hand-offs: {_bucket(sum(self._tenure(d) for d in self.drivers))}")
            event(f"driver commands sent on after moved/not_here_yet: {_bucket(self.followed)}")
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

    def send_as_the_app(self, command: Any, to_home: bool) -> None:
        """A driver's own command, addressed where the app last learned the driver is
        served (or to its home); ``follow_the_answers`` sees it through."""
        self.seq += 1
        driver_id = command.driver_id
        to = None if to_home else self.believed.get(driver_id)
        envelope = c.CommandEnvelope(command_id=f"cmd-{self.seq}", issued_at=self.clock.now,
                                     command=command, shard=to)  # fmt: skip
        self.waiting[envelope.command_id] = envelope
        self.engine.transport.send_command(envelope)

    def follow_the_answers(self) -> None:
        """As ``Runtime.send``: a command refused as ``moved`` goes on to the shard named, one
        refused as ``not_here_yet`` (the hand-off is on its way there) is sent again."""
        for command_id, envelope in list(self.waiting.items()):
            outcome = self.engine.transport.wait_outcome(command_id, 0)
            if outcome is None:
                continue  # not answered yet
            command: Any = envelope.command
            if outcome.code == "moved":
                assert outcome.moved_to is not None and outcome.moved_to != outcome.shard
                self.believed[command.driver_id] = outcome.moved_to
                envelope = envelope.model_copy(update={"shard": outcome.moved_to})
            elif outcome.code != "not_here_yet":
                assert outcome.code != "misrouted", outcome
                del self.waiting[command_id]
                if outcome.accepted and outcome.shard != shard_of(command.driver_id):
                    event(f"{command.type} accepted by a shard the driver was handed to")
                continue
            self.followed += 1
            self.waiting[command_id] = envelope
            self.engine.transport.send_command(envelope)

    def ping(self) -> None:
        pings = [Ping(d, *PLACES[self.place[d]], self.clock.now) for d in self.drivers]
        self.engine.transport.send_pings(pings)

    def run(self, s: int) -> None:
        self.clock.now += 0.5
        self.engine.run_batch(self.engine.workers[s])

    def settle(self, rounds: int = 3) -> None:
        for _ in range(rounds):
            for s in SHARDS:
                self.run(s)
            self.follow_the_answers()

    def settle_fully(self) -> None:
        """Let everything held back through and run the shards until no message between
        them is unacknowledged and the app has every answer it waits for."""
        for s in SHARDS:
            self.let_through(s)
        for _ in range(40):
            self.settle(rounds=1)
            unacked = [
                (m.id, type(m.body).__name__)
                for w in self.engine.workers.values()
                for m in w.app.pending_messages(SHARDS)
            ]
            if not unacked and not self.waiting:
                return
        raise AssertionError(f"never settled: unacknowledged {unacked}, unanswered {self.waiting}")

    def get(self, aggregate_id: UUID, owner: int) -> Any:
        return self.engine.workers[owner].app.repository.get(aggregate_id)

    def ride(self, i: int) -> UUID | None:
        return self.rides[i % len(self.rides)] if self.rides else None

    def _hold_back_what_is_cut(self) -> None:
        """Route the engine's messages between shards through the test's network."""
        transport = self.engine.transport
        deliver = transport.send_between_shards

        def send_between_shards(messages: Sequence[Envelope], acks: Sequence[Ack]) -> None:
            self.held.extend(m for m in (*messages, *acks) if m.receiver in self.cut)
            deliver([m for m in messages if m.receiver not in self.cut],
                    [a for a in acks if a.receiver not in self.cut])  # fmt: skip

        self._deliver = deliver
        transport.send_between_shards = send_between_shards  # type: ignore[method-assign]

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

    @rule()
    def a_moment_passes(self) -> None:
        """The drivers ping, every shard runs a batch, the app reads its answers."""
        self.ping()
        self.settle(rounds=1)

    @rule(i=index, answer=st.sampled_from(["accept", "decline"]), to_home=st.booleans())
    def driver_answers_its_offer(self, i: int, answer: str, to_home: bool) -> None:
        driver_id = self.drivers[i % len(self.drivers)]
        serving = self._serving(driver_id)
        if not serving:
            return  # on its way to another shard: no offer to see
        driver: Driver = self.get(driver_id, serving[0])
        if driver.ride_id is None:
            return
        if answer == "accept":  # at the driver's owner, the commit point
            self.send_as_the_app(c.AcceptOffer(ride_id=driver.ride_id, driver_id=driver_id),
                                 to_home)  # fmt: skip
        else:  # at the ride's shard
            self.send(c.DeclineOffer(ride_id=driver.ride_id, driver_id=driver_id))

    @rule(i=index, online=st.booleans(), to_home=st.booleans())
    def driver_goes_online_or_offline(self, i: int, online: bool, to_home: bool) -> None:
        driver_id = self.drivers[i % len(self.drivers)]
        command = c.GoOnline if online else c.GoOffline
        self.send_as_the_app(command(driver_id=driver_id), to_home)

    @rule(
        i=index,
        free_first=st.booleans(),
        seconds=st.sampled_from([1.0, HANDOFF_AFTER_S + 1, HANDOFF_AFTER_S + 1]),
        its_owner_runs=st.booleans(),
    )
    def a_driver_drives_across_the_border(
        self, i: int, free_first: bool, seconds: float, its_owner_runs: bool
    ) -> None:
        """A driver (one that is free, if ``free_first`` and there is one) pings from the
        other shard's region from now on, for ``seconds``: once its pings stayed there the
        dwell, free, its owner hands it off when they reach it (at once if
        ``its_owner_runs``: its hand-off then on its way while the rest goes on)."""
        free = [d for d in self.drivers if self._status(d) == DriverStatus.AVAILABLE]
        drivers = free if free_first and free else self.drivers
        driver_id = drivers[i % len(drivers)]
        self.place[driver_id] = to = 1 - self.place[driver_id]
        self.engine.transport.send_pings([Ping(driver_id, *PLACES[to], self.clock.now)])
        self.clock.now += seconds
        self.engine.transport.send_pings([Ping(driver_id, *PLACES[to], self.clock.now)])
        owner = self._serving(driver_id)
        if its_owner_runs and owner:
            self.run(owner[0])

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

    @rule(seconds=st.sampled_from([1.0, 3.0, 10.0, 20.0, 400.0]))
    def time_passes(self, seconds: float) -> None:
        """The drivers ping as it begins and as it ends (where they are: a free driver in
        another shard's region for longer than the dwell is handed off)."""
        self.ping()
        self.clock.now += seconds
        self.ping()

    @rule(s=shard)
    def a_message_arrives_twice(self, s: int) -> None:
        pending = self.engine.workers[s].app.pending_messages([p for p in SHARDS if p != s])
        self.engine.transport.send_between_shards(pending[:2], [])

    @rule(s=shard, holds=st.booleans())
    def the_network_to_a_shard(self, s: int, holds: bool) -> None:
        """Holds back every message (and ack) to shard ``s`` from now on, or lets through
        what it held: late, after whatever was sent meanwhile (copies sent again among it)."""
        if holds:
            self.cut.add(s)
        else:
            self.let_through(s)

    def let_through(self, s: int) -> None:
        self.cut.discard(s)
        late = [m for m in self.held if m.receiver == s]
        self.held = [m for m in self.held if m.receiver != s]
        if any(isinstance(m, Envelope) and isinstance(m.body, HandOff) for m in late):
            event("a HandOff held back arrives late")
        self._deliver([m for m in late if isinstance(m, Envelope)],
                      [a for a in late if isinstance(a, Ack)])  # fmt: skip

    @rule(held_survive=st.booleans())
    def the_process_restarts(self, held_survive: bool) -> None:
        """What was in flight is lost with the process (the senders send it again), but
        for what the network held back, which may still arrive afterwards."""
        self.follow_the_answers()  # what the app was told before
        for worker in self.engine.workers.values():
            unacked = worker.app.pending_messages([p for p in SHARDS if p != worker.shard])
            if any(isinstance(m.body, HandOff) for m in unacked):
                event("a restart while a HandOff is unacknowledged")
            worker.app.close()
        if not held_survive:
            self.held.clear()
        self.engine = build_embedded_engine(self.settings, self.clock)
        if any(w.restored_from is not None for w in self.engine.workers.values()):
            event("a restart restores a shard from a checkpoint")
        self._hold_back_what_is_cut()
        for envelope in self.waiting.values():  # the app's wait timed out: it sends again
            self.engine.transport.send_command(envelope)
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

    @invariant()
    def no_driver_has_two_owners(self) -> None:
        """At most one shard serves each driver, its matcher and its aggregate agree on it,
        and it is the driver's latest tenure (no shard has had a later one)."""
        if not hasattr(self, "engine"):
            return
        for driver_id in self.drivers:
            own = [s for s in SHARDS if driver_id in self.engine.workers[s].matcher.own]
            serving = self._serving(driver_id)
            assert len(own) <= 1, f"driver {driver_id} in the own drivers of shards {own}"
            assert len(serving) <= 1, f"driver {driver_id} served by shards {serving}"
            assert own == serving, (driver_id, own, serving)
            if serving:
                tenures = {s: self._driver(driver_id, s).epoch for s in self._had(driver_id)}
                here = tenures.pop(serving[0])
                assert all(t < here for t in tenures.values()), (driver_id, serving, tenures)

    def check_settled(self) -> None:
        """Everything delivered and the clock past every wait: exactly one shard serves
        each driver (and pings reach it), no ride waits for an answer, every lock is its
        live ride's, every held driver backs its ride."""
        for driver_id in self.drivers:
            serving = self._serving(driver_id)
            assert len(serving) == 1, f"driver {driver_id} served by shards {serving}"
            pinged = self.engine.transport.served_at.get(driver_id, shard_of(driver_id))
            assert pinged in serving, f"driver {driver_id}'s pings go to {pinged}, not {serving}"
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
                driver = self._served(ride.driver_id)
                assert driver.ride_id == ride_id and driver.status == DriverStatus.EN_ROUTE
        for driver_id in self.drivers:
            driver = self._served(driver_id)
            if driver.ride_id is not None:
                ride = self.get(driver.ride_id, driver.ride_id.int >> 112)
                assert driver_id in (ride.offered_to, ride.driver_id), (driver_id, ride.status)

    def _driver(self, driver_id: UUID, s: int) -> Driver | None:
        try:
            driver: Driver = self.get(driver_id, s)
        except AggregateNotFoundError:
            return None
        return driver

    def _had(self, driver_id: UUID) -> list[int]:
        """The shards that have (or had) the driver: its home, and those it was handed to."""
        return [s for s in SHARDS if self._driver(driver_id, s) is not None]

    def _serving(self, driver_id: UUID) -> list[int]:
        """The shards whose ``Driver`` is not handed off (one, or none while on its way)."""
        drivers = {s: self._driver(driver_id, s) for s in SHARDS}
        return [
            s for s, d in drivers.items() if d is not None and d.status != DriverStatus.HANDED_OFF
        ]

    def _served(self, driver_id: UUID) -> Driver:
        (serving,) = self._serving(driver_id)
        driver: Driver = self.get(driver_id, serving)
        return driver

    def _status(self, driver_id: UUID) -> DriverStatus | None:
        """As the shard serving it says (None while it is on its way to another)."""
        serving = self._serving(driver_id)
        return self._served(driver_id).status if serving else None

    def _tenure(self, driver_id: UUID) -> int:
        return max(d.epoch for s in SHARDS if (d := self._driver(driver_id, s)) is not None)

    def _active(self, rider_id: UUID) -> UUID | None:
        rider: Rider = self.get(rider_id, rider_id.int >> 112)
        return rider.active_ride

    def _known(self, ride_id: UUID) -> bool:
        app = self.engine.workers[ride_id.int >> 112].app
        return bool(app.recorder.select_events(ride_id, limit=1))


def _bucket(n: int) -> str:
    return f"{min(n, 3)}{'+' if n >= 3 else ''}"


CrossShardEngine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a shrink takes minutes here
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_cross_shard_rides_hold_under_any_interleaving = CrossShardEngine.TestCase
