"""Stop the embedded engine mid-flight and start a new one on the same data directory.

The first engine is driven only through its transport: a short simulation, then a few
hand-written rides left in every interesting state (an open offer with an excluded
driver, a ride nobody can reach, an accepted ride whose driver goes offline after it).
The new engine restores from the SQLite files: every aggregate (version and state) and
the matcher's derived state (pending rides, open offers, assignments, available drivers)
must equal what the first engine held in memory, and it must keep dispatching.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any
from uuid import UUID

from dispatch.adapters.embedded.engine import EmbeddedEngine
from dispatch.bootstrap import build_embedded_engine, build_markets
from dispatch.domain.driver import DriverStatus
from dispatch.domain.ids import new_id, shard_of
from dispatch.domain.ride import RideStatus
from dispatch.messages import Ping
from dispatch.settings import Settings
from dispatch.simulator.clock import SimClock
from dispatch.simulator.runner import SimConfig, Simulation
from schemas import commands as c

# Far from the simulated city (about 30 km around San Francisco) and from each other, so
# the simulation's drivers and rides never compete with the hand-written ones.
SAN_JOSE = (37.3382, -121.8863)
SAN_JOSE_NEAR = (37.3395, -121.8863)  # about 150 m north
MONTEREY = (36.6002, -121.8947)  # no driver anywhere near
SANTA_CRUZ = (36.9741, -122.0308)


class Driving:
    """Sends commands and pings through the engine's transport, one tick per step."""

    def __init__(self, engine: EmbeddedEngine, clock: SimClock) -> None:
        self.engine, self.clock = engine, clock
        self.seq = 0

    def send(self, command: Any) -> str:
        self.seq += 1
        envelope = c.CommandEnvelope(
            command_id=f"hand-{id(self.engine)}-{self.seq}",
            issued_at=self.clock.now,
            command=command,
        )
        self.engine.transport.send_command(envelope)
        return envelope.command_id

    def ping(self, *where: tuple[UUID, tuple[float, float]]) -> None:
        pings = [Ping(d, lat, lng, self.clock.now) for d, (lat, lng) in where]
        self.engine.transport.send_pings(pings)

    def step(self, *command_ids: str) -> None:
        """One tick on every shard; every named command must have been accepted."""
        self.clock.now += 1.0
        self.engine.run_once()
        for command_id in command_ids:
            outcome = self.engine.transport.wait_outcome(command_id, 0)
            assert outcome is not None and outcome.accepted, outcome

    def get(self, aggregate_id: UUID) -> Any:
        worker = self.engine.workers[shard_of(aggregate_id)]
        return worker.app.repository.get(aggregate_id)

    def matcher(self, aggregate_id: UUID) -> Any:
        return self.engine.workers[shard_of(aggregate_id)].matcher


def request(ride_id: UUID, rider_id: UUID, at: tuple[float, float]) -> c.RequestRide:
    pickup = {"lat": at[0], "lng": at[1]}
    return c.RequestRide(ride_id=ride_id, rider_id=rider_id, pickup=pickup, dropoff=pickup)


def capture(engine: EmbeddedEngine) -> dict[int, dict[str, Any]]:
    """Per shard: log position, every aggregate's version and state, the matcher's state."""
    out: dict[int, dict[str, Any]] = {}
    for shard, worker in engine.workers.items():
        app = worker.app
        aggregates: dict[UUID, dict[str, Any]] = {}
        for notification in app.recorder.select_notifications(1, 10**9):
            if notification.originator_id not in aggregates:
                agg = app.repository.get(notification.originator_id)
                aggregates[agg.id] = {
                    k: copy.deepcopy(v) for k, v in vars(agg).items() if k != "_pending_events"
                }
        m = worker.matcher
        # Other shards' drivers are their owners' to say (sent to a restarted engine again):
        # only the shard's own are its state.
        own = {d for d in m.drivers if shard_of(d) == shard}
        out[shard] = {
            "position": app.position(),
            "aggregates": aggregates,
            "pending": copy.deepcopy(m.pending),
            "offers": copy.deepcopy(m.offers),
            "assigned": copy.deepcopy(m.assigned),
            "available": set(m.available) & own,
            "drivers": {d: state for d, state in m.drivers.items() if d in own},
        }
    return out


