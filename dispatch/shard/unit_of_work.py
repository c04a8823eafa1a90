"""A unit of work over one batch: aggregates loaded or created in the batch, saved once.

Saving a whole poll's aggregates in one transaction is what makes the embedded write path
fast, and on Kafka it is what puts a batch's events in one transaction. A command that
fails half-way is rolled back to the state before it, so a rejected command changes nothing.
"""

from __future__ import annotations

import contextlib
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Repository
from eventsourcing.domain import Aggregate

from dispatch.domain.command_record import CommandRecord
from dispatch.domain.errors import NotFound
from dispatch.domain.ride import TERMINAL, Ride

A = TypeVar("A", bound=Aggregate)

Mark = dict[UUID, int]


def worth_caching(aggregate: Aggregate) -> bool:
    """Whether a saved aggregate stays in the repository's cache: not a command record nor
    an ended ride, which are written once and seldom read again (a long run's cache was
    mostly these, hundreds of MB); a later read loads them from the store."""
    if isinstance(aggregate, CommandRecord):
        return False
    return not (isinstance(aggregate, Ride) and aggregate.status in TERMINAL)


def _decision_order(event: Any) -> int:
    if isinstance(event, CommandRecord.Created):
        return 2
    return 0 if event.originator_version == 1 else 1


class UnitOfWork:
    def __init__(self, repository: Repository[UUID], shard: int = 0) -> None:
        self._repository = repository
        self.shard = shard  # the shard whose store this is (messages are sent from it)
        self._touched: dict[UUID, Aggregate] = {}
        self._journal: list[Any] = []
        self._mark: Mark | None = None

    def find(self, cls: type[A], aggregate_id: UUID, stored: bool = True) -> A | None:
        """The aggregate, or None when no aggregate of that type has this id. ``stored``
        False: the caller knows the store has none, so only this batch's are looked at."""
        agg = self._touched.get(aggregate_id)
        if agg is None:
            if not stored:
                return None
            try:
                agg = self._repository.get(aggregate_id)
            except AggregateNotFoundError:
                return None
            self._touched[aggregate_id] = agg
        if not isinstance(agg, cls):
            return None
        if self._mark is not None and aggregate_id not in self._mark:
            self._mark[aggregate_id] = len(agg.pending_events)
        return agg

    def get(self, cls: type[A], aggregate_id: UUID) -> A:
        agg = self.find(cls, aggregate_id)
        if agg is None:
            raise NotFound(f"{cls.__name__.lower()} {aggregate_id} not found")
        return agg

    def exists(self, aggregate_id: UUID) -> bool:
        return self.find(Aggregate, aggregate_id) is not None

    def add(self, aggregate: Aggregate) -> None:
        self._touched[aggregate.id] = aggregate
        if self._mark is not None:
            self._mark.setdefault(aggregate.id, 0)

    def mark(self) -> Mark:
        """Start a command: remember how many events each aggregate it reaches had.

        Handlers reach aggregates only through ``find``/``get``/``add``, so the mark fills
        in lazily and stays as small as the command."""
        self._mark = {}
        return self._mark

    def seal(self, since: Mark) -> list[Any]:
        """Keep the events triggered after ``since`` and return them.

        The journal holds the batch's events in the order they were decided, which is the
        order they are recorded in: a log reader sees causes before their effects.
        """
        out: list[Any] = []
        for agg_id, count in since.items():
            agg = self._touched.get(agg_id)
            if agg is not None:
                out.extend(agg.pending_events[count:])
        # Within one command, aggregates created come first: the other events of the command
        # may refer to them (a rider's RideRequested names the ride just requested). The
        # command's own record, which sums the command up, stays last.
        out.sort(key=_decision_order)
        self._journal.extend(out)
        self._mark = None
        return out

    @property
    def journal(self) -> list[Any]:
        return self._journal

    def rollback(self, to: Mark) -> None:
        """Undo every event triggered after ``to`` (the aggregates return to that state)."""
        self._mark = None
        for agg_id, keep in to.items():
            agg = self._touched.get(agg_id)
            if agg is None or len(agg.pending_events) == keep:
                continue
            kept_events = list(agg.pending_events[:keep])
            stored = agg.version - len(agg.pending_events)  # the version last saved
            if stored == 0 and not kept_events:
                del self._touched[agg_id]
                self._forget_cached(agg_id)
                continue
            base: Any = self._repository.get(agg_id, version=stored) if stored else None
            for event in kept_events:
                base = event.mutate(base)
            base.pending_events.extend(kept_events)
            self._touched[agg_id] = base
            self._put_cached(agg_id, base)

    def dirty(self) -> list[Aggregate]:
        return [a for a in self._touched.values() if a.pending_events]

    def saved(self) -> None:
        """The journal was recorded: clear pending events, cache the aggregates worth it
        (``worth_caching``), start anew."""
        for agg in self.dirty():
            agg.collect_events()
            if worth_caching(agg):
                self._put_cached(agg.id, agg)
            else:
                self._forget_cached(agg.id)
        self.clear()

    def clear(self) -> None:
        self._touched.clear()
        self._journal = []

    def _forget_cached(self, agg_id: UUID) -> None:
        cache = self._repository.cache
        if cache is not None:
            with contextlib.suppress(KeyError):
                cache.get(agg_id, evict=True)

    def _put_cached(self, agg_id: UUID, agg: Aggregate) -> None:
        if self._repository.cache is not None:
            self._repository.cache.put(agg_id, agg)
