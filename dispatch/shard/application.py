"""The shard application: the single writer of every aggregate in one shard.

Commands and matcher decisions are applied to a unit of work; ``commit()`` saves the whole
batch in one recording (one SQLite transaction, or one Kafka transaction) and returns the
outcomes with their log position.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.domain import Snapshot as LibrarySnapshot
from eventsourcing.persistence import JSONTranscoder, Recording

from dispatch.domain.command_record import (
    CommandRecord,
    RecordIds,
    key_refusal,
    record_ids,
)
from dispatch.domain.credentials import Credentials
from dispatch.domain.driver import Driver, DriverStatus
from dispatch.domain.errors import DomainError, DriverMoved, IllegalTransition, NotFound
from dispatch.domain.ids import shard_of
from dispatch.domain.ride import Ride
from dispatch.domain.rider import Rider
from dispatch.domain.surge import SURGE_RESOLUTION, Surge, surge_id
from dispatch.matching.decisions import (
    ChangeSurge,
    Decision,
    ExpireOffer,
    ExpireRequest,
    ExtendPlan,
    HintDriver,
    LocateDriver,
    MakeOffer,
    MarkOverdue,
    StartDispatch,
)
from dispatch.messages import FOLLOW_THE_DRIVER, destination
from dispatch.shard.carried import note
from dispatch.shard.crossing import (
    MESSAGE_HANDLERS,
    ask,
    end_for_rider,
    hand_off,
    is_foreign,
    let_go,
    owned_here,
    start_scheduled,
    undo_failed,
)
from dispatch.shard.crossshard.messages import Ack, Envelope
from dispatch.shard.handlers import HANDLERS
from dispatch.shard.links import Link, link_id, link_of
from dispatch.shard.personal import Sealer
from dispatch.shard.policy import Policy
from dispatch.shard.sealing import SealingApplication
from dispatch.shard.transcodings import PointAsList
from dispatch.shard.unit_of_work import UnitOfWork
from schemas.commands import CommandEnvelope, Outcome

log = logging.getLogger(__name__)


class ShardApplication(SealingApplication):
    """Intent-named entry points for one shard; all writes go through ``commit()``."""

    name = "dispatch"
    # Drivers and riders live for years: a snapshot every 50 events bounds what a cold read
    # (after a restart or a takeover) replays. Rides and command records stay short.
    # A shard's links to other shards, and credentials, live as long as the shard: the same.
    # A shard's surge: one event a cadence that moves any cell (every 30 s by default,
    # listing up to 5,000 changes; a cadence moving more is several, MAX_RECOMPUTED_ROWS),
    # its snapshot every cell above 1.00 (up to the market's cells): every 20 events, 10
    # minutes of cadences, bounds a cold read to 19 events (at most 95,000 changes) for a
    # snapshot every 10 minutes at most.
    snapshotting_intervals: ClassVar[dict[Any, int]] = {
        Driver: 50,
        Rider: 50,
        Link: 50,
        Credentials: 50,
        Surge: 20,
    }

    def __init__(
        self,
        shard: int,
        env: Mapping[str, str] | None = None,
        policy: Policy | None = None,
        sealer: Sealer | None = None,
    ):
        # Personal fields sealed when stored (docs/PRIVACY.md); None: stored as they are.
        self.sealer = sealer
        defaults = {
            "AGGREGATE_CACHE_MAXSIZE": "200000",
            "AGGREGATE_CACHE_FASTFORWARD": "n",
            "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
        }
        super().__init__(env={**defaults, **(env or {})})
        self.shard = shard
        self.policy = policy or Policy()
        self._uow = UnitOfWork(self.repository, shard)
        self._outcomes: list[Outcome] = []
        # The ids of every aggregate the store may hold that a command record lookup could
        # find (the shard's live aggregates, kept by its worker), or None (unknown: look).
        # A new command looks up three record ids (this period's, the previous period's and
        # the old scheme's), and each miss is two store reads: this makes misses free.
        self.stored_ids: Container[UUID] | None = None
        # Which shard serves another shard's driver, as that shard last said (the worker's
        # view of the others' drivers); None: not known.
        self.owner_hint: Callable[[UUID], int | None] = lambda _driver: None

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(PointAsList())

    # -- commands ------------------------------------------------------------------
    def handle(self, envelope: CommandEnvelope, now: datetime) -> list[Any]:
        """Apply one client command; returns the new events it triggered.

        Its outcome (accepted, rejected or the first outcome of a duplicate) is returned by
        the next ``commit``, in command order, carrying the command's fingerprint."""
        events = self._handle(envelope, now)
        if envelope.fingerprint is not None:
            answer = self._outcomes[-1].model_copy(update={"fingerprint": envelope.fingerprint})
            self._outcomes[-1] = answer
        return events

    def _handle(self, envelope: CommandEnvelope, now: datetime) -> list[Any]:
        cmd = envelope.command
        window_s = self.policy.idempotency_window_s
        ids = record_ids(self.shard, envelope.command_id, now, window_s)
        if self._answered(envelope, ids, now):
            return []
        home = shard_of(envelope.target_id)
        if destination(envelope) != self.shard or (
            self.shard != home and not isinstance(cmd, FOLLOW_THE_DRIVER)
        ):
            self._reject(envelope, ids.current, now, "misrouted", self._misrouted(envelope))
            return []
        mark = self._uow.mark()
        try:
            changed = HANDLERS[cmd.type](self._uow, cmd, now, self.policy)
        except DomainError as error:
            self._uow.rollback(mark)
            if error.final:
                self._reject(envelope, ids.current, now, error.code, error.reason, noted=True)
            else:  # holds until a message from another shard arrives: not recorded
                moved_to = error.to if isinstance(error, DriverMoved) else None
                self._refuse(envelope, error.code, error.reason, moved_to=moved_to)
            return []
        except Exception as error:  # a bug must not take the shard down with it
            log.exception("command %s failed", envelope.command_id)
            self._uow.rollback(mark)
            reason = f"{type(error).__name__}: {error}"
            self._reject(envelope, ids.current, now, "internal_error", reason, noted=True)
            return []
        self._uow.add(
            CommandRecord.record(
                ids.current,
                envelope.command_id,
                cmd.type,
                now,
                accepted=True,
                aggregate_ids=[str(i) for i in changed],
                fingerprint=envelope.fingerprint,
                window_s=window_s,
            )
        )
        if isinstance(cmd, FOLLOW_THE_DRIVER):  # its record travels with the driver
            note(self._uow, envelope.target_id, envelope.command_id, window_s, now)
        new_events = self._uow.seal(mark)
        changed_ids = [str(i) for i in changed]
        self._outcomes.append(
            Outcome(
                command_id=envelope.command_id,
                shard=self.shard,
                accepted=True,
                aggregate_ids=changed_ids,
            )
        )
        return new_events

    def _answered(self, envelope: CommandEnvelope, ids: RecordIds, now: datetime) -> bool:
        """Answer the command without handling it, if its id has a live record (a retry,
        or a reused key) or its key is refused; False when it is to be handled."""
        taken = self._uow.find(Aggregate, ids.current, self._may_be_stored(ids.current))
        if taken is not None and not isinstance(taken, CommandRecord):
            # Only a hand-made aggregate id can collide with a command's record id: refuse
            # the command rather than record a second aggregate under that id.
            reason = "this command_id collides with an existing aggregate id; send it with "
            self._refuse(envelope, "invalid_command", reason + "another command_id")
            return True
        # A record in the current period is live (its time is within a window of now); one
        # past the window is as good as gone, whether or not this store still holds it.
        previous = taken or self._live_record((ids.previous, ids.legacy), now)
        alternates = envelope.fingerprint_alternates
        if previous is not None and not previous.answers(envelope.fingerprint, alternates):
            reason = "this command id (Idempotency-Key) was used for a different request"
            self._refuse(envelope, "idempotency_key_reused", reason, duplicate=True)
            return True
        if previous is not None:
            self._outcomes.append(self._outcome_of(previous, duplicate=True))
            return True
        refusal = key_refusal(envelope.command_id, now, self.policy.idempotency_window_s)
        if refusal is not None:  # not recorded, like a reused key: nothing was decided
            self._refuse(envelope, *refusal)
            return True
        return False

    # -- matcher decisions -----------------------------------------------------------
    def decide(self, decision: Decision, now: datetime) -> list[Any]:
        """Apply one matcher decision; returns its events (none if it no longer applies)."""
        if isinstance(decision, ChangeSurge):
            return self._change_surge(decision, now)
        mark = self._uow.mark()
        try:
            if isinstance(decision, MakeOffer):
                ride = self._uow.get(Ride, decision.ride_id)
                driver = owned_here(self._uow, decision.driver_id)
                if (ride.sharing is not None) != (decision.plan is not None):
                    raise IllegalTransition(
                        "a shared ride is offered with the plan it would join, a single ride "
                        "without one"
                    )
                if driver is None and decision.plan is not None:
                    raise IllegalTransition("a shared ride is not offered across shards")
                if driver is None:  # another shard's: ask its owner to hold it
                    owner = self._owner_of(decision.driver_id)
                    if owner == self.shard:
                        raise NotFound(f"driver {decision.driver_id} not found")
                    ask(self._uow, ride, decision.driver_id, owner, decision.pickup_eta_s,
                        decision.distance_m, now)  # fmt: skip
                    return self._uow.seal(mark)
                expires = datetime.fromtimestamp(decision.expires_at, UTC)
                ride.offer(driver.id, expires, decision.pickup_eta_s, decision.distance_m, now)
                times = None if decision.times is None else list(decision.times)
                driver.receive_offer(ride.id, expires, now, plan=decision.plan, times=times)
            elif isinstance(decision, ExtendPlan):
                ride = self._uow.get(Ride, decision.ride_id)
                pooled = owned_here(self._uow, decision.driver_id)
                if pooled is None:
                    raise IllegalTransition(f"driver {decision.driver_id} is not served here")
                ride.pool(pooled.id, now)
                pooled.extend_plan(ride.id, decision.plan, list(decision.times), now)
            elif isinstance(decision, LocateDriver):
                # a driver served here (another shard's crossing is that shard's to record)
                located = owned_here(self._uow, decision.driver_id)
                if located is not None:
                    located.locate(decision.places, now)
            elif isinstance(decision, HintDriver):
                hinted = owned_here(self._uow, decision.driver_id)
                if hinted is not None:
                    hinted.hint(decision.cell, decision.lat, decision.lng, decision.demand,
                                decision.supply, decision.eta_s, now)  # fmt: skip
            elif isinstance(decision, StartDispatch):
                ride = self._uow.get(Ride, decision.ride_id)
                ride.dispatch_due(decision.expected_pickup_s, decision.margin_s, now)
                start_scheduled(self._uow, ride, now)
            elif isinstance(decision, MarkOverdue):
                self._uow.get(Ride, decision.ride_id).overdue(now)
            elif isinstance(decision, ExpireOffer):
                ride = self._uow.get(Ride, decision.ride_id)
                if ride.asking is not None:  # no answer from the owner: withdraw the ask
                    asked = ride.asking
                    ride.end_ask(asked, "withdrawn", now)
                    let_go(self._uow, ride, asked, "withdrawn", now)
                    return self._uow.seal(mark)
                offered = ride.offered_to
                elsewhere = offered is not None and is_foreign(ride, offered)
                driver_id = ride.expire_offer(now)
                if elsewhere:
                    let_go(self._uow, ride, driver_id, "expired", now)
                else:
                    self._uow.get(Driver, driver_id).close_offer(ride.id, "expired", now)
            else:
                assert isinstance(decision, ExpireRequest)
                ride = self._uow.get(Ride, decision.ride_id)
                asking = ride.asking
                ride.expire(now)
                if asking is not None:
                    let_go(self._uow, ride, asking, "withdrawn", now)
                end_for_rider(self._uow, ride, now)
        except DomainError as error:
            self._uow.rollback(mark)
            log.info("decision %s no longer applies: %s", decision, error.reason)
            return []
        return self._uow.seal(mark)

    def _change_surge(self, changes: ChangeSurge, now: datetime) -> list[Any]:
        """Record a cadence's changes of the surge cells' multipliers, one event listing them
        all (the shard's surge opened on first use)."""
        mark = self._uow.mark()
        try:
            surge = self._uow.find(Surge, surge_id(self.shard))
            if surge is None:
                surge = Surge.start(self.shard, SURGE_RESOLUTION, now)
                self._uow.add(surge)
            surge.recompute(changes.cells, changes.multipliers, changes.targets, changes.demand,
                            changes.supply, changes.window_s, now, changes.curve)  # fmt: skip
        except Exception:
            # nothing of a cadence half recorded (as every other decision path)
            self._uow.rollback(mark)
            raise
        return self._uow.seal(mark)

    def surge_levels(self) -> dict[str, str]:
        """The multiplier of every cell above 1.00, as saved (none before the first)."""
        try:
            surge: Any = self.repository.get(surge_id(self.shard))
        except AggregateNotFoundError:
            return {}
        return dict(surge.cells) if isinstance(surge, Surge) else {}

    def hand_off(self, driver_id: UUID, to: int, now: datetime) -> list[Any]:
        """Give a free driver this shard serves to shard ``to`` (its ping is in that
        shard's region); returns the events (none if it is no longer free here)."""
        mark = self._uow.mark()
        driver = owned_here(self._uow, driver_id)
        try:
            if driver is None:
                raise IllegalTransition(f"driver {driver_id} is not served here")
            hand_off(self._uow, driver, to, now)
        except DomainError as error:
            self._uow.rollback(mark)
            log.info("hand-off of driver %s to shard %s not made: %s", driver_id, to,
                     error.reason)  # fmt: skip
            return []
        return self._uow.seal(mark)

    def serves(self, driver_id: UUID) -> bool:
        """Whether this shard serves the driver now (it is here, not handed off)."""
        driver = self._stored_driver(driver_id)
        return driver is not None and driver.status != DriverStatus.HANDED_OFF

    def driver_epoch(self, driver_id: UUID) -> int:
        """The driver's tenure at this shard (hand-offs so far; 0 if unknown here)."""
        driver = self._stored_driver(driver_id)
        return driver.epoch if driver is not None else 0

    def _stored_driver(self, driver_id: UUID) -> Driver | None:
        """The driver as saved (outside any batch), or None if this shard has none."""
        try:
            found: Any = self.repository.get(driver_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, Driver) else None

    def _owner_of(self, driver_id: UUID) -> int:
        """The shard that serves another shard's driver, as this one knows it: where it
        handed it off, else what other shards said (``owner_hint``), else its home."""
        hinted = self.owner_hint(driver_id)
        if hinted is not None:
            return hinted
        known = self._uow.find(Driver, driver_id)
        if known is not None and known.handed_to is not None:
            return known.handed_to
        return shard_of(driver_id)

    # -- messages from other shards ------------------------------------------------------
    def receive(self, envelope: Envelope, now: datetime) -> tuple[list[Any], int | None]:
        """Apply a message from another shard once and in its channel's order: returns its
        events and the number to acknowledge to its sender (None: early, not applied; the
        sender sends it again)."""
        if envelope.receiver != self.shard or envelope.sender == self.shard:
            log.error("message %s delivered to shard %s: dropped", envelope.id, self.shard)
            return [], None
        mark = self._uow.mark()
        link = link_of(self._uow, self.shard, envelope.sender, now)
        if envelope.seq != link.in_next:
            self._uow.rollback(mark)  # a link opened for nothing leaves no trace
            if envelope.seq < link.in_next:
                return [], link.in_next - 1  # a duplicate: acknowledged again
            return [], None
        try:
            MESSAGE_HANDLERS[type(envelope.body)](
                self._uow, envelope.sender, envelope.body, now, self.policy
            )
        except Exception as error:
            # A message is applied whatever it finds: one that cannot apply leaves no
            # effect but its number (and what undoes its cause), or it would come back for
            # ever and hold up its channel.
            domain = isinstance(error, DomainError)
            reason = error.reason if isinstance(error, DomainError) else repr(error)
            log.log(logging.WARNING if domain else logging.ERROR,
                    "message %s from shard %s not applied: %s", envelope.id, envelope.sender,
                    reason, exc_info=not domain)  # fmt: skip
            self._uow.rollback(mark)
            mark = self._uow.mark()
            undo_failed(self._uow, envelope, now)
        link_of(self._uow, self.shard, envelope.sender, now).applied(envelope.seq, now)
        return self._uow.seal(mark), envelope.seq

    def acknowledged(self, ack: Ack, now: datetime) -> list[Any]:
        """The peer has applied (and saved) our messages up to ``ack.upto``; returns the
        events."""
        if ack.receiver != self.shard:
            log.error("ack for shard %s delivered to shard %s: dropped", ack.receiver, self.shard)
            return []
        mark = self._uow.mark()
        link = self._uow.find(Link, link_id(self.shard, ack.sender))
        if link is not None and ack.upto >= link.out_next:
            log.error("ack from shard %s up to %s, beyond the %s sent: ignored", ack.sender,
                      ack.upto, link.out_next - 1)  # fmt: skip
        elif link is not None:
            link.acknowledged(ack.upto, now)
        return self._uow.seal(mark)

    def pending_messages(self, peers: Iterable[int]) -> list[Envelope]:
        """Every message sent to ``peers`` and not yet acknowledged, by peer and number."""
        out: list[Envelope] = []
        for peer in peers:
            aggregate_id = link_id(self.shard, peer)
            if not self._may_be_stored(aggregate_id):
                continue
            try:
                link: Any = self.repository.get(aggregate_id)
            except AggregateNotFoundError:
                continue
            if isinstance(link, Link):
                out.extend(link.pending())
        return out

    # -- batch -------------------------------------------------------------------------
    def commit(self, **saved: Any) -> tuple[list[Outcome], list[Recording[UUID]]]:
        """Save the batch in one recording; returns every outcome and the recordings.
        ``saved`` goes to the recorder with the events, in their transaction (a checkpoint
        chunk); nothing is saved when the batch has no events."""
        journal = self._uow.journal
        try:
            erased = self.erasing(journal)  # pending, embedded (sealing.py)
            if self.sealer is not None and journal:
                self.sealer.prepare(journal)  # the batch's new keys in one durable write
            # The event store directly: the journal is already in decision order, and
            # Application.save would check every event against a runtime Protocol.
            recordings = self.events.put(journal, **saved) if journal else []
            self.erase_in_batch(erased)  # Kafka: in the batch's transaction
        except Exception:
            self.discard()
            raise
        self._uow.saved()
        self.erase_after(erased)  # embedded: once the batch is saved
        self._take_due_snapshots(journal)
        position = max((r.notification.id for r in recordings), default=None)
        outcomes = [
            o.model_copy(update={"position": position}) if not o.duplicate else o
            for o in self._outcomes
        ]
        self._outcomes = []
        return outcomes, recordings

    def _take_due_snapshots(self, journal: list[Any]) -> None:
        """A snapshot of each driver or rider whose version reached a multiple of its
        interval in this batch (to the snapshot store: the compacted topic on Kafka). The
        shard's surge, which may pass a multiple in every cadence, is taken as it is after
        the batch (cached: not replayed from the store, which would double what its
        changes cost)."""
        if self.snapshots is None:
            return
        surge_due = False
        for event in journal:
            for cls, interval in self.snapshotting_intervals.items():
                if isinstance(event, cls.Event | cls.Created):
                    if event.originator_version % interval != 0:
                        pass
                    elif cls is Surge:
                        surge_due = True
                    else:
                        self.take_snapshot(event.originator_id, version=event.originator_version)
                    break
        if surge_due:
            surge: Any = self.repository.get(surge_id(self.shard))  # the cached one
            self.snapshots.put([LibrarySnapshot.take(surge)])

    def discard(self) -> None:
        """Forget the open batch and every cached aggregate (after a failed or aborted commit)."""
        self._outcomes = []
        self._repository = self.construct_repository()
        self._uow = UnitOfWork(self.repository, self.shard)

    def position(self) -> int:
        """The shard's last log position (notification id)."""
        return self.recorder.max_notification_id() or 0

    # -- helpers -------------------------------------------------------------------------
    def _live_record(self, ids: tuple[UUID, ...], now: datetime) -> CommandRecord | None:
        """The first record at ``ids`` that is live at ``now``, if any."""
        window_s = self.policy.idempotency_window_s
        for record_id in ids:
            record = self._uow.find(CommandRecord, record_id, self._may_be_stored(record_id))
            if record is not None and record.live_at(now, window_s):
                return record
        return None

    def _may_be_stored(self, aggregate_id: UUID) -> bool:
        return self.stored_ids is None or aggregate_id in self.stored_ids

    def _reject(
        self,
        envelope: CommandEnvelope,
        record_id: UUID,
        now: datetime,
        code: str,
        reason: str,
        noted: bool = False,
    ) -> None:
        """Record the refusal and answer it; ``noted``: a driver command's refusal is noted
        on its driver (if served here), to travel with it."""
        mark = self._uow.mark()
        self._uow.add(
            CommandRecord.record(
                record_id,
                envelope.command_id,
                envelope.command.type,
                now,
                accepted=False,
                code=code,
                reason=reason,
                fingerprint=envelope.fingerprint,
                window_s=self.policy.idempotency_window_s,
            )
        )
        if noted and isinstance(envelope.command, FOLLOW_THE_DRIVER):
            window_s = self.policy.idempotency_window_s
            note(self._uow, envelope.target_id, envelope.command_id, window_s, now)
        self._uow.seal(mark)
        self._refuse(envelope, code, reason)

    def _refuse(
        self,
        envelope: CommandEnvelope,
        code: str,
        reason: str,
        duplicate: bool = False,
        moved_to: int | None = None,
    ) -> None:
        """Answer a command as refused (``_reject`` records the refusal first)."""
        self._outcomes.append(
            Outcome(
                command_id=envelope.command_id,
                shard=self.shard,
                accepted=False,
                code=code,
                reason=reason,
                duplicate=duplicate,
                moved_to=moved_to,
            )
        )

    def _outcome_of(self, record: CommandRecord, duplicate: bool) -> Outcome:
        return Outcome(
            command_id=record.command_id,
            shard=self.shard,
            accepted=record.accepted,
            code=record.code,
            reason=record.reason,
            duplicate=duplicate,
            aggregate_ids=list(record.aggregate_ids),
        )

    def _misrouted(self, envelope: CommandEnvelope) -> str:
        if envelope.shard is not None and envelope.shard == self.shard:
            return f"a {envelope.command.type} command goes to shard {shard_of(envelope.target_id)}"
        return (
            f"{envelope.target_id} belongs to shard {shard_of(envelope.target_id)}, "
            f"not shard {self.shard}"
        )
