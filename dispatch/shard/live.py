"""The shard's live aggregates: the ones a checkpoint carries, so that a restore needs only
the log's tail.

Drivers and riders (the city's users) are always live, and so are their and operators'
credentials (token versions: a revocation holds for good), the shard's links to other
shards (their unacknowledged messages and numbers) and its surge (every cell's
multiplier). A ride is live from its request
until it ends, and for ``retention_s`` after (a late command naming it, such as a retried
cancel, gets the answer a full replay would give). A command record is live for
``retention_s`` after it was written: the idempotency window, within which a retry must
find it. Everything else (rides ended longer ago, older command records) is history: the
log keeps it, the live state does not.

Fed with each event's topic, aggregate id and time, in log order, by the shard worker
(``observe``); times are the shard clock's, as the events carry them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from uuid import UUID

from dispatch.checkpoints import LiveRow
from dispatch.domain.command_record import CommandRecord, key_skew_s
from dispatch.domain.ride import RIDE_ENDINGS, Ride

USER, RIDE, ENDED, RECORD = "u", "r", "e", "c"
KINDS = frozenset({USER, RIDE, ENDED, RECORD})

# Drivers, riders, credentials, the shard's links to other shards (``shard.links``) and
# its surge (``domain.surge``) are always live.
_USER_PREFIXES = (
    "dispatch.Driver.",
    "dispatch.Rider.",
    "dispatch.Credentials.",
    "dispatch.Link.",
    "dispatch.Surge.",
)
# A record written here, or carried here with a driver handed off (at its first time).
_RECORD_TOPICS = frozenset({CommandRecord.Created.TOPIC, CommandRecord.Carried.TOPIC})
_OPENED = frozenset({Ride.Created.TOPIC, Ride.Booked.TOPIC})
# Topics whose event time ``observe`` needs (the worker decodes only these when folding).
TIMED_TOPICS = frozenset({*_RECORD_TOPICS, *RIDE_ENDINGS})


class LiveAggregates:
    def __init__(self, retention_s: float) -> None:
        if retention_s <= 0:
            raise ValueError("retention_s must be > 0")
        self.retention_s = retention_s
        self._users: set[UUID] = set()
        self._rides: set[UUID] = set()
        # Ended rides and command records, in the order they became so (log order, so
        # time order): the oldest leave first. An OrderedDict: a plain dict's first key is
        # found by scanning past every key deleted before it, which made evicting n of them
        # cost n squared (a full replay of 3M events spent minutes there).
        self._expiring: OrderedDict[UUID, tuple[str, float]] = OrderedDict()

    def __contains__(self, aggregate_id: object) -> bool:
        return (
            aggregate_id in self._expiring
            or aggregate_id in self._users
            or aggregate_id in self._rides
        )

    def __len__(self) -> int:
        return len(self._users) + len(self._rides) + len(self._expiring)

    def observe(self, topic: str, aggregate_id: UUID, at: float) -> None:
        if topic.startswith(_USER_PREFIXES):
            self._users.add(aggregate_id)
        elif topic in _RECORD_TOPICS:
            self._expiring[aggregate_id] = (RECORD, at)
        elif topic in _OPENED:
            self._rides.add(aggregate_id)
        elif topic in RIDE_ENDINGS:
            self._rides.discard(aggregate_id)
            self._expiring[aggregate_id] = (ENDED, at)

    def evict(self, now: float) -> int:
        """Forget what left the window by ``now``, with the clock skew allowed as a margin
        (the application judges a record by the batch's clock, which may run behind the
        log's newest event time after a takeover); returns how many left."""
        cutoff = now - self.retention_s - key_skew_s(self.retention_s)
        expiring, count = self._expiring, 0
        while expiring:
            first = next(iter(expiring))  # the linked list's head: no scan
            if expiring[first][1] > cutoff:
                break
            del expiring[first]
            count += 1
        return count

    def rows(self) -> list[LiveRow]:
        """Every live aggregate (a copy: the caller may take its time over it)."""
        out: list[LiveRow] = [(a, USER, 0.0) for a in self._users]
        out.extend((a, RIDE, 0.0) for a in self._rides)
        out.extend((a, kind, at) for a, (kind, at) in self._expiring.items())
        return out

    def load(self, rows: Iterable[LiveRow]) -> None:
        """Start from a checkpoint's rows (replacing what was held)."""
        self._users, self._rides, self._expiring = set(), set(), OrderedDict()
        expiring: list[tuple[float, UUID, str]] = []
        for aggregate_id, kind, at in rows:
            if kind == USER:
                self._users.add(aggregate_id)
            elif kind == RIDE:
                self._rides.add(aggregate_id)
            elif kind in KINDS:
                expiring.append((at, aggregate_id, kind))
            else:
                raise ValueError(f"unknown kind of live aggregate {kind!r}")
        for at, aggregate_id, kind in sorted(expiring, key=lambda e: e[0]):
            self._expiring[aggregate_id] = (kind, at)
