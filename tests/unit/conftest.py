"""Given / when / then over one in-memory shard application (shard 1).

``given(...)`` applies commands and matcher decisions and commits them, insisting that
every one of them took effect (a given that silently failed would make the test lie).
``when(...)`` applies one command or decision, commits, and returns what was recorded.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate

from dispatch.domain.command_record import CommandRecord
from dispatch.domain.driver import Driver
from dispatch.domain.ids import new_id
from dispatch.matching.decisions import Decision, MakeOffer
from dispatch.shard.application import ShardApplication
from dispatch.shard.policy import Policy
from schemas import commands as c

SHARD = 1
OTHER_SHARD = 2
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
MAX_WAIT_S = 300.0
OFFER_TIMEOUT_S = 15.0
SF = {"lat": 37.77, "lng": -122.42}
SF_AIRPORT = {"lat": 37.62, "lng": -122.38}
COMMAND_RECORD_TOPIC = CommandRecord.Created.TOPIC
NOTED_TOPIC = Driver.CommandNoted.TOPIC
BOOKKEEPING_TOPICS = frozenset({COMMAND_RECORD_TOPIC, NOTED_TOPIC})


def topic(event: Any) -> str:
    return str(type(event).TOPIC)


def working(app: ShardApplication, aggregate_id: UUID) -> Aggregate | None:
    """The aggregate as the open batch sees it (including changes not yet committed)."""
    return app._uow.find(Aggregate, aggregate_id)


def state_of(aggregate: Aggregate) -> dict[str, Any]:
    """Version and every attribute, copied (lists too), without the pending events."""
    return {
        k: (list(v) if isinstance(v, list) else v)
        for k, v in vars(aggregate).items()
        if k != "_pending_events"
    }


@dataclass
class Then:
    """What one ``when`` recorded: the outcome (None for a decision) and the events."""

    outcome: c.Outcome | None
    events: list[Any]  # every recorded event, log order (command records included)
    returned: list[Any]  # what handle()/decide() returned

    @property
    def domain_events(self) -> list[Any]:
        """The events but the command's bookkeeping: its record, and the note of a driver
        command's id on its driver (so that the record travels with the driver)."""
        return [e for e in self.events if topic(e) not in BOOKKEEPING_TOPICS]

    @property
    def topics(self) -> list[str]:
        """Topics of the domain events recorded (bookkeeping left out), log order."""
        return [topic(e) for e in self.domain_events]

    @property
    def recorded_topics(self) -> list[str]:
        return [topic(e) for e in self.events]

    @property
    def accepted(self) -> bool:
        assert self.outcome is not None
        return self.outcome.accepted

    @property
    def code(self) -> str:
        assert self.outcome is not None
        return self.outcome.code

    def event(self, topic_name: str) -> Any:
        (found,) = [e for e in self.events if topic(e) == topic_name]
        return found

    def assert_rejected(self, code: str) -> None:
        """Rejected with ``code``: only the command's record was written (and, for a
        driver command, its note on the driver), no domain event."""
        assert self.outcome is not None
        assert not self.outcome.accepted, self.outcome
        assert self.outcome.code == code, self.outcome
        assert self.recorded_topics in ([COMMAND_RECORD_TOPIC], [NOTED_TOPIC, COMMAND_RECORD_TOPIC])


