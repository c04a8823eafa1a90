"""``dispatch worker``: shard workers on Kafka, placed by a consumer group.

The process joins the group on the co-partitioned commands, locations and shard-messages
topics (range assignment keeps partition n of all three with one member) and hosts one
shard application and matcher per owned partition. Each batch of a shard is ONE Kafka
transaction: the new events (through the Kafka persistence module), the outcomes, dead
letters, the messages and acks to other shards, its drivers' availability for the other
shards (``availability.py``, read back by every worker's ``AvailabilityBoard``) and the
consumed offsets
(``send_offsets_to_transaction``) commit together, so after a crash the batch is either
wholly visible or redone from the committed offsets. A zombie that lost its shard is
fenced by the shard's transactional id.

A shard whose producer is lost (``ProducerLostError``) is released, and its partitions are
paused at once and, before anything reads them again, rewound to the committed offsets: no
record is taken without a host, none is skipped. Who serves it next is the group's call,
whatever the loss was:

- a fence (``FencedError``): another producer of the shard's transactional id began, or the
  transaction coordinator rolled this one back on its timeout (kafka-python reports both
  as a fence). A newer owner the group chose would have the shard's partitions in the
  group's assignment; a rollback or a producer from outside the group moves nothing in the
  group, and waiting for a rebalance would leave the shard paused for good;
- any other loss (kafka-python refused to begin or abort a transaction): no one else may
  have it, and no rebalance may ever come.

So the shard is reopened here, with a new producer (whose ``init_transactions`` fences any
other), as soon as the broker confirms that the group, stable, assigns its partitions to
this member (``DescribeGroups``; never on this member's word alone: a zombie still believes
it owns them). Until then it is retried every few seconds (``REOPEN_RETRY_*``); a member
that was evicted or is rebalancing rejoins at its next poll, and the rebalance gives the
shard to whoever the group names. A producer is thus only ever created for partitions the
group assigns to its member, and the group's generation still fences the offsets of any
batch that a member outside it might attempt.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from kafka import ConsumerRebalanceListener, OffsetAndMetadata, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.structs import MemberState

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.availability import AvailabilityBoard, for_shard
from dispatch.adapters.kafka.batch import KafkaBatch, Offsets
from dispatch.adapters.kafka.config import connection_of, new_admin, new_consumer
from dispatch.adapters.kafka.eventstore import FencedError, ProducerLostError
from dispatch.adapters.kafka.keystore import KafkaKeyStore
from dispatch.adapters.kafka.shard_host import AppFactory, ShardHost, open_shard
from dispatch.adapters.kafka.topics import Topics
from dispatch.domain.ids import shard_of
from dispatch.matching.matcher import Matcher
from dispatch.messages import Poison
from dispatch.ports import Tracer
from dispatch.privacy import KeyNotYetKnown, PersonalData, as_is
from dispatch.sealed_commands import open_command
from dispatch.settings import Settings
from dispatch.shard.crossshard.messages import Ack
from dispatch.shard.inbound import ForeignDriver, Inbound
from dispatch.shard.personal import Sealer
from dispatch.shard.worker import BatchReport

log = logging.getLogger(__name__)
SESSION_TIMEOUT_MS = 10_000  # the workers' group session (a cut-off worker's shards move then)

SLOW_BATCH_S = 0.25  # batches slower than this are logged with their sizes
# A shard whose producer was lost (fenced or not): the first reopening attempt is
# in the same loop pass; the next ones after 1, 2, 4, 8, then every 10 seconds.
REOPEN_RETRY_FIRST_S = 1.0
REOPEN_RETRY_MAX_S = 10.0
# A shard lost again within this long of being reopened in place (a fence that keeps coming
# back: a producer of its id outside the group, a coordinator answering for an old
# generation, transactions that keep overrunning) waits as its last attempt's next would
# have, instead of starting over at once.
REPEAT_WINDOW_S = 60.0
COMMITTED_TIMEOUT_MS = 30_000  # reading a committed offset (waits for a settled one)
# A sealed command whose key is not visible (docs/PRIVACY.md, "Sealed commands"): each poll
# waits for such keys 0.25 s at most, over all the process's shards together; the shard is
# then read again (paused and rewound, as for a shard-messages record), until the command
# is 10 minutes old (its record's timestamp), when it is dead-lettered. A key known deleted
# (its tombstone read) makes the command poison at once, with no wait.
COMMAND_KEY_WAIT_S = 0.25
COMMAND_KEY_DEADLINE_S = 600.0


@dataclass
class WorkerStats:
    batches: int = 0
    commands: int = 0
    pings: int = 0
    events: int = 0
    aborted: int = 0
    fenced: int = 0  # batches that lost the shard's producer, fenced or not
    reopened: int = 0  # shards reopened in place after a loss, on the group's word
    restored: dict[int, float] = field(default_factory=dict)
    opened: int = 0  # shard restores (each assignment of a shard opens it)
    dead_letters: int = 0  # poison records and commands sent to dead-letters
    # Records behind each consumed partition's end, as of its last fetch: by (topic,
    # partition), from the consumer's own figures (no request of its own).
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    assigned_once: bool = False  # the group has given this member its shards (or none)
    last_loop: float = field(default_factory=time.monotonic)  # when the loop last turned


# What a committed batch took: its shard, whether it was a tick alone (no records in), the
# seconds it took (decided and committed) and its report. Observers of batches take these.
BatchObserver = Callable[[int, bool, float, BatchReport], None]


@dataclass
class _Lost:
    """A shard released because its producer was lost; its partitions are paused."""

    error: ProducerLostError | None
    since: float = field(default_factory=time.monotonic)
    attempts: int = 0
    next_try: float = 0.0  # monotonic; 0: at once

    @property
    def fenced(self) -> bool:
        """Kafka said "fenced": another producer of the shard, or a rollback on the
        transaction timeout (reopened, like any loss, only if the group assigns it here)."""
        return isinstance(self.error, FencedError)


class KafkaWorker:
    def __init__(
        self,
        settings: Settings,
        app_factory: AppFactory,
        matcher_factory: Callable[[], Matcher],
        clock_mode: str = "wall",
        tick_s: float = 0.2,
        member: str | None = None,
        sealer: Sealer | None = None,
        keys: KafkaKeyStore | None = None,
        command_keys: PersonalData | None = None,
        tracer: Tracer | None = None,
        **consumer_overrides: Any,
    ) -> None:
        """``sealer`` and ``keys``: what the applications ``app_factory`` makes seal with,
        and its key store on the subject-keys topic (docs/PRIVACY.md); the worker closes
        ``keys``. ``command_keys``: how a sealed command is opened, over a key store on the
        command-keys topic (``dispatch.sealed_commands``), which the worker closes; None: a
        sealed command is poison. ``tracer``: traces the commands its shards apply
        (``ShardWorker.tracer``), closed with the worker; None: they are not traced."""
        assert settings.kafka_bootstrap is not None, "a Kafka worker needs bootstrap servers"
        self.settings, self.clock_mode, self.tick_s = settings, clock_mode, tick_s
        self.app_factory, self.matcher_factory = app_factory, matcher_factory
        self.sealer, self.keys, self.command_keys = sealer, keys, command_keys
        # A sealed command whose key is not visible is read again (as a shard-messages
        # record is) until it is this old, then dead-lettered (review M2); a poll waits
        # for such keys at most ``command_key_wait_s`` in all, over every shard (M1).
        self.command_key_deadline_s = COMMAND_KEY_DEADLINE_S
        self.command_key_wait_s = COMMAND_KEY_WAIT_S
        self._key_wait_until = 0.0
        self.topics = Topics(settings.topic_prefix)
        self.shards: dict[int, ShardHost] = {}
        self.lost: dict[int, _Lost] = {}  # shards released on a producer loss, paused
        # When each shard was last reopened in place, and after how many attempts: a shard
        # lost again soon after keeps backing off (``REPEAT_WINDOW_S``).
        self._reopened: dict[int, tuple[float, int]] = {}
        self._unrewound: set[int] = set()  # reopened by a rebalance, paused until rewound
        self.stats = WorkerStats()
        self.batch_observers: list[BatchObserver] = []  # e.g. the metrics (cli/worker_metrics)
        self.tracer = tracer
        self._next_offset: dict[TopicPartition, int] = {}  # of the last record read
        self._stop = threading.Event()
        options: dict[str, Any] = {
            "group_id": f"{settings.topic_prefix}.workers",
            "client_id": member or "dispatch-worker",
            "partition_assignment_strategy": [RangePartitionAssignor],
            "max_poll_records": 5_000,
            "session_timeout_ms": SESSION_TIMEOUT_MS,
            "heartbeat_interval_ms": 1_000,
            "max_poll_interval_ms": 120_000,
            # Not the clients' 5 s: a heartbeat given up closes its connection, and the
            # coordinator then removed a cut-off member 10 s after that close rather than
            # 10 s after its last heartbeat (fault 3: the shard moved after 15.5-17.6 s
            # instead of about 10 s). At the session timeout, no connection of a member
            # that cannot reach its coordinator is closed before its session has ended.
            "request_timeout_ms": SESSION_TIMEOUT_MS,
        }
        self.consumer = new_consumer(connection_of(settings), **(options | consumer_overrides))
        topics = list(self.topics.consumed)
        self._await_topics(topics)
        # With several shards: the other shards' drivers, for the hosted shards' matchers
        # (read-only; an offer across shards asks the driver's owner first).
        self.board: AvailabilityBoard | None = None
        self._foreign: dict[int, list[ForeignDriver]] = {}  # not yet in a batch
        if settings.shards > 1:
            self.board = AvailabilityBoard(
                connection_of(settings), self.topics.driver_availability, settings.shards
            )
            known = self.board.start()
            log.info("driver availability: %d drivers of the shards known", known)
        self.consumer.subscribe(topics, listener=_Rebalance(self))
        # A metadata fetch now, with the subscription set: otherwise the first join may beat
        # the subscription's own metadata update, and kafka-python then assigns against an
        # empty snapshot of the topics and rebalances once the update lands, so a shard
        # would be restored twice on every start.
        self.consumer.topics()
        # The process's heap so far (its imports, the first matcher) is long-lived: frozen
        # now, before the group assigns anything, a takeover's collection does not scan it.
        _freeze()

    @property
    def rewinding(self) -> set[int]:
        """Shards reopened by a rebalance, paused until read again from their committed
        offsets."""
        return set(self._unrewound)

    def _await_topics(self, topics: list[str], timeout_s: float = 30.0) -> None:
        """Join the group only once the topics' partitions are known: a member that joins
        before would be assigned nothing until its next metadata refresh."""
        deadline = time.monotonic() + timeout_s
        while not all(self.consumer.partitions_for_topic(t) for t in topics):
            if time.monotonic() > deadline:
                raise RuntimeError(f"topics {topics} not found: run `dispatch topics create`")
            time.sleep(0.2)

    # -- shard lifecycle ----------------------------------------------------------------
    def assign(self, shards: set[int]) -> None:
        self.stats.assigned_once = True
        self._forget_positions(shards)  # read again from the committed offsets
        # Shards lost here and now assigned elsewhere are the new owner's business.
        for shard in set(self.lost) - shards:
            log.info("shard %s (lost here) is now assigned to another member", shard)
            del self.lost[shard]
        opening = sorted(shards - set(self.shards))
        if not opening:
            _freeze()  # what a revoke let go is collected
            return
        with _opening():
            for shard in opening:
                started = time.perf_counter()
                self.shards[shard] = self._open(shard)
                self._refill(shard)
                self.stats.opened += 1
                self.stats.restored[shard] = time.perf_counter() - started
                log.info("shard %s restored in %.2f s", shard, self.stats.restored[shard])
                lost = self.lost.pop(shard, None)
                if lost is not None:
                    # kafka-python keeps a retained partition's position (past the lost
                    # batch) and pause: it stays paused until rewound to the committed
                    # offsets, which run_once does (a listener may not call the consumer's
                    # network).
                    self.consumer.pause(*self._partitions(shard))
                    self._unrewound.add(shard)
                    log.warning(
                        "shard %s: reopened by a rebalance %.1f s after its producer was lost",
                        shard,
                        time.monotonic() - lost.since,
                    )

    def _open(self, shard: int) -> ShardHost:
        host = open_shard(
            self.settings,
            shard,
            self.topics,
            self.app_factory,
            self.matcher_factory,
            self.clock_mode,
            self.keys,
            self.sealer.personal.open if self.sealer is not None else as_is,
        )
        host.worker.tracer = self.tracer
        return host

    def revoke(self, shards: set[int]) -> None:
        # Frozen objects are never collected: unfreeze, so that dropped shards can go (the
        # next assignment freezes what remains again).
        gc.unfreeze()
        self._unrewound -= shards
        self._forget_positions(shards)
        for shard in sorted(shards & set(self.shards)):
            self._foreign.pop(shard, None)
            self.shards.pop(shard).close()
            log.info("shard %s released", shard)

    # -- the loop ---------------------------------------------------------------------------
    def run(self, until: Callable[[], bool] | None = None) -> None:
        while not self._stop.is_set() and not (until is not None and until()):
            self.run_once()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.revoke(set(self.shards))
        self.consumer.close()
        if self.board is not None:
            self.board.stop()
        if self.keys is not None:
            self.keys.close()
        if self.command_keys is not None:
            self.command_keys.keys.close()
        if self.tracer is not None:
            self.tracer.close()

    def _refill(self, shard: int) -> None:
        """A hosted shard whose matcher is new (opened, or refolded after an abort): every
        driver of the other shards, as last told."""
        if self.board is not None:
            self._foreign[shard] = self.board.known_to(shard)

    def _take_foreign(self) -> None:
        if self.board is None:
            return
        changes = self.board.drain()
        if changes:
            for shard in self.shards:
                self._foreign.setdefault(shard, []).extend(for_shard(changes, shard))

    def run_once(self, timeout_ms: int = 100) -> None:
        self.stats.last_loop = time.monotonic()
        polled = self.consumer.poll(timeout_ms=timeout_ms)
        self._note_lag(polled)
        rewound = self._finish_rewinds()
        inbound: dict[int, Inbound] = {}
        offsets: dict[int, dict[TopicPartition, OffsetAndMetadata]] = {}
        opener = self.sealer.open_record if self.sealer is not None else None
        # what this poll may wait, in all, for command keys not yet visible (review M1)
        self._key_wait_until = time.monotonic() + self.command_key_wait_s
        for tp, records in polled.items():
            shard = tp.partition
            if shard in rewound or shard in self._unrewound:
                continue  # read again from the committed offsets
            if shard not in self.shards:
                log.error(
                    "%s: %d record(s) polled for shard %s, which has no host here; they are "
                    "left uncommitted",
                    tp,
                    len(records),
                    shard,
                )
                continue
            box = inbound.setdefault(shard, Inbound())
            for record in records:
                where = f"{tp.topic}[{tp.partition}]@{record.offset}"
                if tp.topic == self.topics.commands:
                    try:
                        decoded, spent = wire.read_command(record.value, where, self._opener(shard))
                    except KeyNotYetKnown as e:
                        if _age_s(record) < self.command_key_deadline_s:
                            self._read_again(shard, inbound, offsets, f"{where}: {e}")
                            break
                        decoded, spent = self._key_never_showed(record, where, e.subject)
                    if spent is not None and shard_of(spent) == shard:  # its key: deleted
                        box.spent_keys.append(spent)
                    if isinstance(decoded, Poison):
                        box.poison.append(decoded)
                    else:
                        box.commands.append(decoded)
                        if record.headers and (parent := wire.traceparent_of(record.headers)):
                            box.traces[decoded.reply_key] = parent
                elif tp.topic == self.topics.shard_messages:
                    try:
                        between = wire.decode_shard_message(record.value, where, shard, opener)
                    except KeyNotYetKnown as e:
                        self._read_again(shard, inbound, offsets, f"{where}: {e}")
                        break
                    if isinstance(between, Poison):
                        box.poison.append(between)
                    elif isinstance(between, Ack):
                        box.acks.append(between)
                    else:
                        box.messages.append(between)
                else:
                    pings, poison = wire.decode_pings(record.value, where)
                    box.pings.extend(pings)
                    box.poison.extend(poison)
            if shard in self._unrewound:
                continue
            offsets.setdefault(shard, {})[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
        self._take_foreign()
        for shard, host in list(self.shards.items()):
            found = inbound.get(shard)
            if shard in self._unrewound:
                continue
            if found or host.tick_due(self.tick_s):
                box = found or Inbound()
                box.foreign.extend(self._foreign.pop(shard, ()))
                self._process(shard, host, box, offsets.get(shard, {}))
        self._reopen_due()

    def _forget_positions(self, shards: set[int]) -> None:
        """The shards' partitions are read from elsewhere now (assigned, released or
        rewound): their lag is unknown until a record of them is read again, rather than
        reckoned from a position of an earlier tenure."""
        for tp in [tp for tp in self._next_offset if tp.partition in shards]:
            del self._next_offset[tp]

    def _note_lag(self, polled: Mapping[TopicPartition, list[Any]]) -> None:
        """Each assigned partition's records behind its end, from the consumer's last fetch
        (its high watermark) and the next offset read here: no request of its own."""
        for tp, records in polled.items():
            if records:
                self._next_offset[tp] = records[-1].offset + 1
        lag: dict[tuple[str, int], int] = {}
        for tp in self.consumer.assignment():
            end, next_offset = self.consumer.highwater(tp), self._next_offset.get(tp)
            if end is not None and next_offset is not None:
                lag[(tp.topic, tp.partition)] = max(0, end - next_offset)
        self.stats.lag = lag

    def _process(self, shard: int, host: ShardHost, box: Inbound, offsets: Offsets) -> None:
        tick_alone = not (box.commands or box.pings or box.messages or box.acks or box.poison)
        ended = KafkaBatch(host, self.topics, self.consumer).run(box, offsets)
        if ended.state == "fenced":
            self.stats.fenced += 1
            self._release_lost(shard, host)
            return
        if ended.state == "aborted":
            self.stats.aborted += 1
            self._refill(shard)  # its matcher was refolded from the log
            gc.unfreeze()  # the refolded matcher replaced the old one: let it be collected
            _freeze()
            return
        report = ended.report
        assert report is not None
        elapsed = ended.decided_s + ended.committed_s
        if elapsed > SLOW_BATCH_S:
            log.warning(
                "shard %s: slow batch %.0f ms (%d commands, %d pings, %d events; decided in "
                "%.0f ms, committed in %.0f ms)",
                shard,
                elapsed * 1000,
                report.commands,
                report.pings,
                report.events,
                ended.decided_s * 1000,
                ended.committed_s * 1000,
            )
        self.stats.batches += 1
        self.stats.commands += report.commands
        self.stats.pings += report.pings
        self.stats.events += report.events
        self.stats.dead_letters += len(box.poison)  # the batch's own ones appended too
        for observe in self.batch_observers:
            observe(shard, tick_alone, elapsed, report)

    # -- a shard whose producer was lost -----------------------------------------------------
    def _release_lost(self, shard: int, host: ShardHost) -> None:
        """Close the shard and stop taking its records: paused now, they are rewound to the
        committed offsets before they are read again (its batch's records, already polled,
        moved the position past what was committed)."""
        lost = _Lost(_loss_of(host))
        last = self._reopened.get(shard)
        if last is not None and lost.since - last[0] < REPEAT_WINDOW_S:
            lost.attempts = last[1]
            lost.next_try = lost.since + _retry_delay(lost.attempts)
        self.consumer.pause(*(self._partitions(shard) & self.consumer.assignment()))
        gc.unfreeze()  # let the released shard be collected (the next _freeze refreezes)
        self.shards.pop(shard).close()
        self.lost[shard] = lost
        log.warning(
            "shard %s released: its producer was %s (%s); its partitions are paused, and it "
            "is reopened here once the group confirms this member owns them (or served by "
            "whoever a rebalance gives it to)",
            shard,
            "fenced by a newer owner or rolled back" if lost.fenced else "lost without a fence",
            lost.error,
        )

    def _opener(self, shard: int) -> wire.OpenCommand | None:
        """How a sealed command read at ``shard`` is opened (None: it cannot be). A key
        not visible yet is waited for only within the poll's budget
        (``command_key_wait_s``, for all its shards together), then ``KeyNotYetKnown``."""
        personal = self.command_keys
        if personal is None:
            return None

        def opened(body: dict[str, Any]) -> None:
            store = personal.keys
            if isinstance(store, KafkaKeyStore):
                store.key_wait_s = max(0.0, self._key_wait_until - time.monotonic())
            open_command(body, personal, shard)

        return opened

    def _key_never_showed(self, record: Any, where: str, subject: UUID) -> tuple[Poison, UUID]:
        """A sealed command older than ``command_key_deadline_s`` whose key is not
        visible: deleted long ago (compacted; a redelivery after an offset reset) or never
        written. Poison, and its key (if any) tombstoned with the batch."""
        reason = (
            f"sealed command: its key ({subject}) is not on the command keys topic "
            f"{self.command_key_deadline_s:.0f} s after the command was written: deleted "
            "(the command was handled already) or never written"
        )
        return Poison("commands", where, reason, record.value or b""), subject

    def _read_again(
        self, shard: int, inbound: dict[int, Inbound], offsets: dict[int, Any], why: str
    ) -> None:
        """A record of ``shard`` holds a token whose key this process cannot read yet (a
        commit not yet visible; review finding 2): nothing of the shard's poll is decided;
        it is paused, rewound to its committed offsets and read again at the next poll,
        never read as erased."""
        log.warning("shard %s: %s; its records are read again", shard, why)
        inbound.pop(shard, None)
        offsets.pop(shard, None)
        self.consumer.pause(*self._partitions(shard))
        self._unrewound.add(shard)

    def _finish_rewinds(self) -> set[int]:
        """Rewind and resume the shards a rebalance reopened after a loss; returns them."""
        done: set[int] = set()
        for shard in sorted(self._unrewound):
            try:
                self._rewind(shard)
            except Exception:
                log.exception("shard %s: rewinding to the committed offsets failed", shard)
                continue  # still paused; tried again after the next poll
            self.consumer.resume(*self._partitions(shard))
            self._unrewound.discard(shard)
            self._forget_positions({shard})
            done.add(shard)
        return done

    def _reopen_due(self) -> None:
        now = time.monotonic()
        for shard, lost in sorted(self.lost.items()):
            if now >= lost.next_try:
                self._try_reopen(shard, lost)

    def _try_reopen(self, shard: int, lost: _Lost) -> None:
        """Reopen a shard whose producer was lost, if the group assigns it to this member."""
        lost.attempts += 1
        doubt = self._ownership_doubt(shard)
        if doubt is None:
            try:
                host = self._open(shard)  # a new producer: its init aborts what the old left
            except Exception as e:
                doubt = f"reopening failed: {e!r}"
                log.exception("shard %s: reopening after the producer loss failed", shard)
            else:
                try:
                    self._rewind(shard)
                except Exception as e:
                    host.close()
                    doubt = f"rewinding to the committed offsets failed: {e!r}"
                else:
                    self.shards[shard] = host
                    self._refill(shard)  # a new matcher: the other shards' drivers
                    self.consumer.resume(*self._partitions(shard))
                    del self.lost[shard]
                    self._reopened[shard] = (time.monotonic(), lost.attempts)
                    self.stats.reopened += 1
                    log.warning(
                        "shard %s reopened in place with a new producer, %.1f s after its "
                        "producer was lost (attempt %d); its records are read again from the "
                        "committed offsets",
                        shard,
                        time.monotonic() - lost.since,
                        lost.attempts,
                    )
                    _freeze()
                    return
        delay = _retry_delay(lost.attempts)
        lost.next_try = time.monotonic() + delay
        log.warning(
            "shard %s not reopened yet (%s): next attempt in %.0f s, unless a rebalance "
            "settles it first",
            shard,
            doubt,
            delay,
        )

    def _ownership_doubt(self, shard: int) -> str | None:
        """None if the broker says that the group, stable, assigns all the partitions of
        the shard to this member; else why that is not known.

        This member's own view is not enough: a member evicted from the group (a session
        timeout, a network split) keeps believing it owns its partitions until it hears of
        it, and a producer it opened would fence the real owner. A new generation without
        this member can still form while the shard is opened (its session expiring then,
        or a coordinator that had not learnt it lost the group answering for the old
        generation); safety does not rest on the answer staying true but on the order of
        the reopening: the new producer's ``init_transactions`` fences every other before
        the shard's log is restored and its committed offsets read, and a batch of a member
        outside the group's generation cannot commit its offsets. A wrong answer costs
        restores (each side fencing the other, backed off by ``_Lost.attempts``), never a
        write interleaved with another."""
        tps = self._partitions(shard)
        if not tps <= self.consumer.assignment():
            return "its partitions are no longer assigned to this member"
        member = self.consumer.group_metadata()
        if member.state != MemberState.STABLE:
            return f"this member is {member.state}"
        assert self.settings.kafka_bootstrap is not None
        try:
            admin = new_admin(connection_of(self.settings))
            try:
                group = admin.describe_groups([member.group_id])[member.group_id]
            finally:
                admin.close()
        except Exception as e:
            return f"the group could not be described: {e!r}"
        if group.get("error"):
            return f"the group could not be described: {group['error']}"
        if group.get("group_state") != "Stable":
            return f"the group is {group.get('group_state')}"
        mine = [m for m in group.get("members", []) if m.get("member_id") == member.member_id]
        if not mine:
            return f"the group has no member {member.member_id} (this member was evicted)"
        if not tps <= _assigned(mine[0].get("member_assignment")):
            return "the group assigns its partitions to another member"
        return None

    def _partitions(self, shard: int) -> set[TopicPartition]:
        """The shard's partition of each consumed topic: they move, pause and rewind
        together."""
        return {TopicPartition(t, shard) for t in self.topics.consumed}

    def _rewind(self, shard: int) -> None:
        """Seek the shard's partitions to their committed offsets (the earliest if none)."""
        for tp in sorted(self._partitions(shard)):
            committed = self.consumer.committed(tp, timeout_ms=COMMITTED_TIMEOUT_MS)
            if committed is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, committed)


