"""A Kafka worker that has been given shard 0, driven by hand from a test: commands sent
through the transport and their outcomes awaited, checkpoints carried to completion."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.adapters.kafka.worker import KafkaWorker
from dispatch.bootstrap import build_kafka_worker
from dispatch.settings import Settings
from schemas import commands as c

WAIT_S = 60.0


class ShardZero:
    """A worker (on ``clock``: "wall" or "stream") that the group has given shard 0."""

    def __init__(
        self, deployment: Settings, member: str, bus: KafkaTransport, clock: str = "wall"
    ) -> None:
        self.bus = bus
        self.worker: KafkaWorker = build_kafka_worker(deployment, clock, member=member)
        deadline = time.monotonic() + WAIT_S
        while 0 not in self.worker.shards and time.monotonic() < deadline:
            self.worker.run_once()
        assert 0 in self.worker.shards, "the group never assigned the shard"

    def send(
        self, command: c.Command, at: float | None = None, command_id: str | None = None
    ) -> c.Outcome:
        """``command``, issued at ``at`` (now if None), and its outcome."""
        issued = datetime.fromtimestamp(at, UTC) if at is not None else datetime.now(UTC)
        envelope = c.CommandEnvelope(
            command_id=command_id or str(uuid.uuid4()), issued_at=issued, command=command
        )
        self.bus.send_command(envelope)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            self.worker.run_once()
            outcome = self.bus.wait_outcome(envelope.command_id, 0)
            if outcome is not None:
                return outcome
        raise AssertionError(f"no outcome for {envelope.command_id}")

    def complete_checkpoint(self, within_s: float = 20.0) -> None:
        """Run until shard 0 has a complete checkpoint (idle ticks carry its last chunks)."""
        host = self.worker.shards[0]
        deadline = time.monotonic() + within_s
        while not (host.checkpoints and host.checkpoints.complete):
            assert time.monotonic() < deadline, "no checkpoint was completed"
            self.worker.run_once()
