"""The idempotency window on the real broker, across checkpoints and takeovers.

Workers on a stream clock (time as the commands' ``issued_at`` tell it) host one shard in
turn: commands keyed with a UUIDv7 and with a plain key are handled, a worker that takes
the shard over (restoring from the checkpoints topic) answers retries inside the window
with the first outcome, and one taking it over after the window refuses the UUIDv7 key
and handles the plain one as a new command. The log verifies clean.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from idempotency_keys import uuid7
from kafka_shard_host import ShardZero

from dispatch.adapters.kafka.logsource import KafkaLogSource
from dispatch.adapters.kafka.topics import create_topics, delete_topics
from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.domain.driver import DriverStatus
from dispatch.domain.ids import new_id
from dispatch.replay.operations import verify
from dispatch.settings import Settings
from schemas import commands as c

pytestmark = pytest.mark.kafka
WINDOW = 3_600.0


@pytest.fixture
def deployment(kafka_bootstrap: str) -> Iterator[Settings]:
    prefix = f"test-idem-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, prefix, 1)
    yield Settings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, shards=1,
        idempotency_window_s=WINDOW, checkpoint_every_events=6, checkpoint_chunk_rows=2,
    )  # fmt: skip
    delete_topics(kafka_bootstrap, prefix)


class Host(ShardZero):
    """A worker on the stream clock that has been given the shard."""

    def __init__(self, deployment: Settings, member: str, bus: KafkaTransport) -> None:
        super().__init__(deployment, member, bus, clock="stream")

    def driver(self, driver_id: Any) -> Any:
        return self.worker.shards[0].app.repository.get(driver_id)


def test_retries_inside_and_after_the_window_across_checkpoints_and_takeovers(
    deployment: Settings,
) -> None:
    assert deployment.kafka_bootstrap is not None
    bus = KafkaTransport(deployment.kafka_bootstrap, deployment.topic_prefix)
    t0 = time.time()
    aged, plain = new_id(0), new_id(0)
    aged_key = f"{aged}:{uuid7(datetime.fromtimestamp(t0, UTC))}"
    plain_key = f"{plain}:go-online"
    first = Host(deployment, "first", bus)
    try:
        for driver_id in (aged, plain):
            assert first.send(c.RegisterDriver(driver_id=driver_id, name="d"), t0).accepted
        assert first.send(c.GoOnline(driver_id=aged), t0, aged_key).accepted
        assert first.send(c.GoOnline(driver_id=plain), t0, plain_key).accepted
        for _ in range(12):  # enough events for a checkpoint
            assert first.send(c.RegisterRider(rider_id=new_id(0), name="r"), t0).accepted
        first.complete_checkpoint()
    finally:
        first.worker.close()

    inside = Host(deployment, "inside", bus)
    try:
        assert inside.worker.shards[0].worker.restored_from is not None
        for driver_id, key in ((aged, aged_key), (plain, plain_key)):
            again = inside.send(c.GoOnline(driver_id=driver_id), t0 + 60, key)
            assert again.accepted and again.duplicate
            assert inside.send(c.GoOffline(driver_id=driver_id), t0 + 60).accepted
    finally:
        inside.worker.close()

    later = t0 + WINDOW + 120
    after = Host(deployment, "after", bus)
    try:
        expired = after.send(c.GoOnline(driver_id=aged), later, aged_key)
        handled = after.send(c.GoOnline(driver_id=plain), later, plain_key)
        retried = after.send(c.GoOnline(driver_id=plain), later + 1, plain_key)

        assert (expired.accepted, expired.code) == (False, "idempotency_key_expired")
        assert after.driver(aged).status == DriverStatus.OFFLINE
        assert handled.accepted and not handled.duplicate
        assert after.driver(plain).status == DriverStatus.AVAILABLE
        assert retried.accepted and retried.duplicate
    finally:
        after.worker.close()
        bus.close()
    events, violations = verify(KafkaLogSource(deployment.kafka_bootstrap, deployment.topic_prefix))
    assert violations == [] and events > 0
