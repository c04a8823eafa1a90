"""Surge on the real broker: a shard's multipliers, recorded as ``Surge.Recomputed`` in its
batch transactions, survive a takeover from a checkpoint (the ``Surge`` aggregate's
snapshot travels in the checkpoint; the taker's store holds only the tail after it), and
the taker goes on from them at its next cadence."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import h3
import pytest
from test_kafka_checkpoints import drive, hosting

from dispatch.adapters.kafka.topics import create_topics, delete_topics
from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.adapters.kafka.worker import KafkaWorker
from dispatch.bootstrap import build_kafka_worker
from dispatch.domain.ids import new_id
from dispatch.domain.surge import SURGE_RESOLUTION
from dispatch.settings import Settings
from schemas import commands as c
from schemas.common import LatLng

pytestmark = pytest.mark.kafka
FAR = (38.27, -122.42)  # 55 km from every driver: nobody near
CELL = h3.latlng_to_cell(*FAR, SURGE_RESOLUTION)


@pytest.fixture
def deployment(kafka_bootstrap: str) -> Iterator[Settings]:
    prefix = f"test-surge-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, prefix, 1)
    yield Settings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, shards=1,
        checkpoint_every_events=20, checkpoint_chunk_rows=50, surge_cadence_s=1,
    )  # fmt: skip
    delete_topics(kafka_bootstrap, prefix)


def levels(worker: KafkaWorker) -> dict[str, str]:
    surge = worker.shards[0].worker.matcher.surge
    assert surge is not None
    return surge.levels()  # type: ignore[attr-defined]


def run_for(worker: KafkaWorker, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        worker.run_once()


def test_the_multipliers_survive_a_takeover_from_a_checkpoint(deployment: Settings) -> None:
    assert deployment.kafka_bootstrap is not None
    bus = KafkaTransport(deployment.kafka_bootstrap, deployment.topic_prefix)
    first = build_kafka_worker(deployment, member="first")
    try:
        hosting(first)
        riders = [new_id(0) for _ in range(5)]
        drive(first, bus, *(c.RegisterRider(rider_id=r, name="r") for r in riders))
        far = LatLng(lat=FAR[0], lng=FAR[1])
        drive(first, bus, *(c.RequestRide(ride_id=new_id(0), rider_id=r, pickup=far,
                                          dropoff=far) for r in riders))  # fmt: skip
        # the cadences come on the worker's wall clock: wait for a surge, however slow the
        # broker (the deadline only guards against a hang)
        deadline = time.monotonic() + 60
        while CELL not in levels(first) and time.monotonic() < deadline:
            first.run_once()
        assert Decimal(levels(first)[CELL]) >= Decimal("2.10")
        filler = [new_id(0) for _ in range(25)]  # events enough for a complete checkpoint
        drive(first, bus, *(c.RegisterDriver(driver_id=d, name="f") for d in filler))
        host = first.shards[0]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            first.run_once()
            if host.checkpoints is not None and host.checkpoints.complete:
                break
        assert host.checkpoints is not None and host.checkpoints.complete
        before = levels(first)
    finally:
        first.close()

    second = build_kafka_worker(deployment, member="second")
    try:
        hosting(second)
        restored = second.shards[0].worker
        assert restored.restored_from is not None and restored.floor > 0  # the tail only
        assert levels(second) == before == restored.app.surge_levels()
        run_for(second, 2.5)  # the 5 requests still wait: toward 3.00, never back down
        # demand kept: no fall after a takeover (compared as numbers, not texts)
        assert Decimal(levels(second)[CELL]) >= Decimal(before[CELL])
    finally:
        second.close()
