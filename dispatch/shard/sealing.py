"""The shard application's part in sealing and erasure (docs/PRIVACY.md): its mapper seals
personal fields when a ``Sealer`` is given, its readers open them, a matcher checkpoint's
ride rows are sealed, and an erasure's key is deleted with the batch that records it.

An erasing batch, embedded (the key store and the shard file are two SQLite files):

1. the subjects are recorded durably as *pending* in the key store;
2. the batch is saved (``Rider.Erased``/``Driver.Erased`` with it);
3. their keys are deleted, which clears the pending rows.

A failure at 2 leaves the key and no ``Erased`` event: the subject is not erased, the
command answers an error and its retry erases. A failure (or a kill) at 3 leaves the
event and the key: the subject is refused every command already (the event says erased),
and ``finish_erasures`` (each start) deletes the key of every pending subject whose log
says erased and drops the others' rows. There is never a deleted key without its event.

On Kafka the key store joins the batch's transaction: the erased marker and the key's
tombstone are sent in it, after the events, and commit with them or not at all
(``KeyStore.erases_with_the_batch``); nothing is pending.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import Mapper

from dispatch.domain.driver import Driver
from dispatch.domain.ids import shard_of
from dispatch.domain.place_queues import PlaceRow
from dispatch.domain.rider import Rider
from dispatch.matching.state import RideRow
from dispatch.privacy import Sealed, SubjectErased
from dispatch.shard.personal import Sealer, SealingMapper

log = logging.getLogger(__name__)


class SealingApplication(Application[UUID]):
    """An application whose stored personal fields are sealed by ``sealer`` (None: stored
    as they are, and nothing can be erased)."""

    sealer: Sealer | None = None
    shard: int

    def construct_mapper(self) -> Mapper[UUID]:
        if self.sealer is None:
            return super().construct_mapper()
        factory = self.factory
        return SealingMapper(
            self.construct_transcoder(),
            factory.compressor(),
            factory.cipher(),
            sealer=self.sealer,
        )

    def open_personal(self, value: Any, field: str) -> Any:
        """A sealed value of this shard's log opened (docs/PRIVACY.md), or ``ERASED``."""
        return value if self.sealer is None else self.sealer.personal.open(value, field)

    def seal_ride(self, row: RideRow, field: str = "pickup") -> RideRow:
        """A matcher checkpoint's ride row (the ride's id first, then a place's lat and
        lng: its ``field``) with the place sealed under the ride's rider's key (the row as it
        is without a sealer)."""
        if self.sealer is None or row[1] is None or isinstance(row[1], Sealed):
            return row  # (None: erased already)
        rider: UUID = self.repository.get(UUID(row[0])).rider_id
        try:
            key = self.sealer.key(rider)
        except SubjectErased:  # a ride of an erased rider has ended: nothing to keep
            return (row[0], None, 0.0, *row[3:])
        token = self.sealer.personal.seal(key, field, [row[1], row[2]])
        return (row[0], token, 0.0, *row[3:])

    def seal_place(self, row: PlaceRow) -> PlaceRow | None:
        """A matcher checkpoint's place row (place, driver, entered, queued) with the place
        sealed under the driver's key (the row as it is without a sealer); None when the
        driver is erased (it is inside no place: the row is left out)."""
        if self.sealer is None or isinstance(row[0], Sealed):
            return row
        try:
            key = self.sealer.key(UUID(row[1]))
        except SubjectErased:
            return None
        return (self.sealer.personal.seal(key, "place", row[0]), *row[1:])

    # -- erasure -----------------------------------------------------------------------------
    def erasing(self, journal: list[Any]) -> list[UUID]:
        """The subjects a batch erases, their erasure pending in the key store when it
        is not part of the batch's own transaction (embedded: step 1)."""
        subjects = [e.originator_id for e in journal if isinstance(e, Rider.Erased | Driver.Erased)]
        if subjects:
            if self.sealer is None:
                raise RuntimeError("an erasure without a sealer: nothing would be erased")
            keys = self.sealer.personal.keys
            if not keys.erases_with_the_batch():
                keys.pend_erasures(subjects)
        return subjects

    def erase_in_batch(self, subjects: list[UUID]) -> None:
        """On Kafka, the keys' erasure sent in the batch's transaction, after its events
        (a failure fails the batch); embedded, nothing yet (``erase_after``)."""
        if subjects and self._keys_erased_with_the_batch():
            for subject in subjects:
                self.sealer.erase(subject)  # type: ignore[union-attr]

    def erase_after(self, subjects: list[UUID]) -> None:
        """Embedded, step 3: the keys deleted once the batch is saved. A failure is
        logged, not raised (the batch is saved: the subject is erased in the log), and
        ``finish_erasures`` deletes the key at the next start."""
        if not subjects or self._keys_erased_with_the_batch():
            return
        for subject in subjects:
            try:
                self.sealer.erase(subject)  # type: ignore[union-attr]
            except Exception:
                log.exception("key of erased %s not deleted yet: deleted at next start", subject)

    def finish_erasures(self) -> int:
        """At start: each pending erasure of a subject of this shard finished (its key
        deleted) when the log records it, dropped when it does not. Returns how many keys
        were deleted."""
        if self.sealer is None:
            return 0
        keys, deleted = self.sealer.personal.keys, 0
        for subject in keys.pending_erasures():
            if shard_of(subject) != self.shard:
                continue
            try:
                erased = bool(getattr(self.repository.get(subject), "erased", False))
            except AggregateNotFoundError:
                erased = False
            if erased:
                self.sealer.erase(subject)
                deleted += 1
                log.warning("erasure of %s finished at start: its key deleted", subject)
            else:
                keys.drop_pending(subject)
                log.warning("erasure of %s was not recorded: nothing erased", subject)
        return deleted

    def _keys_erased_with_the_batch(self) -> bool:
        return self.sealer is not None and self.sealer.personal.keys.erases_with_the_batch()
