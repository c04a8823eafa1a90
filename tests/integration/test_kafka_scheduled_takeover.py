"""Scheduled rides on the real broker: bookings made on one worker survive a takeover from
a checkpoint (the matcher's "scheduled" part; the taker's store holds only the tail after
it), and the taker dispatches them when due and tells the rider when no driver came, on
its own clock, with no timer kept anywhere but the log."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_kafka_checkpoints import drive, hosting

from dispatch.adapters.kafka.topics import create_topics, delete_topics
from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.adapters.kafka.worker import KafkaWorker
from dispatch.bootstrap import build_kafka_worker
from dispatch.domain.ids import new_id
from dispatch.domain.ride import RideStatus
from dispatch.settings import Settings
from schemas import commands as c
from schemas.common import LatLng

pytestmark = pytest.mark.kafka
LEAD_S = 20.0
PICKUP = LatLng(lat=37.77, lng=-122.42)


@pytest.fixture
def deployment(kafka_bootstrap: str) -> Iterator[Settings]:
    prefix = f"test-sched-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, prefix, 1)
    # short times on the wall clock: booked 30 s ahead, watched from 12 s before (no
    # driver anywhere: the longest pickup, 10 s, and the margin, 2 s)
    yield Settings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, shards=1,
        checkpoint_every_events=20, checkpoint_chunk_rows=50, surge_cadence_s=0,
        scheduled_min_lead_s=LEAD_S, max_pickup_eta_s=10, scheduled_margin_s=2,
        scheduled_search_after_s=600,
    )  # fmt: skip
    delete_topics(kafka_bootstrap, prefix)


def ride_of(worker: KafkaWorker, ride_id: uuid.UUID) -> Any:
    return worker.shards[0].worker.app.repository.get(ride_id)


def topics_of(worker: KafkaWorker, ride_id: uuid.UUID) -> list[str]:
    store = worker.shards[0].worker.app.repository.event_store
    return [type(e).TOPIC for e in store.get(ride_id)]


def test_bookings_survive_a_takeover_and_are_dispatched_when_due(deployment: Settings) -> None:
    assert deployment.kafka_bootstrap is not None
    bus = KafkaTransport(deployment.kafka_bootstrap, deployment.topic_prefix)
    rider, ride, later = new_id(0), new_id(0), new_id(0)
    when = datetime.now(UTC) + timedelta(seconds=LEAD_S + 10)
    first = build_kafka_worker(deployment, member="first")
    try:
        hosting(first)
        drive(first, bus, c.RegisterRider(rider_id=rider, name="r"))
        drive(
            first, bus,
            c.RequestRide(ride_id=ride, rider_id=rider, pickup=PICKUP, dropoff=PICKUP,
                          scheduled_for=when),
            c.RequestRide(ride_id=later, rider_id=rider, pickup=PICKUP, dropoff=PICKUP,
                          scheduled_for=when + timedelta(hours=2)),
        )  # fmt: skip
        assert ride_of(first, ride).status == RideStatus.SCHEDULED
        filler = [new_id(0) for _ in range(25)]  # events enough for a complete checkpoint
        drive(first, bus, *(c.RegisterDriver(driver_id=d, name="f") for d in filler))
        host = first.shards[0]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            first.run_once()
            if host.checkpoints is not None and host.checkpoints.complete:
                break
        assert host.checkpoints is not None and host.checkpoints.complete
        assert ride_of(first, ride).status == RideStatus.SCHEDULED  # not due yet
    finally:
        first.close()

    second = build_kafka_worker(deployment, member="second")
    try:
        hosting(second)
        restored = second.shards[0].worker
        assert restored.restored_from is not None and restored.floor > 0  # the tail only
        assert set(restored.matcher.scheduled.booked) == {ride, later}  # from the checkpoint
        deadline = time.monotonic() + 90  # guards against a hang only
        while "dispatch.Ride.Overdue" not in topics_of(second, ride):
            assert time.monotonic() < deadline, topics_of(second, ride)
            second.run_once()
        dispatched = second.shards[0].worker.app.repository.get(rider)
        assert dispatched.active_ride == ride and dispatched.scheduled == [str(later)]
        assert ride_of(second, ride).status == RideStatus.REQUESTED  # still searched for
        assert ride_of(second, later).status == RideStatus.SCHEDULED
        overdue = [e for e in second.shards[0].worker.app.repository.event_store.get(ride)
                   if type(e).TOPIC == "dispatch.Ride.Overdue"]  # fmt: skip
        assert overdue[0].timestamp >= when  # told at its time, not before
    finally:
        second.close()