def test_a_restarted_engine_restores_every_aggregate_and_the_matcher_and_keeps_dispatching(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, shards=2)
    clock = SimClock()

    # -- first engine: a short simulation on shard 0 --------------------------------------
    engine = build_embedded_engine(settings, clock)

    def sim_step(_sent: list[str]) -> list[c.Outcome]:
        return [o for report in engine.run_once() for o in report.outcomes]

    sim = Simulation(
        SimConfig(drivers=80, minutes=6, seed=5, demand_per_min=6, warmup_minutes=0),
        engine.transport,
        sim_step,
        clock,
        build_markets(settings),
    )
    for worker in engine.workers.values():
        worker.listeners.append(sim.on_commit)
    report = sim.run()
    assert report.events > 1_000 and report.served > 10

    # -- then hand-written rides, left in the states a restart must carry over ------------
    go = Driving(engine, clock)
    a, b, dc = new_id(0), new_id(0), new_id(1)
    r1, r2, r3, r4 = new_id(0), new_id(0), new_id(1), new_id(0)
    ride1, ride2, ride3, ride4 = new_id(0), new_id(0), new_id(1), new_id(0)
    where = {a: SAN_JOSE, b: SAN_JOSE_NEAR, dc: SANTA_CRUZ}
    ids = [go.send(c.RegisterDriver(driver_id=d, name="hand")) for d in (a, b, dc)]
    ids += [go.send(c.RegisterRider(rider_id=r, name="hand")) for r in (r1, r2, r3, r4)]
    go.step(*ids)
    go.step(*[go.send(c.GoOnline(driver_id=d)) for d in (a, b, dc)])
    go.ping(*where.items())
    go.step(
        go.send(request(ride1, r1, SAN_JOSE)),
        go.send(request(ride2, r2, MONTEREY)),
        go.send(request(ride3, r3, SANTA_CRUZ)),
    )
    # the nearest driver gets each offer at once
    assert go.get(ride1).offered_to == a
    assert go.get(ride3).offered_to == dc
    assert go.get(ride2).status == RideStatus.REQUESTED
    go.step(
        go.send(c.DeclineOffer(ride_id=ride1, driver_id=a)),
        go.send(c.AcceptOffer(ride_id=ride3, driver_id=dc)),
    )
    go.step(go.send(c.GoOffline(driver_id=dc, after_trip=True)))
    assert go.get(ride1).offered_to == b  # a declined, so b was offered next
    assert go.get(dc).offline_after_trip

    sim.checker.finish()
    assert sim.checker.violations == []
    before = capture(engine)
    m0, m1 = before[0], before[1]
    assert m0["offers"][ride1][0] == b and m0["offers"][ride1][2].excluded == {a}
    assert ride2 in m0["pending"] and ride3 in m1["assigned"]
    assert m1["drivers"][dc] == (DriverStatus.EN_ROUTE, True) and a in m0["available"]
    assert len(m0["available"]) > 1 and len(m0["aggregates"]) > 200

    # -- stop, and start a new engine on the same files -------------------------------------
    engine.stop()
    for worker in engine.workers.values():
        worker.app.close()
    restarted = build_embedded_engine(settings, clock)

    after = capture(restarted)
    for shard in before:
        assert after[shard]["position"] == before[shard]["position"]
        assert after[shard]["aggregates"] == before[shard]["aggregates"]
        for part in ("pending", "offers", "assigned", "available", "drivers"):
            assert after[shard][part] == before[shard][part], (shard, part)

    # -- and it keeps working ------------------------------------------------------------------
    go = Driving(restarted, clock)
    go.ping(*where.items())
    go.step(go.send(c.AcceptOffer(ride_id=ride1, driver_id=b)))
    assert go.get(ride1).status == RideStatus.ACCEPTED
    assert go.get(b).status == DriverStatus.EN_ROUTE

    go.ping((a, SAN_JOSE))
    go.step(go.send(request(ride4, r4, SAN_JOSE)))
    ride = go.get(ride4)
    assert (ride.status, ride.offered_to) == (RideStatus.OFFERED, a)
    assert go.get(a).status == DriverStatus.OFFERED
    assert ride4 in go.matcher(ride4).offers

    for command in (c.MarkArrived, c.StartTrip, c.CompleteTrip):
        go.step(go.send(command(ride_id=ride3, driver_id=dc)))
    # the request to go offline after the trip survived the restart
    assert go.get(dc).status == DriverStatus.OFFLINE
    assert dc not in go.matcher(dc).available
    assert go.get(r3).active_ride is None

    # a repeated command id from before the restart is answered, not re-applied
    position = restarted.workers[0].app.position()
    repeat = c.CommandEnvelope(
        command_id=ids[0], issued_at=clock.now, command=c.RegisterDriver(driver_id=a, name="hand")
    )
    restarted.transport.send_command(repeat)
    clock.now += 1.0
    restarted.run_batch(restarted.workers[0])
    outcome = restarted.transport.wait_outcome(ids[0], 0)
    assert outcome is not None and outcome.accepted and outcome.duplicate
    assert restarted.workers[0].app.position() == position
