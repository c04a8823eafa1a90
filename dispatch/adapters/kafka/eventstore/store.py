"""The local state store: one partition's stored events (or snapshots) in memory.

Rebuilt from the partition when a recorder starts, then kept up to date by the single writer.
Events are kept in columns (``array`` of ids, aggregate numbers, versions, topic numbers and
state end positions, plus one ``bytearray`` of all states), about 30 bytes an event plus its
state, and an index from aggregate to its rows in version order.

Rows the writer has produced into the open Kafka transaction are *pending*: they sit after
the committed rows and are visible only to the thread that owns that transaction (its reads
see its own writes, like a database session). ``commit()`` makes them committed rows;
``rollback()`` drops them and leaves the store as it was before the transaction.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from threading import Event, Lock, get_ident
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Notification, StoredEvent

from dispatch.adapters.kafka.eventstore.codec import DecodedEvent, originator_key


class _UUIDText(str):
    """A UUID aggregate id loaded from the log, made a ``UUID`` when first read: parsing
    every id at restore would cost more than the rest of loading, and most are never read."""

    __slots__ = ()


class EventTable:
    """Stored events of one partition with per-aggregate version index.

    ``monotonic`` (the events log): a new event's version must be greater than the last
    recorded version of its aggregate. Otherwise (snapshots): the version must not be present.
    """

    def __init__(self, *, monotonic: bool, floor: int = 0) -> None:
        """``floor``: the table holds only the events after this notification id (a
        restore from a checkpoint); the log's end is at least the floor."""
        self.monotonic = monotonic
        self.floor = floor
        self._lock = Lock()
        self._ids = array("q")
        self._agg = array("I")
        self._ver = array("q")
        self._topic = array("I")
        self._ends = array("Q")
        self._blob = bytearray()
        self._topics: list[str] = []
        self._topic_nums: dict[str, int] = {}
        self._agg_nums: dict[str, int] = {}
        self._agg_ids: list[UUID | str] = []
        self._agg_rows: list[array[int]] = []
        self._committed = 0
        self._committed_aggs = 0
        self._touched: set[int] = set()
        self._owner: int | None = None
        self.listeners: set[Event] = set()

    def __len__(self) -> int:
        return self._committed

    # -- restore -----------------------------------------------------------------------------
    def load_record(self, first_id: int, events: Sequence[DecodedEvent]) -> None:
        """Append the committed events of one record (at restore): ids from ``first_id`` on."""
        with self._lock:
            agg_nums, agg_rows, topic_nums = self._agg_nums, self._agg_rows, self._topic_nums
            ver, add_ver, add_agg, add_topic = (
                self._ver,
                self._ver.append,
                self._agg.append,
                self._topic.append,
            )
            ends, at, row = self._ends, len(self._blob), len(self._ids)
            for key, is_uuid, version, topic, state in events:
                agg = agg_nums.get(key)
                if agg is None:
                    agg = self._new_aggregate(key, _UUIDText(key) if is_uuid else key)
                topic_num = topic_nums.get(topic)
                if topic_num is None:
                    topic_num = self._new_topic(topic)
                add_ver(version)
                add_agg(agg)
                add_topic(topic_num)
                at += len(state)
                ends.append(at)
                rows = agg_rows[agg]
                if not rows or ver[rows[-1]] < version:
                    rows.append(row)
                else:
                    self._place_row(rows, row, version)
                row += 1
            self._ids.extend(range(first_id, first_id + len(events)))
            self._blob += b"".join([event.state for event in events])
            self._committed = len(self._ids)
            self._committed_aggs = len(self._agg_ids)

    # -- write path (the caller holds the shard's write lock) ---------------------------------
    def check(self, events: Sequence[StoredEvent]) -> None:
        """Raise ``IntegrityError`` if any event of the batch conflicts; change nothing."""
        with self._lock:
            seen: set[tuple[str, int]] = set()
            last: dict[str, int] = {}
            for e in events:
                key, v = originator_key(e.originator_id), e.originator_version
                if self.monotonic:
                    if key not in last:
                        last[key] = self._last_version(key)
                    conflict = v <= last[key]
                    last[key] = max(last[key], v)
                else:
                    conflict = (key, v) in seen or self._has_version(key, v)
                    seen.add((key, v))
                if conflict:
                    raise IntegrityError(f"stored event conflicts: {key} version {v}")

    def add_pending(self, events: Sequence[StoredEvent], ids: Sequence[int]) -> None:
        """Add a checked batch produced into the open transaction, with its notification ids."""
        with self._lock:
            self._owner = get_ident()
            for e, notification_id in zip(events, ids, strict=True):
                key = originator_key(e.originator_id)
                agg = self._agg_nums.get(key)
                if agg is None:
                    agg = self._new_aggregate(key, e.originator_id)
                self._touched.add(agg)
                self._append(notification_id, agg, e.originator_version, e.topic, e.state)

    def commit(self) -> None:
        with self._lock:
            changed = len(self._ids) > self._committed
            self._committed, self._committed_aggs = len(self._ids), len(self._agg_ids)
            self._touched.clear()
            self._owner = None
        if changed:
            for listener in list(self.listeners):
                listener.set()

    def rollback(self) -> None:
        with self._lock:
            n, aggs = self._committed, self._committed_aggs
            for agg in self._touched:
                if agg < aggs:
                    rows = self._agg_rows[agg]
                    self._agg_rows[agg] = array("q", (r for r in rows if r < n))
            for agg in range(aggs, len(self._agg_ids)):
                del self._agg_nums[originator_key(self._agg_ids[agg])]
            del self._agg_ids[aggs:], self._agg_rows[aggs:]
            for column in (self._ids, self._agg, self._ver, self._topic, self._ends):
                del column[n:]
            del self._blob[self._ends[-1] if n else 0 :]
            self._touched.clear()
            self._owner = None

    # -- reads ---------------------------------------------------------------------------------
    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        with self._lock:
            agg = self._agg_nums.get(originator_key(originator_id))
            if agg is None:
                return []
            visible = len(self._ids) if self._owner == get_ident() else self._committed
            rows, ver = self._agg_rows[agg], self._ver.__getitem__
            lo = 0 if gt is None else bisect_right(rows, gt, key=ver)
            hi = len(rows) if lte is None else bisect_right(rows, lte, key=ver)
            selected = [r for r in rows[lo:hi] if r < visible]
            if desc:
                selected.reverse()
            if limit is not None:
                selected = selected[:limit]
            return [self._stored_event(r) for r in selected]

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> list[Notification]:
        with self._lock:
            n = self._committed
            if start is None:
                i = 0
            elif inclusive_of_start:
                i = bisect_left(self._ids, start, 0, n)
            else:
                i = bisect_right(self._ids, start, 0, n)
            j = n if stop is None else bisect_right(self._ids, stop, 0, n)
            wanted = {self._topic_nums[t] for t in topics if t in self._topic_nums}
            if topics and not wanted:
                return []
            out: list[Notification] = []
            while i < j and len(out) < limit:
                if not wanted or self._topic[i] in wanted:
                    out.append(self._notification(i))
                i += 1
            return out

    def select_rows(
        self, start: int, limit: int, stop: int | None = None
    ) -> list[tuple[int, UUID | str, str, int]]:
        """The committed events from id ``start`` (to ``stop``), at most ``limit``, as
        ``(id, originator id, topic, row)``: no ``Notification`` made, no state copied
        (``row_notification`` makes one for a row). A fold's lean read."""
        with self._lock:
            n = self._committed
            i = bisect_left(self._ids, start, 0, n)
            j = n if stop is None else bisect_right(self._ids, stop, 0, n)
            j = min(j, i + max(limit, 0))
            ids, aggs, topic_nums, topics = self._ids, self._agg, self._topic, self._topics
            originator = self._originator_id
            return [(ids[r], originator(aggs[r]), topics[topic_nums[r]], r) for r in range(i, j)]

    def row_state(self, row: int) -> bytes:
        """The stored state of a committed row that ``select_rows`` listed."""
        with self._lock:
            return self._state(row)

    def row_notification(self, row: int) -> Notification:
        """The event of a committed row that ``select_rows`` listed."""
        with self._lock:
            return self._notification(row)

    def max_notification_id(self) -> int | None:
        with self._lock:
            if self._committed:
                return self._ids[self._committed - 1]
            return self.floor or None

    def listen(self, listener: Event) -> None:
        self.listeners.add(listener)

    def unlisten(self, listener: Event) -> None:
        self.listeners.discard(listener)

    # -- internals -------------------------------------------------------------------------------
    def _last_version(self, key: str) -> int:
        agg = self._agg_nums.get(key)
        rows = self._agg_rows[agg] if agg is not None else None
        return self._ver[rows[-1]] if rows else -(2**63)

    def _has_version(self, key: str, version: int) -> bool:
        agg = self._agg_nums.get(key)
        if agg is None:
            return False
        rows = self._agg_rows[agg]
        at = bisect_left(rows, version, key=self._ver.__getitem__)
        return at < len(rows) and self._ver[rows[at]] == version

    def _new_aggregate(self, key: str, originator_id: UUID | str) -> int:
        agg = len(self._agg_ids)
        self._agg_nums[key] = agg
        self._agg_ids.append(originator_id)
        self._agg_rows.append(array("q"))
        return agg

    def _new_topic(self, topic: str) -> int:
        topic_num = self._topic_nums[topic] = len(self._topics)
        self._topics.append(topic)
        return topic_num

    def _append(
        self, notification_id: int, agg: int, version: int, topic: str, state: bytes
    ) -> None:
        topic_num = self._topic_nums.get(topic)
        if topic_num is None:
            topic_num = self._new_topic(topic)
        row = len(self._ids)
        self._ids.append(notification_id)
        self._agg.append(agg)
        self._ver.append(version)
        self._topic.append(topic_num)
        self._blob += state
        self._ends.append(len(self._blob))
        rows = self._agg_rows[agg]
        if not rows or self._ver[rows[-1]] < version:
            rows.append(row)
        else:
            self._place_row(rows, row, version)

    def _place_row(self, rows: array[int], row: int, version: int) -> None:
        # Out of order (snapshots): keep the rows in version order, last write wins.
        at = bisect_left(rows, version, key=self._ver.__getitem__)
        if at < len(rows) and self._ver[rows[at]] == version:
            rows[at] = row
        else:
            rows.insert(at, row)

    def _state(self, row: int) -> bytes:
        start = self._ends[row - 1] if row else 0
        return bytes(self._blob[start : self._ends[row]])

    def _originator_id(self, agg: int) -> UUID | str:
        originator_id = self._agg_ids[agg]
        if originator_id.__class__ is _UUIDText:
            originator_id = self._agg_ids[agg] = UUID(originator_id)
        return originator_id

    def _stored_event(self, row: int) -> StoredEvent:
        return StoredEvent(
            originator_id=self._originator_id(self._agg[row]),
            originator_version=self._ver[row],
            topic=self._topics[self._topic[row]],
            state=self._state(row),
        )

    def _notification(self, row: int) -> Notification:
        return Notification(
            id=self._ids[row],
            originator_id=self._originator_id(self._agg[row]),
            originator_version=self._ver[row],
            topic=self._topics[self._topic[row]],
            state=self._state(row),
        )
