"""The shard worker: poll, apply commands, feed pings, tick the matcher, commit once.

Written against the transport port only; the embedded and the Kafka transports plug in
without touching it. Side effects (saving, publishing outcomes) happen after all decisions
of the batch, in one place.
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
from dispatch.ports import Outbox, Transport
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


class ShardWorker:
    def __init__(
        self,
        shard: int,
        app: ShardApplication,
        matcher_factory: Callable[[], Matcher],
        transport: Transport | None,
        clock: Clock,
        max_batch: int = 5_000,
        outbox: Outbox | None = None,
        drop_failed_batches: bool = True,
    ) -> None:
        """``transport`` polls (embedded); ``outbox`` defaults to it. With
        ``drop_failed_batches`` a failed commit answers the batch's commands as unavailable
        and carries on (embedded); otherwise the error propagates so the caller can abort
        its transaction and rewind (Kafka)."""
        self.shard, self.app, self.transport, self.clock = shard, app, transport, clock
        self.outbox: Outbox = outbox if outbox is not None else _require(transport)
        self.drop_failed_batches = drop_failed_batches
        self._matcher_factory = matcher_factory
        self.matcher = matcher_factory()
        self.max_batch = max_batch
        self.listeners: list[CommitListener] = []
        self.last_event_time = 0.0

    def restore(self) -> int:
        """Rebuild the matcher's state by folding the shard's whole log; returns events read."""
        self.matcher = self._matcher_factory()
        wanted = self.matcher.topics
        count, start = 0, 1
        while True:
            page = self.app.recorder.select_notifications(start, 1_000)
            for notification in page:
                if notification.topic not in wanted:
                    continue  # command records, rider events: nothing the matcher folds
                event: Any = self.app.mapper.to_domain_event(notification)
                self.matcher.observe(event)
                self.last_event_time = max(self.last_event_time, event.timestamp.timestamp())
            count += len(page)
            if len(page) < 1_000:
                return count
            start = page[-1].id + 1

    def run_once(self, timeout_s: float = 0.0) -> BatchReport:
        inbound = _require(self.transport).poll(self.shard, self.max_batch, timeout_s)
        return self.process(inbound)

    def process(self, inbound: Inbound) -> BatchReport:
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
        try:
            outcomes, recordings = self.app.commit()
        except Exception:
            if not self.drop_failed_batches:
                raise  # the caller aborts its transaction and resets the shard once
            log.exception("shard %s: commit failed; batch dropped, shard restored", self.shard)
            self.restore()
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
            recordings = []
        if inbound.poison:
            self.outbox.dead_letter(inbound.poison)
        if outcomes:
            self.outbox.publish_outcomes(outcomes)
        if recordings:
            for listener in self.listeners:
                listener(self.shard, recordings)
        return BatchReport(len(inbound.commands), len(inbound.pings), len(recordings), outcomes)

    def _observe(self, events: list[Any]) -> None:
        for event in events:
            self.matcher.observe(event)


def _require(transport: Transport | None) -> Transport:
    if transport is None:
        raise ValueError("this worker has no transport to poll")
    return transport


def _ping_ahead(ping: Ping, now: float) -> Poison:
    reason = f"ping time {ping.at:.3f} is more than {MAX_PING_AHEAD_S:g} s ahead of {now:.3f}"
    raw = orjson.dumps([str(ping.driver_id), ping.lat, ping.lng, ping.at])
    return Poison("locations", f"driver {ping.driver_id}", reason, raw)
