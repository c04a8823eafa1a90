"""The client side of the Kafka transport: commands and pings to their shard's partition
(a ping also to the shards near it, with ``nearby``), outcomes back to whoever waits.

Outcomes are read by a ``Follower`` on a thread (no group: every partition of the outcomes
topic, from the end as it was when the transport started) into an ``OutcomeMailbox``, so a
waiter never misses an outcome that arrives before it starts waiting.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from uuid import UUID

from kafka.errors import KafkaError, KafkaTimeoutError

from dispatch import logs
from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.config import new_producer
from dispatch.adapters.kafka.eventstore.connection import Connection
from dispatch.adapters.kafka.follower import Follower
from dispatch.adapters.kafka.topics import Topics
from dispatch.domain.ids import shard_of
from dispatch.messages import Ping, destination
from dispatch.outcome_mailbox import OutcomeMailbox
from dispatch.ports import NotDelivered
from schemas.commands import CommandEnvelope, Outcome

# A command is given this long at least to be acknowledged by the log before its sender is
# told it was not delivered (a new leader is elected within a few seconds of a broker's
# death; an API answer waits its command timeout for the outcome besides).
MIN_DELIVERY_S = 10.0

log = logging.getLogger(__name__)

PINGS_PER_RECORD = 1_000


class KafkaTransport:
    def __init__(self, bootstrap: Connection, prefix: str, keep_outcomes: int = 200_000) -> None:
        self.topics = Topics(prefix)
        self._producer = new_producer(bootstrap, linger_ms=5)
        self._mailbox = OutcomeMailbox(keep_outcomes)
        self._follower = Follower(
            bootstrap, self.topics.outcomes, name="outcomes", auto_offset_reset="latest"
        )
        self._follower.seek_to_end()  # resolved now, before any command is sent
        self._follower.start(self._take_outcomes, poll_ms=100)
        # With several shards: where a ping is also delivered besides its driver's owner
        # (read-only there), so a ride near a border can be offered a driver across it.
        self.nearby: Callable[[float, float], Iterable[int]] | None = None
        # The shard serving a driver handed off away from its home (None: its home), so
        # its owner takes its pings wherever it drives.
        self.serving: Callable[[UUID], int | None] | None = None
        # Seals a command's personal fields under a one-time key it makes first
        # (``dispatch.sealed_commands``); None: commands go as they are.
        self.seal: wire.SealCommand | None = None
        self.closing: list[Callable[[], None]] = []  # what ``close`` closes besides

    def send_command(self, envelope: CommandEnvelope) -> None:
        """Send a command (sealed, with ``seal``: its key is in the log first). A key that
        could not be written is ``NotDelivered``: the command was not sent."""
        try:
            key, value = wire.encode_command(envelope, self.seal)
        except KafkaError as e:
            raise NotDelivered(f"the key to seal command {envelope.command_id} with: {e}") from e
        self._mailbox.expect(envelope)
        self._producer.send(
            self.topics.commands,
            key=key,
            value=value,
            partition=destination(envelope),
            headers=wire.trace_headers(logs.traceparent()),
        )

    def send_pings(self, pings: Sequence[Ping]) -> None:
        by_shard: dict[int, list[Ping]] = defaultdict(list)
        nearby, serving = self.nearby, self.serving
        for ping in pings:
            home = shard_of(ping.driver_id)
            by_shard[home].append(ping)
            to = set(nearby(ping.lat, ping.lng)) if nearby is not None else set()
            served = serving(ping.driver_id) if serving is not None else None
            if served is not None:
                to.add(served)
            to.discard(home)
            for shard in to:
                by_shard[shard].append(ping)
        for shard, batch in by_shard.items():
            for i in range(0, len(batch), PINGS_PER_RECORD):
                self._producer.send(
                    self.topics.locations,
                    key=str(shard).encode(),
                    value=wire.encode_pings(batch[i : i + PINGS_PER_RECORD]),
                    partition=shard,
                )

    def flush(self, timeout_s: float = 30.0) -> None:
        self._producer.flush(timeout=timeout_s)

    def wait_outcome(
        self, command_id: str, timeout_s: float, fingerprint: str | None = None
    ) -> Outcome | None:
        """The outcome within ``timeout_s`` (sending what is still buffered first), or None
        once the command is in the log (acknowledged by its in-sync replicas, ``acks=all``).
        A command the log has not acknowledged within ``timeout_s`` (at least
        ``MIN_DELIVERY_S``) is ``NotDelivered``: it may be there or not, so no one may be
        told "pending" for it."""
        deadline = time.monotonic() + timeout_s
        try:
            self._producer.flush(timeout=max(timeout_s, MIN_DELIVERY_S))
        except KafkaTimeoutError as e:
            found = self._mailbox.get(command_id, fingerprint)
            if found is not None:
                return found
            raise NotDelivered(
                f"the log did not acknowledge command {command_id} within "
                f"{max(timeout_s, MIN_DELIVERY_S):g} s"
            ) from e
        return self._mailbox.wait(command_id, max(0.0, deadline - time.monotonic()), fingerprint)

    def outcome(self, command_id: str, fingerprint: str | None = None) -> Outcome | None:
        return self._mailbox.get(command_id, fingerprint)

    def close(self) -> None:
        self._follower.stop()
        self._producer.close(timeout=5)
        for close in self.closing:
            close()

    def _take_outcomes(self, _partition: int, records: list[Any]) -> None:
        outcomes = []
        traced = log.isEnabledFor(logging.DEBUG)
        for record in records:
            try:
                outcome = wire.decode_outcome(record.value)
            except ValueError:
                log.warning("undecodable outcome at %s", record.offset)
                continue
            outcomes.append(outcome)
            if traced:
                _log_outcome(outcome, wire.traceparent_of(record.headers))
        self._mailbox.deliver(outcomes)


def _log_outcome(outcome: Outcome, parent: str | None) -> None:
    """A line (DEBUG) for an outcome read, in the trace its record's headers carry."""
    fields = logs.trace_fields(parent) if parent is not None else {}
    command_id = logs.loggable_command_id(outcome.command_id)
    with logs.bound(command_id=command_id, shard=outcome.shard, **fields):
        log.debug("outcome read: %s", outcome.code)
