"""The shard worker: apply a batch's commands, feed its pings, tick the matcher, save once.

It returns what the batch decided (outcomes, recordings, dead letters) and knows no
failure policy and no transport: the owner of a batch (``adapters.embedded.engine`` on
one machine, ``adapters.kafka.batch`` on Kafka) polls, publishes, commits or aborts, and
tells the worker when the batch is durable (``committed``) or lost (``recover``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Recording

from dispatch.matching.matcher import Matcher
from dispatch.messages import MAX_PING_AHEAD_S, Inbound, Ping, Poison
from dispatch.shard.application import ShardApplication
from schemas.commands import Outcome

log = logging.getLogger(__name__)

Clock = Callable[[], float]
CommitListener = Callable[[int, Sequence[Recording[UUID]]], None]


@dataclass(frozen=True, slots=True)
class BatchReport:
    commands: int
    pings: int
    events: int
    outcomes: list[Outcome]


@dataclass(frozen=True, slots=True)
class Batch:
    """What one batch decided: its outcomes, the recordings saved, the records to
    dead-letter (with the reason), and how much it took in."""

    commands: int
    pings: int
    outcomes: list[Outcome]
    recordings: list[Recording[UUID]]
    poison: list[Poison]

    @property
    def report(self) -> BatchReport:
        return BatchReport(self.commands, self.pings, len(self.recordings), self.outcomes)


class ShardWorker:
    def __init__(
        self,
        shard: int,
        app: ShardApplication,
        matcher_factory: Callable[[], Matcher],
        clock: Clock,
        max_batch: int = 5_000,
    ) -> None:
        self.shard, self.app, self.clock = shard, app, clock
        self._matcher_factory = matcher_factory
        self.matcher = matcher_factory()
        self.max_batch = max_batch
        self.listeners: list[CommitListener] = []
        self.last_event_time = 0.0

    def restore(self) -> int:
        """Rebuild the matcher's state by folding the shard's whole log; returns events read."""
        self.matcher = self._matcher_factory()
        wanted, by_type = self.matcher.topics, self.matcher.driver_topics
        count, start = 0, 1
        while True:
            page = self.app.recorder.select_notifications(start, 1_000)
            for notification in page:
                if notification.topic not in wanted:
                    continue  # command records, rider events: nothing the matcher folds
                if notification.topic in by_type:  # no need to decode these
                    driver = notification.originator_id
                    driver_id = driver if isinstance(driver, UUID) else UUID(str(driver))
                    self.matcher.observe_driver(driver_id, notification.topic)
                    continue
                event: Any = self.app.mapper.to_domain_event(notification)
                self.matcher.observe(event)
                self.last_event_time = max(self.last_event_time, event.timestamp.timestamp())
            count += len(page)
            if len(page) < 1_000:
                return count
            start = page[-1].id + 1

    def process(self, inbound: Inbound) -> Batch:
        """Decide the batch and save its events in one recording (which raises if the
        store cannot save them: the owner then calls ``recover``)."""
        now = self.clock()
        now_dt = datetime.fromtimestamp(now, UTC)
        matcher = self.matcher
        ahead = now + MAX_PING_AHEAD_S
        for ping in inbound.pings:
            if ping.at > ahead:  # would pin the driver in the matcher: dead-letter it instead
                inbound.poison.append(_ping_ahead(ping, now))
                continue
            matcher.ping(ping.driver_id, ping.lat, ping.lng, ping.at)
        for envelope in inbound.commands:
            self._observe(self.app.handle(envelope, now_dt))
        for decision in matcher.tick(now):
            self._observe(self.app.decide(decision, now_dt))
        outcomes, recordings = self.app.commit()
        commands, pings = len(inbound.commands), len(inbound.pings)
        return Batch(commands, pings, outcomes, recordings, list(inbound.poison))

    def committed(self, batch: Batch) -> None:
        """The batch is durable: tell the commit listeners (the views, the simulator)."""
        if batch.recordings:
            for listener in self.listeners:
                listener(self.shard, batch.recordings)

    def recover(self) -> None:
        """After a batch that was not saved: forget cached state, refold the matcher."""
        self.app.discard()
        self.restore()

    def unavailable(self, inbound: Inbound) -> Batch:
        """The answer to a batch that could not be saved: every command unavailable."""
        outcomes = [
            Outcome(
                command_id=e.command_id,
                shard=self.shard,
                accepted=False,
                code="unavailable",
                reason="the shard could not save the batch; retry",
                fingerprint=e.fingerprint,
            )
            for e in inbound.commands
        ]
        return Batch(len(inbound.commands), len(inbound.pings), outcomes, [], list(inbound.poison))

    def _observe(self, events: list[Any]) -> None:
        for event in events:
            self.matcher.observe(event)


def _ping_ahead(ping: Ping, now: float) -> Poison:
    reason = f"ping time {ping.at:.3f} is more than {MAX_PING_AHEAD_S:g} s ahead of {now:.3f}"
    raw = orjson.dumps([str(ping.driver_id), ping.lat, ping.lng, ping.at])
    return Poison("locations", f"driver {ping.driver_id}", reason, raw)