def _age_s(record: Any) -> float:
    """How long ago a record was written (its timestamp); a record without one is old."""
    stamp = getattr(record, "timestamp", None)
    if not isinstance(stamp, int) or stamp < 0:
        return float("inf")
    return time.time() - stamp / 1000


def _retry_delay(attempts: int) -> float:
    """The wait after the ``attempts``-th attempt to reopen a shard: 1, 2, 4, 8, then 10 s."""
    return float(min(REOPEN_RETRY_MAX_S, REOPEN_RETRY_FIRST_S * 2 ** max(0, attempts - 1)))


def _loss_of(host: ShardHost) -> ProducerLostError | None:
    """The error the shard's writer keeps since its producer was lost: a lost writer raises
    it on every write, without calling the producer (an empty write touches nothing)."""
    try:
        with host.writer.writing():
            pass
    except ProducerLostError as e:
        return e
    except Exception:
        log.exception("shard %s: what ended its producer is unknown", host.shard)
    return None


def _assigned(assignment: Any) -> set[TopicPartition]:
    """The partitions of a member's assignment, as ``describe_groups`` decodes it."""
    if not isinstance(assignment, dict):
        return set()  # not decoded: nothing confirmed
    return {
        TopicPartition(topic["topic"], p)
        for topic in assignment.get("assigned_partitions", [])
        for p in topic.get("partitions", [])
    }


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: KafkaWorker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.worker.revoke({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.worker.assign({tp.partition for tp in assigned})


@contextmanager
def _opening() -> Iterator[None]:
    """Shards are being opened: the heap so far is collected, the collector pauses, and
    what the restores built is frozen as built, not collected. A collection of it (and the
    young-generation one that re-enabling the collector set off first) took 0.3 s of a
    takeover to scan hundreds of thousands of long-lived objects for a few hundred cyclic
    ones; those stay until the next unfreeze (a revoke, a lost batch), which collects them."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if was_enabled:
            gc.enable()


def _freeze() -> None:
    """A restored shard is a large, long-lived heap (its local store): keep the cyclic
    collector from rescanning it on every full collection, which stalls batches."""
    gc.collect()
    gc.freeze()
