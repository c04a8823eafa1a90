"""The shard worker: apply a batch's commands, feed its pings, tick the matcher, save once.

It returns what the batch decided (outcomes, recordings, dead letters) and knows no
failure policy and no transport: the owner of a batch (``adapters.embedded.engine`` on
one machine, ``adapters.kafka.batch`` on Kafka) polls, publishes, commits or aborts, and
tells the worker when the batch is durable (``committed``) or lost (``recover``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

import orjson
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Snapshot as LibrarySnapshot
from eventsourcing.persistence import Notification, Recording

from dispatch import logs
from dispatch.checkpoints import (
    CheckpointError,
    CheckpointStore,
    CheckpointWriter,
    Chunk,
    LiveRow,
    Restored,
    Snapshot,
    load_into,
    restore_matcher,
)
from dispatch.domain.driver import Driver, DriverStatus
from dispatch.domain.ids import shard_of
from dispatch.domain.products import DEFAULT_VEHICLE
from dispatch.domain.ride import Ride
from dispatch.matching.matcher import DRIVER_AVAILABILITY_EVENTS, Matcher
from dispatch.messages import MAX_PING_AHEAD_S, Ping, Poison
from dispatch.ports import Tracer
from dispatch.shard.application import ShardApplication
from dispatch.shard.crossshard.messages import Ack, Envelope
from dispatch.shard.inbound import ForeignDriver, Inbound
from dispatch.shard.links import Link, envelope_of
from dispatch.shard.live import TIMED_TOPICS, LiveAggregates
from dispatch.shard.unit_of_work import worth_caching
from schemas.commands import Outcome

log = logging.getLogger(__name__)

# How the library's JSON transcoder begins an event's state: its time, as ISO 8601 text.
_TIMESTAMP_JSON = b'{"timestamp":{"_type_":"datetime_iso","_data_":"'

Clock = Callable[[], float]
# An event type that leaves a driver in each status (what a shard tells the others).
_LEADS_TO = {
    DriverStatus.AVAILABLE: Driver.WentOnline.TOPIC,
    DriverStatus.OFFLINE: Driver.WentOffline.TOPIC,
    DriverStatus.OFFERED: Driver.OfferReceived.TOPIC,
    DriverStatus.EN_ROUTE: Driver.Assigned.TOPIC,
    DriverStatus.ON_TRIP: Driver.TripStarted.TOPIC,
    DriverStatus.HANDED_OFF: Driver.HandedOff.TOPIC,
}


def _leading_to(state: tuple[DriverStatus, bool]) -> tuple[str, ...]:
    status, after_trip = state
    topic = _LEADS_TO.get(status)
    if topic is None:
        return ()
    # A driver to go offline when its trip ends is told as such after its status.
    return (topic, Driver.OfflineAfterTripRequested.TOPIC) if after_trip else (topic,)


def availability_changes(recordings: Sequence[Recording[UUID]]) -> list[tuple[UUID, str]]:
    """The drivers whose availability these events changed, with the event type, in order."""
    out: list[tuple[UUID, str]] = []
    for recording in recordings:
        event: Any = recording.domain_event
        if event.TOPIC in DRIVER_AVAILABILITY_EVENTS:
            out.append((event.originator_id, event.TOPIC))
    return out


_FOLD_PAGE = 1_000  # events read at a time by a fold


@runtime_checkable
class RowLog(Protocol):
    """A recorder that lists its events lean (``adapters.kafka``'s): ``select_rows`` gives
    ``(notification id, originator id, topic, row)`` for each committed event from id
    ``start`` on (to ``stop``), ``row_state`` the stored state of a row listed and
    ``row_notification`` its whole event."""

    def select_rows(
        self, start: int, limit: int, stop: int | None = None
    ) -> Sequence[tuple[int, UUID | str, str, int]]: ...

    def row_state(self, row: int) -> bytes: ...

    def row_notification(self, row: int) -> Notification: ...


# Messages to other shards still unacknowledged this long (shard clock) are sent again.
RESEND_AFTER_S = 5.0
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
    checkpoint: Chunk | None = None  # the checkpoint chunk saved with the batch's events
    # For other shards, to publish once the batch is durable (in its transaction on Kafka):
    # the messages it sent (and older unacknowledged ones due again), and its acks.
    messages: list[Envelope] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    # What other shards are to be told of the drivers whose availability it changed.
    told: list[ForeignDriver] = field(default_factory=list)
    # The trace context each outcome goes back with, by reply key: the command's span in
    # the worker when it traces, else the context the command came with.
    traces: dict[str, str] = field(default_factory=dict)

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
        checkpoints: CheckpointWriter | None = None,
        checkpoint_store: CheckpointStore | None = None,
        chunks_with_events: bool = True,
        live: LiveAggregates | None = None,
        live_snapshots: bool = True,
        peers: Sequence[int] = (),
        region_of: Callable[[float, float], int] | None = None,
        handoff_after_s: float | None = None,
    ) -> None:
        """``checkpoints`` writes the shard's checkpoints and ``checkpoint_store`` reads them
        back; a chunk goes to the recorder with the batch's events when
        ``chunks_with_events`` (SQLite: one transaction), else only in the ``Batch``, for
        its owner to send in the batch's transaction (Kafka). With ``live``, the worker
        keeps the shard's live aggregates, its checkpoints list them, with their snapshots
        when ``live_snapshots`` (a store restored from one holds only the log after it:
        ``floor``), and the application skips the store for record ids not among them.
        ``peers`` are the shards this one may exchange messages with (cross-shard rides).
        With ``region_of`` (the shard serving a place) and ``handoff_after_s``, a free
        driver this shard serves whose pings stay in another shard's region that long is
        handed off to it (docs/ARCHITECTURE.md, "Driver hand-off")."""
        self.shard, self.app, self.clock = shard, app, clock
        self.peers = [p for p in peers if p != shard]
        self.region_of, self.handoff_after_s = region_of, handoff_after_s
        # Other shards' drivers: the newest tenure heard of (epoch, owner, handed off).
        self._seen: dict[UUID, tuple[int, int, bool]] = {}
        self._leaving: dict[UUID, float] = {}  # free drivers pinging elsewhere, since
        # What other shards were last told of the drivers this one serves (or handed off).
        self.told: dict[UUID, ForeignDriver] = {}
        app.owner_hint = self._owner_hint
        # When to look for messages to send again, and the unacknowledged ones seen then.
        self._resend_at = float("-inf")
        self._unacked_seen: set[tuple[int, int, int]] = set()
        self._matcher_factory: Callable[[], Matcher] = functools.partial(
            _owned_by, matcher_factory, shard
        )
        self.matcher = matcher_factory()
        self.max_batch = max_batch
        self.listeners: list[CommitListener] = []
        # Starts a span for each command it applies (None: commands are not traced here,
        # and their trace context only passes through to their outcomes).
        self.tracer: Tracer | None = None
        self.batches = 0  # batches begun (``next_batch``): a batch's number in the logs
        self.last_event_time = 0.0
        self.checkpoints, self.checkpoint_store = checkpoints, checkpoint_store
        self.chunks_with_events = chunks_with_events
        self.restored_from: int | None = None  # the checkpoint the last restore started at
        self.live, self.live_snapshots = live, live_snapshots
        self.floor = 0  # the shard's store holds the log after this position only
        self._opened_from: Restored | None = None
        if live is not None and checkpoints is not None:
            checkpoints.aggregates = self

    def restore(self, chosen: Restored | None = None, loaded: Matcher | None = None) -> int:
        """Rebuild the matcher's state (and the live aggregates): ``chosen`` (a checkpoint
        the caller already read, and ``loaded`` into a fresh matcher) or the newest usable
        one, then the events after it (the whole log when there is none); returns the
        events read."""
        self.restored_from, start = None, 1
        if self.checkpoints is not None:
            self.checkpoints.abandon()
        matcher: Matcher | None = None
        restored: Restored | None = None
        if chosen is not None:
            matcher, restored = loaded, chosen
        elif self.checkpoint_store is not None:
            matcher, restored = self._newest_checkpoint()
        if matcher is None:
            matcher = self._matcher_factory()
            if restored is not None:
                load_into(matcher, restored, self.app.open_personal)
        self.matcher = matcher
        if chosen is not None and self.floor:
            # What a recover falls back to (see _newest_checkpoint): the live list without
            # the snapshots, which the store already holds.
            self._opened_from = replace(chosen, aggregates=[], live=chosen.live_listed())
        if self.live is not None:
            self.live.load(restored.live_rows() if restored is not None else ())
            if restored is not None and restored.aggregates is None:
                # A checkpoint that does not list the live aggregates (format 1): list them
                # from the log before it, or the next checkpoint would list too few.
                log.info("shard %s: listing the live aggregates up to %s", self.shard,
                         restored.position)  # fmt: skip
                self.fold(1, restored.position, matcher=False)
        if restored is not None:
            self.last_event_time = restored.last_event_time
            self.restored_from, start = restored.position, restored.position + 1
            log.info("shard %s: restoring from the checkpoint at %s", self.shard, start - 1)
        count = self.fold(start)
        if matcher.surge is not None:  # the multipliers as saved (not all in the tail)
            matcher.surge.load(self.app.surge_levels())
        own = matcher.own
        # A checkpoint from before hand-offs lists other shards' drivers too: this shard
        # serves its own drivers and those handed to it (found here, not handed off).
        strays = [d for d in own if shard_of(d) != self.shard and not self.app.serves(d)]
        own.difference_update(strays)
        self._seen, self._leaving = {}, {}
        self.told = {f.driver_id: f for f in self.states_of(list(own))}
        # What was sent and not acknowledged before the restore goes out again (the
        # receivers drop what they had already applied).
        self._resend_at, self._unacked_seen = float("-inf"), set()
        # Complete now (folded from the start, or from a checkpoint plus the log before or
        # after it as needed): record lookups may trust it.
        self.app.stored_ids = self.live
        if self.checkpoints is not None:
            self.checkpoints.restored(count)
        return count

    def _newest_checkpoint(self) -> tuple[Matcher | None, Restored | None]:
        """The newest usable checkpoint in the store, with the matcher it was loaded into;
        on a store that holds only the log after ``floor``, the one it was opened from
        (not loaded yet) when none at or after it reads back (a checkpoint store that cannot
        be read just then must not take the shard down)."""
        assert self.checkpoint_store is not None
        try:
            return restore_matcher(
                self.checkpoint_store, self._matcher_factory, self.app.position(), self.shard,
                self.floor, self.app.open_personal,
            )  # fmt: skip
        except CheckpointError as e:
            if self._opened_from is None:
                raise
            log.warning("shard %s: %s; restoring from the checkpoint it was opened from (%s)",
                        self.shard, e, self._opened_from.position)  # fmt: skip
            return None, self._opened_from

    def fold(self, start: int, stop: int | None = None, matcher: bool = True) -> int:
        """Fold the log's events from position ``start`` (to ``stop``, or its end) into the
        live aggregates and (unless ``matcher`` is False) the matcher; returns the events
        read.

        A store that lists its rows (``RowLog``: the Kafka store's local table) is read as
        ``(id, originator id, topic, row)`` tuples, a row's state copied only for an event
        whose time or content the fold needs: the library's ``Notification`` made for each
        event cost a third of the fold of a takeover's tail."""
        wanted = self.matcher.topics if matcher else frozenset[str]()
        by_type = self.matcher.driver_topics
        live, timed = self.live, TIMED_TOPICS
        recorder: Any = self.app.recorder
        page_of: Callable[[int], Sequence[tuple[int, UUID | str, str, Any]]]
        notification_of: Callable[[Any], Any]
        state_of: Callable[[Any], bytes]
        if isinstance(recorder, RowLog):
            rows = recorder

            def page_of(at: int) -> Sequence[tuple[int, UUID | str, str, Any]]:
                return rows.select_rows(at, _FOLD_PAGE, stop)

            notification_of, state_of = rows.row_notification, rows.row_state
        else:

            def page_of(at: int) -> Sequence[tuple[int, UUID | str, str, Any]]:
                page = recorder.select_notifications(at, _FOLD_PAGE, stop=stop)
                return [(n.id, n.originator_id, n.topic, n) for n in page]

            def notification_of(n: Any) -> Any:
                return n

            def state_of(n: Any) -> bytes:
                return bytes(n.state)

        count = 0
        while True:
            page = page_of(start)
            for _, originator, topic, ref in page:
                if live is not None:
                    aggregate_id = originator if isinstance(originator, UUID) else UUID(originator)
                    at = self.last_event_time
                    if topic in timed:
                        at = self._time_of(state_of(ref), partial(notification_of, ref))
                    live.observe(topic, aggregate_id, at)
                if topic not in wanted:
                    continue  # command records, rider events: nothing the matcher folds
                if topic in by_type:  # no need to decode these
                    driver = originator
                    driver_id = driver if isinstance(driver, UUID) else UUID(str(driver))
                    self.matcher.observe_driver(driver_id, topic)
                    continue
                event: Any = self.app.mapper.to_domain_event(notification_of(ref))
                self.matcher.observe(event)
                self.last_event_time = max(self.last_event_time, event.timestamp.timestamp())
            count += len(page)
            if len(page) < _FOLD_PAGE:
                if live is not None:
                    live.evict(self.last_event_time)
                return count
            start = page[-1][0] + 1

    def process(self, inbound: Inbound) -> Batch:
        """Decide the batch and save its events in one recording (which raises if the
        store cannot save them: the owner then calls ``recover``)."""
        if self.checkpoints is not None:
            # a chunk due is encoded (its rows sealed) here, inside the batch that saves it,
            # and from the state the last commit left (review finding 3 of the Kafka review)
            self.checkpoints.next_chunk()
        now = self.clock()
        now_dt = datetime.fromtimestamp(now, UTC)
        matcher = self.matcher
        ahead = now + MAX_PING_AHEAD_S
        taken: list[Ping] = []
        for ping in inbound.pings:
            if ping.at > ahead:  # would pin the driver in the matcher: dead-letter it instead
                inbound.poison.append(_ping_ahead(ping, now))
                continue
            matcher.ping(ping.driver_id, ping.lat, ping.lng, ping.at)
            taken.append(ping)
        for foreign in inbound.foreign:  # as the shards that serve them last said
            self._take_foreign(foreign)
        if self.handoff_after_s is not None and self.region_of is not None:
            self._hand_offs(taken, now, now_dt)
        for ack in inbound.acks:
            self._observe(self.app.acknowledged(ack, now_dt))
        acks: dict[int, int] = {}
        for message in inbound.messages:
            events, upto = self.app.receive(message, now_dt)
            self._observe(events)
            if upto is not None:
                acks[message.sender] = max(upto, acks.get(message.sender, 0))
        traces = self._apply(inbound, now_dt)
        for decision in matcher.tick(now):
            self._observe(self.app.decide(decision, now_dt))
        chunk = self.checkpoints.next_chunk() if self.checkpoints is not None else None
        if self.chunks_with_events:
            saved = {"checkpoint": chunk} if chunk is not None else {}
            outcomes, recordings = self.app.commit(**saved)
            chunk = chunk if recordings else None  # a batch with no events saves nothing
        else:
            outcomes, recordings = self.app.commit()
        self._observe_saved(recordings)
        commands, pings = len(inbound.commands), len(inbound.pings)
        sent = [envelope_of(r.domain_event) for r in recordings
                if isinstance(r.domain_event, Link.Sent)]  # fmt: skip
        due = self._due_again(now)  # after the commit: it lists this batch's sends too
        listed = {e.id for e in due}
        messages = due + [e for e in sent if e.id not in listed]
        replies = [Ack(self.shard, peer, upto) for peer, upto in sorted(acks.items())]
        told = self.states_of(dict.fromkeys(d for d, _ in availability_changes(recordings)))
        return Batch(commands, pings, outcomes, recordings, list(inbound.poison), chunk,
                     messages, replies, told, traces)  # fmt: skip

    def next_batch(self) -> int:
        """The number of the batch its owner is beginning (1, 2, ...), for the logs."""
        self.batches += 1
        return self.batches

    def _apply(self, inbound: Inbound, now: datetime) -> dict[str, str]:
        """Apply the batch's commands; the trace context their outcomes go back with. A
        traced command is applied in a span of its own, the child of the one it came with,
        with its id in the log context; untraced, nothing is added per command."""
        tracer, traces = self.tracer, inbound.traces
        if tracer is None:
            debug = log.isEnabledFor(logging.DEBUG)
            for envelope in inbound.commands:
                if debug:
                    shown = logs.loggable_command_id(envelope.command_id)
                    log.debug("shard %s: applying %s (command %s)", self.shard,
                              envelope.command.type, shown)  # fmt: skip
                self._observe(self.app.handle(envelope, now))
            return traces
        replies: dict[str, str] = {}
        for envelope in inbound.commands:
            key, kind = envelope.reply_key, envelope.command.type
            with (
                tracer.span("dispatch.apply", traces.get(key), command=kind) as parent,
                logs.bound(command_id=logs.loggable_command_id(envelope.command_id)),
            ):
                log.debug("shard %s: applying %s", self.shard, kind)
                self._observe(self.app.handle(envelope, now))
            replies[key] = parent
        return replies

    def local_drivers(self) -> list[ForeignDriver]:
        """What other shards were last told of the drivers this shard serves (and of those
        it handed off), for a matcher that knows none of them (safe from another thread)."""
        return list(self.told.copy().values())

    def states_of(self, drivers: Iterable[UUID]) -> list[ForeignDriver]:
        """Each of ``drivers`` (this shard's, or handed off from it) as other shards' matchers
        take it (``Inbound.foreign``); a driver only registered: none."""
        if not self.peers:
            return []
        known = self.matcher.drivers
        out: list[ForeignDriver] = []
        for driver in drivers:
            state = known.get(driver)
            leads_to = _leading_to(state) if state is not None else ()
            if leads_to:
                vehicle = self.matcher.vehicle_of(driver)
                out.append(
                    ForeignDriver(driver, self.shard, self._epoch(driver), leads_to, vehicle)
                )
        return out

    def _epoch(self, driver_id: UUID) -> int:
        """The driver's tenure here (looked up even with hand-offs turned off: drivers
        handed off while they were on keep their tenures)."""
        return self.app.driver_epoch(driver_id)

    def _take_foreign(self, foreign: ForeignDriver) -> None:
        """Another shard's word on a driver it serves (or handed off): kept unless this
        shard serves the driver, or has heard of a later tenure."""
        driver_id = foreign.driver_id
        if foreign.owner == self.shard or driver_id in self.matcher.own:
            return
        seen = self._seen.get(driver_id)
        if seen is not None and foreign.epoch < seen[0]:
            return  # an older tenure's news: the driver was handed off since
        gone = foreign.leads_to == (Driver.HandedOff.TOPIC,)
        self._seen[driver_id] = (foreign.epoch, foreign.owner, gone)
        self.matcher.know_vehicle(driver_id, foreign.vehicle or DEFAULT_VEHICLE, foreign=True)
        observe = self.matcher.observe_foreign
        observe(driver_id, Driver.Created.TOPIC)  # a state, not a change: from registered
        for topic in foreign.leads_to:
            observe(driver_id, topic)

    def _heard_moved(self, driver_id: UUID, to: int) -> None:
        """A shard asked for the driver said where it went: ask there next."""
        seen = self._seen.get(driver_id)
        self._seen[driver_id] = (seen[0] if seen is not None else 0, to, False)

    def _owner_hint(self, driver_id: UUID) -> int | None:
        seen = self._seen.get(driver_id)
        return seen[1] if seen is not None and not seen[2] else None

    def _hand_offs(self, pings: Sequence[Ping], clock: float, now: datetime) -> None:
        """Hand off each free driver this shard serves whose pings have been in another
        shard's region for ``handoff_after_s`` (a driver on a border does not flap), timed
        by the pings but never past the shard's clock (a driver cannot hurry it)."""
        assert self.region_of is not None and self.handoff_after_s is not None
        matcher, leaving = self.matcher, self._leaving
        for ping in pings:
            driver_id = ping.driver_id
            if driver_id not in matcher.own:
                continue
            state = matcher.drivers.get(driver_id)
            to = self.region_of(ping.lat, ping.lng)
            if state is None or state[0] != DriverStatus.AVAILABLE or to == self.shard:
                leaving.pop(driver_id, None)
                continue
            at = min(ping.at, clock)
            since = leaving.setdefault(driver_id, at)
            if at - since >= self.handoff_after_s:
                del leaving[driver_id]
                self._observe(self.app.hand_off(driver_id, to, now))

    def _due_again(self, now: float) -> list[Envelope]:
        """Messages to send again: all unacknowledged ones after a restore, then every
        ``RESEND_AFTER_S`` those that were already unacknowledged at the previous look
        (a message lost on the way, or a receiver restored to before it)."""
        if not self.peers or now < self._resend_at:
            return []
        try:
            pending = self.app.pending_messages(self.peers)
        except Exception:  # the batch is committed: never fail it for this; look again later
            log.exception("shard %s: reading the messages to send again failed", self.shard)
            return []
        first = self._resend_at == float("-inf")
        due = [e for e in pending if first or (e.sender, e.receiver, e.seq) in self._unacked_seen]
        self._unacked_seen = {(e.sender, e.receiver, e.seq) for e in pending}
        self._resend_at = now + RESEND_AFTER_S
        return due

    def committed(self, batch: Batch) -> None:
        """The batch is durable: tell the commit listeners (the views, the simulator), and
        the checkpoint writer (which may start a checkpoint at the batch's last event)."""
        for state in batch.told:
            self.told[state.driver_id] = state
        if batch.recordings:
            for listener in self.listeners:
                listener(self.shard, batch.recordings)
        if self.checkpoints is not None and (batch.recordings or batch.checkpoint):
            if batch.recordings:
                position = batch.recordings[-1].notification.id
            else:
                position = self.app.position()
            self.checkpoints.committed(
                batch.checkpoint, len(batch.recordings), position, self.matcher,
                self.last_event_time, self.clock(),
            )  # fmt: skip

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
        return Batch(len(inbound.commands), len(inbound.pings), outcomes, [], list(inbound.poison),
                     traces=dict(inbound.traces))  # fmt: skip

    def _observe(self, events: list[Any]) -> None:
        for event in events:
            self.matcher.observe(event)
            if type(event) is Ride.AskEnded and event.moved_to >= 0:
                self._heard_moved(UUID(event.driver_id), event.moved_to)
        if events:  # a batch's events share the worker's clock
            at = events[-1].timestamp.timestamp()
            self.last_event_time = max(self.last_event_time, at)

    def _observe_saved(self, recordings: Sequence[Recording[UUID]]) -> None:
        """Every saved event into the live aggregates (command refusals too, which no
        handler returns), before the next batch looks anything up."""
        live = self.live
        if live is not None:
            for recording in recordings:
                event: Any = recording.domain_event
                live.observe(event.TOPIC, event.originator_id, event.timestamp.timestamp())

    def _event_time(self, notification: Any) -> float:
        """An event's time, read from the front of its stored state when that is the
        library's JSON (a fold reads it for every command record: decoding the whole event
        costs several times as much), else from the decoded event."""
        return self._time_of(notification.state, lambda: notification)

    def _time_of(self, state: bytes, notification: Callable[[], Any]) -> float:
        """``_event_time`` of the event stored as ``state`` (``notification`` makes it whole
        when it must be decoded)."""
        if state.startswith(_TIMESTAMP_JSON):
            end = state.find(b'"', len(_TIMESTAMP_JSON))
            if end > 0:
                try:  # (not contextlib.suppress: a context manager an event costs more)
                    text = state[len(_TIMESTAMP_JSON) : end].decode()
                    return datetime.fromisoformat(text).timestamp()
                except ValueError:
                    pass
        event: Any = self.app.mapper.to_domain_event(notification())
        return float(event.timestamp.timestamp())

    # -- the live aggregates, for checkpoints (``checkpoints.AggregateSource``) ---------------
    def live_rows(self) -> list[LiveRow]:
        if self.live is None:
            return []
        self.live.evict(self.last_event_time)
        return self.live.rows()

    def snapshot(self, aggregate_id: UUID) -> Snapshot | None:
        return snapshot_of(self.app, aggregate_id) if self.live_snapshots else None


def snapshot_of(
    app: ShardApplication, aggregate_id: UUID, version: int | None = None
) -> Snapshot | None:
    """The aggregate's state (now, or at ``version``) as the library's stored snapshot."""
    try:
        aggregate: Any = app.repository.get(aggregate_id, version=version)
    except AggregateNotFoundError:
        return None
    if not worth_caching(aggregate) and app.repository.cache is not None:
        with contextlib.suppress(KeyError):  # a checkpoint must not refill the cache
            app.repository.cache.get(aggregate_id, evict=True)
    stored = app.mapper.to_stored_event(LibrarySnapshot.take(aggregate))
    return stored.originator_version, stored.topic, stored.state


def _ping_ahead(ping: Ping, now: float) -> Poison:
    reason = f"ping time {ping.at:.3f} is more than {MAX_PING_AHEAD_S:g} s ahead of {now:.3f}"
    raw = orjson.dumps([str(ping.driver_id), ping.lat, ping.lng, ping.at])
    return Poison("locations", f"driver {ping.driver_id}", reason, raw)


def _owned_by(factory: Callable[[], Matcher], shard: int) -> Matcher:
    """A fresh matcher whose surge tracker prices the surge cells ``shard`` owns."""
    matcher = factory()
    if matcher.surge is not None:
        matcher.surge.owned_by(shard)
    return matcher