@dataclass
class Scenario:
    """One shard application plus a clock; reached by tests through the ``s`` fixture."""

    SHARD = SHARD
    OTHER_SHARD = OTHER_SHARD
    T0 = T0
    MAX_WAIT_S = MAX_WAIT_S
    OFFER_TIMEOUT_S = OFFER_TIMEOUT_S
    COMMAND_RECORD_TOPIC = COMMAND_RECORD_TOPIC

    app: ShardApplication
    now: datetime = T0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # Command ids are unique per scenario: a shared log (Kafka) keeps earlier tests' ids.
    _run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @staticmethod
    def new_id(shard: int = SHARD) -> UUID:
        return new_id(shard)

    @staticmethod
    def request_ride(ride_id: UUID, rider_id: UUID) -> c.RequestRide:
        return request_ride(ride_id, rider_id)

    def working(self, aggregate_id: UUID) -> Aggregate | None:
        return working(self.app, aggregate_id)

    @staticmethod
    def state_of(aggregate: Aggregate) -> dict[str, Any]:
        return state_of(aggregate)

    # -- building blocks -----------------------------------------------------------------
    def envelope(self, command: Any, command_id: str | None = None) -> c.CommandEnvelope:
        if isinstance(command, c.CommandEnvelope):
            return command
        return c.CommandEnvelope(
            command_id=command_id or f"cmd-{self._run}-{next(self._ids)}",
            issued_at=self.now,
            command=command,
        )

    def offer(
        self, ride_id: UUID, driver_id: UUID, timeout_s: float = OFFER_TIMEOUT_S
    ) -> MakeOffer:
        return MakeOffer(
            ride_id, driver_id, 120.0, 800.0, (self.now + timedelta(seconds=timeout_s)).timestamp()
        )

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def position(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def recorded_since(self, position: int) -> int:
        """How many events were recorded after ``position`` (positions are not contiguous
        on Kafka, where transaction markers take offsets)."""
        return len(self.app.recorder.select_notifications(position + 1, 10_000))

    def get(self, aggregate_id: UUID) -> Any:
        agg = working(self.app, aggregate_id)
        assert agg is not None, f"no aggregate {aggregate_id}"
        return agg

    def apply(self, item: Any) -> list[Any]:
        if isinstance(item, Decision):
            return self.app.decide(item, self.now)
        return self.app.handle(self.envelope(item), self.now)

    # -- given / when ----------------------------------------------------------------------
    def given(self, *items: Any) -> list[c.Outcome]:
        for item in items:
            returned = self.apply(item)
            if isinstance(item, Decision):
                assert returned, f"given decision {item} did not apply"
        outcomes, _ = self.app.commit()
        for outcome in outcomes:
            assert outcome.accepted and not outcome.duplicate, outcome
        return outcomes

    def when(self, item: Any) -> Then:
        returned = self.apply(item)
        outcomes, recordings = self.app.commit()
        outcome = None
        if not isinstance(item, Decision):
            (outcome,) = outcomes
        return Then(outcome, [r.domain_event for r in recordings], returned)

    # -- common set-ups --------------------------------------------------------------------
    def driver(self, online: bool = True) -> UUID:
        driver_id = new_id(SHARD)
        self.given(c.RegisterDriver(driver_id=driver_id, name="Dee"))
        if online:
            self.given(c.GoOnline(driver_id=driver_id))
        return driver_id

    def rider(self) -> UUID:
        rider_id = new_id(SHARD)
        self.given(c.RegisterRider(rider_id=rider_id, name="Ray"))
        return rider_id

    def request(self, rider_id: UUID) -> UUID:
        ride_id = new_id(SHARD)
        self.given(request_ride(ride_id, rider_id))
        return ride_id

    def offered(self, rider_id: UUID, driver_id: UUID) -> UUID:
        ride_id = self.request(rider_id)
        self.given(self.offer(ride_id, driver_id))
        return ride_id

    def accepted(self, rider_id: UUID, driver_id: UUID) -> UUID:
        ride_id = self.offered(rider_id, driver_id)
        self.given(c.AcceptOffer(ride_id=ride_id, driver_id=driver_id))
        return ride_id

    def arrived(self, rider_id: UUID, driver_id: UUID) -> UUID:
        ride_id = self.accepted(rider_id, driver_id)
        self.given(c.MarkArrived(ride_id=ride_id, driver_id=driver_id))
        return ride_id

    def in_progress(self, rider_id: UUID, driver_id: UUID) -> UUID:
        ride_id = self.arrived(rider_id, driver_id)
        self.given(c.StartTrip(ride_id=ride_id, driver_id=driver_id))
        return ride_id

    def completed(self, rider_id: UUID, driver_id: UUID) -> UUID:
        ride_id = self.in_progress(rider_id, driver_id)
        self.given(c.CompleteTrip(ride_id=ride_id, driver_id=driver_id))
        return ride_id


def request_ride(ride_id: UUID, rider_id: UUID) -> c.RequestRide:
    return c.RequestRide(ride_id=ride_id, rider_id=rider_id, pickup=SF, dropoff=SF_AIRPORT)


ADAPTERS = ["memory", "sqlite", pytest.param("kafka", marks=pytest.mark.kafka)]


@pytest.fixture(params=ADAPTERS)
def shard_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ShardApplication]:
    """The shard application on shard 1, once per persistence adapter: one contract suite
    run against eventsourcing's in-memory and SQLite modules and the Kafka module."""
    env: dict[str, str] = {}
    if request.param == "sqlite":
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(tmp_path / "shard.sqlite"),
        }
    elif request.param == "kafka":
        env = request.getfixturevalue("shared_kafka_topics").env(SHARD)
    app = ShardApplication(SHARD, env=env, policy=Policy(max_wait_s=MAX_WAIT_S))
    yield app
    app.close()


@pytest.fixture
def s(shard_app: ShardApplication) -> Scenario:
    """The given/when/then scenario over ``shard_app``."""
    return Scenario(shard_app)
