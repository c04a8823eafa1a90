"""Shard checkpoints: the folded state a shard restores from instead of its whole log.

A checkpoint is taken at a log position P, the last event of a committed batch: the
matcher's folded state is captured then (``matching.state.capture``, a copy cheap enough
for any batch) and written as *chunks* of at most ``chunk_rows`` rows, one chunk in each
following batch that saves events, in that batch's own transaction. A checkpoint is
complete once its last chunk is stored; restore takes the newest complete one whose chunks
all read back intact (format, sequence, checksum), loads it into a fresh matcher and folds
only the events after P. A checkpoint cut short (a crash, a failed batch) is never
complete, so it is never used; one that is complete but damaged is skipped for the one
before it, or for a full replay, and the log says which.

A checkpoint may also carry the shard's live aggregates (``shard.live``: drivers, riders,
unended and recently ended rides, command records within the idempotency window), each as
its snapshot, so that a store which keeps no file of its own (Kafka) restores only the log's
tail after the checkpoint. Those snapshots are *fuzzy*: each is taken when its chunk is
written, at the aggregate's version then (at or after the checkpoint's position), and the
aggregate is rebuilt from it plus its events in the tail with a later version, exactly as a
repository rebuilds any aggregate from a snapshot. Which aggregates go in is fixed at the
position. The snapshot bytes are the library's stored snapshot state, loaded into the
store untouched and decoded only when a command or decision names the aggregate. On SQLite,
where aggregates are read from the shard's file, checkpoints carry no aggregates.
"""

from __future__ import annotations

import logging
import zlib
from base64 import b64decode, b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Protocol
from uuid import UUID

import orjson

from dispatch.domain.place_queues import PlaceRow
from dispatch.matching.matcher import Matcher
from dispatch.matching.state import (
    Captured,
    DriverRow,
    OfferRow,
    PlanRow,
    RideRow,
    ScheduledRow,
    SharingRow,
    VehicleRow,
    capture,
    driver_row,
    load,
    offer_row,
    ride_row,
    scheduled_row,
    vehicle_row,
)
from dispatch.privacy import Opener, as_is

PICKUP, DROPOFF = "pickup", "dropoff"  # the sealed places' names

log = logging.getLogger(__name__)

# A ride's row (its id, then a place's lat and lng) with that place sealed, named by the
# second argument ("pickup" or "dropoff").
SealRide = Callable[[tuple[Any, ...], str], tuple[Any, ...]]
# Seals a place row's place under its driver's key; None: the driver is erased (no row).
SealPlace = Callable[[PlaceRow], PlaceRow | None]

# 2: may carry aggregates (format 1, the matcher's state only, still reads). 3: a
# "vehicles" part and ride rows of 7 fields (the product last); formats 1 and 2 still read
# (no vehicles part: every driver then drove the default vehicle; 6-field rides: standard).
# A version that knows only formats 1 and 2 skips a format-3 checkpoint as unusable
# (README.md, "Upgrading"). 4: a "places" part (who is inside each geofenced place, and
# the queues); formats 1 to 3 still read (no places part: nobody inside any place, as
# there were no places). A version that knows only formats 1 to 3 skips a format-4 one.
# 5: a "scheduled" part (booked rides not yet dispatched) and a scheduled ride's row with
# its time and overdue flag (9 fields); formats 1 to 4 still read (no scheduled rides).
# 6: "sharing" and "plans" parts (shared rides' terms, drivers' shared plans); formats 1
# to 5 still read (no shared rides). A version that knows only formats 1 to 5 skips it.
FORMAT = 6
FORMATS = frozenset({1, 2, 3, 4, 5, 6})
PARTS = (
    "drivers", "vehicles", "places", "pending", "offers", "assigned", "scheduled", "sharing",
    "plans", "surge", "aggregates", "live",
)  # fmt: skip
# The surge window's requests go this many to a row.
SURGE_A_ROW = 2_000
# Live aggregates carried without their state (SQLite) go this many to a row.
LIVE_IDS_A_ROW = 2_000
# At most this many aggregate snapshots a chunk: each is taken when its chunk is made,
# between two batches, at some tens of microseconds apiece.
AGGREGATE_ROWS = 250
# At most this many bytes a chunk: a Kafka record must stay under the producer's and the
# broker's 1 MiB limits, and a batch carries one chunk.
CHUNK_BYTES = 512 * 1024


class CheckpointStore(Protocol):
    """Where a shard's checkpoints are read back from (their chunks are written with the
    batches' events, by the store's recorder). A port: ``dispatch.ports`` lists it."""

    def checkpoint_positions(self) -> list[int]:
        """The log positions of the complete checkpoints, newest first."""
        ...

    def checkpoint_chunks(self, position: int) -> list[Chunk]:
        """The stored chunks of the checkpoint at ``position``."""
        ...


# A live aggregate (``shard.live``): its id, kind, and since when (ended or recorded at).
LiveRow = tuple[UUID, str, float]
# A stored snapshot of a live aggregate: its version, topic and state bytes.
Snapshot = tuple[int, str, bytes]
# id, kind (``shard.live``), since, version, topic, state (text, or base64 when "b64")
AggregateRow = tuple[str, str, float, int, str, str, str]


class AggregateSource(Protocol):
    """The shard's live aggregates, for a checkpoint that carries them."""

    def live_rows(self) -> list[LiveRow]:
        """The live aggregates now (fixed when a checkpoint begins)."""
        ...

    def snapshot(self, aggregate_id: UUID) -> Snapshot | None:
        """The aggregate's snapshot now (None if it does not exist, or if this store
        needs only the list of live aggregates)."""
        ...


@dataclass(frozen=True, slots=True)
class Chunk:
    """One stored part of the checkpoint at ``position``."""

    position: int
    seq: int
    last: bool
    data: bytes
    crc: int


class CheckpointError(Exception):
    """A checkpoint that cannot be used, and why."""


@dataclass(frozen=True, slots=True)
class Restored:
    position: int
    last_event_time: float
    taken_at: float
    drivers: list[DriverRow]
    pending: list[RideRow]
    offers: list[OfferRow]
    assigned: list[RideRow]
    aggregates: list[AggregateRow] | None = None  # None: a checkpoint without aggregates
    live: list[list[tuple[str, str, float]]] | None = None  # live aggregates without state
    surge: list[tuple[str, float]] | None = None  # the surge window (None: not carried)
    # the drivers' vehicles other than the default (none before vehicles: all default)
    vehicles: list[VehicleRow] = field(default_factory=list)
    # who is inside each geofenced place, the queues (none before places: nobody)
    places: list[PlaceRow] = field(default_factory=list)
    # booked rides not yet dispatched (none before scheduled rides)
    scheduled: list[ScheduledRow] = field(default_factory=list)
    # shared rides' terms and drivers' shared plans (none before shared rides)
    sharing: list[SharingRow] = field(default_factory=list)
    plans: list[PlanRow] = field(default_factory=list)

    def live_rows(self) -> list[LiveRow]:
        rows = [(UUID(r[0]), r[1], float(r[2])) for r in self.aggregates or ()]
        for listed in self.live or ():
            rows.extend((UUID(i), kind, float(since)) for i, kind, since in listed)
        return rows

    def live_listed(self) -> list[list[tuple[str, str, float]]]:
        """The live aggregates as a checkpoint without their state lists them (their ids
        as text, not parsed)."""
        listed = [[(r[0], r[1], float(r[2])) for r in self.aggregates or ()]]
        return listed + [list(rows) for rows in self.live or ()]

    def snapshots(self) -> Iterator[tuple[str, Snapshot]]:
        """Each carried aggregate's id (as text, as the store keys it) and stored
        snapshot."""
        for row in self.aggregates or ():
            aggregate_id, _, _, version, topic, state, encoding = row
            data = b64decode(state) if encoding == "b64" else state.encode()
            yield aggregate_id, (int(version), topic, data)


class CheckpointWriter:
    """Starts a checkpoint every ``every_events`` events and hands out its chunks.

    With ``aggregates``, each checkpoint also carries the live aggregates' snapshots."""

    def __init__(
        self,
        every_events: int,
        chunk_rows: int = 10_000,
        aggregates: AggregateSource | None = None,
        seal_ride: SealRide | None = None,
        seal_place: SealPlace | None = None,
    ) -> None:
        if every_events < 0 or chunk_rows < 1:
            raise ValueError("every_events must be >= 0 (0: never) and chunk_rows >= 1")
        self.every_events, self.chunk_rows = every_events, chunk_rows
        self.aggregates = aggregates
        # Seal a ride row's pickup and a place row's place (docs/PRIVACY.md); None: rows
        # in the clear.
        self.seal_ride, self.seal_place = seal_ride, seal_place
        self.since = 0  # events committed since the last checkpoint began
        self.written = 0  # complete checkpoints written by this writer
        self._chunks: Iterator[Chunk] | None = None
        self._next: Chunk | None = None
        # The next chunk is due but not encoded yet: it is encoded (its rows sealed, which
        # may make a subject's key) by ``next_chunk``, inside the batch that saves it, never
        # after a commit (a key made then would be sent outside any transaction).
        self._due = False

    @property
    def in_progress(self) -> bool:
        return self._next is not None or self._due

    def next_chunk(self) -> Chunk | None:
        """The chunk to save with the next batch (the same one until it is committed);
        encoded at the first call after the previous one was committed."""
        if self._due:
            self._due = False
            self._next = next(self._chunks or iter(()), None)
        return self._next

    def committed(
        self,
        chunk: Chunk | None,
        events: int,
        position: int,
        matcher: Matcher,
        last_event_time: float,
        now: float,
    ) -> None:
        """A batch is durable: ``chunk`` went with it (or None), ``events`` were saved and
        the log ends at ``position``; the matcher has folded all of them."""
        if chunk is not None and chunk is self._next:
            if chunk.last:
                self.written += 1
            self._next, self._due = None, not chunk.last
        self.since += events
        if self.every_events and not self.in_progress and self.since >= self.every_events:
            self.since = 0
            source = self.aggregates
            self._chunks = encode_chunks(
                capture(matcher), position, last_event_time, now, self.chunk_rows,
                aggregates=None if source is None else _snapshot_rows(source),
                seal_ride=self.seal_ride, seal_place=self.seal_place,
            )  # fmt: skip
            self._due = True

    def abandon(self) -> None:
        """A batch was lost: the checkpoint in progress is dropped (the next starts anew)."""
        self._chunks, self._next, self._due = None, None, False

    def restored(self, events_after_checkpoint: int) -> None:
        self.since = events_after_checkpoint


def encode_chunks(
    state: Captured,
    position: int,
    last_event_time: float,
    now: float,
    rows: int,
    max_bytes: int = CHUNK_BYTES,
    aggregates: Iterator[tuple[str, Any]] | None = None,
    seal_ride: SealRide | None = None,
    seal_place: SealPlace | None = None,
) -> Iterator[Chunk]:
    """The checkpoint of ``state`` (captured at ``position``) as chunks of at most ``rows``
    rows (``AGGREGATE_ROWS`` aggregates) and ``max_bytes`` bytes (a single larger row makes
    a chunk of its own), encoded one at a time as they are asked for. ``aggregates``, made
    lazily too (``(part, row)``: "aggregates" rows with a snapshot, "live" rows listing
    aggregates without), go last."""
    seal: SealRide = seal_ride or (lambda row, field: row)
    sealed_places = (seal_place(row) if seal_place else row for row in state.places)
    items: Iterator[tuple[str, Any]] = chain(  # rows are built a chunk at a time
        (("drivers", driver_row(d)) for d in state.drivers.items()),
        (("vehicles", vehicle_row(v)) for v in state.vehicles.items()),
        (("places", row) for row in sealed_places if row is not None),
        (("pending", seal(ride_row(r), PICKUP)) for r in state.pending),
        (("offers", (seal(o[0], PICKUP), o[1], o[2])) for o in map(offer_row, state.offers)),
        (("assigned", seal(ride_row(r), PICKUP)) for r in state.assigned),
        (("scheduled", (seal(row, PICKUP), a)) for row, a in map(scheduled_row, state.scheduled)),
        (("sharing", seal(row, DROPOFF)) for row in state.sharing),
        (("plans", row) for row in state.plans),
        (("surge", rows) for rows in _batched(state.surge or [], SURGE_A_ROW)),
        aggregates or iter(()),
    )
    header = orjson.dumps(
        {
            "format": FORMAT,
            "position": position,
            "last_event_time": last_event_time,
            "taken_at": now,
            "aggregates": aggregates is not None,
            "surge": state.surge is not None,
        }
    )
    budget = max_bytes - len(header) - 256  # the chunk's own keys and brackets
    seq, batch, size, snapshots = 0, list[tuple[str, bytes]](), 0, 0
    for part, row in items:
        encoded = orjson.dumps(row)
        full = len(batch) >= rows or snapshots >= AGGREGATE_ROWS
        if batch and (full or size + len(encoded) > budget):
            yield _chunk(position, seq, False, batch, header)
            seq, batch, size, snapshots = seq + 1, [], 0, 0
        batch.append((part, encoded))
        size += len(encoded) + 1
        snapshots += part == "aggregates"
    yield _chunk(position, seq, True, batch, header)


def _batched(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _snapshot_rows(source: AggregateSource) -> Iterator[tuple[str, Any]]:
    """The live aggregates' rows, each snapshot taken when its row is asked for; the set of
    aggregates is the one live now, when the checkpoint begins."""
    return _snapshots(source, source.live_rows())


def _snapshots(source: AggregateSource, live: list[LiveRow]) -> Iterator[tuple[str, Any]]:
    listed: list[tuple[str, str, float]] = []
    for aggregate_id, kind, since in live:
        snapshot = source.snapshot(aggregate_id)
        if snapshot is None:  # only named as live: its state is not carried
            listed.append((str(aggregate_id), kind, since))
            if len(listed) == LIVE_IDS_A_ROW:
                yield "live", listed
                listed = []
            continue
        version, topic, state = snapshot
        try:
            text, encoding = state.decode(), "text"
        except UnicodeDecodeError:  # a cipher or compressor: not text
            text, encoding = b64encode(state).decode(), "b64"
        yield "aggregates", (str(aggregate_id), kind, since, version, topic, text, encoding)
    if listed:
        yield "live", listed


def _chunk(
    position: int, seq: int, last: bool, rows: list[tuple[str, bytes]], header: bytes
) -> Chunk:
    """One chunk's JSON, put together from its rows' encodings (no second encoding)."""
    parts: dict[str, list[bytes]] = {}
    for part, encoded in rows:
        parts.setdefault(part, []).append(encoded)
    body = b",".join(b'"%s":[%s]' % (name.encode(), b",".join(r)) for name, r in parts.items())
    head = b'"header":%s,' % header if seq == 0 else b""
    data = b'{"position":%d,"seq":%d,%s"parts":{%s}}' % (position, seq, head, body)
    return Chunk(position, seq, last, data, zlib.crc32(data))


def assemble(position: int, chunks: list[Chunk]) -> Restored:
    """The checkpoint at ``position`` from its stored chunks; CheckpointError if any is
    missing, out of sequence, damaged or of another format."""
    if not chunks:
        raise CheckpointError("no chunks")
    chunks = sorted(chunks, key=lambda c: c.seq)
    if [c.seq for c in chunks] != list(range(len(chunks))):
        raise CheckpointError(f"chunks {[c.seq for c in chunks]} are not 0..{len(chunks) - 1}")
    if not chunks[-1].last or any(c.last for c in chunks[:-1]):
        raise CheckpointError("the last chunk is missing")
    parts: dict[str, list[Any]] = {name: [] for name in PARTS}
    header: dict[str, Any] = {}
    for c in chunks:
        if c.position != position or zlib.crc32(c.data) != c.crc:
            raise CheckpointError(f"chunk {c.seq} is damaged (checksum or position)")
        try:
            body = orjson.loads(c.data)
            if c.seq == 0:
                header = body["header"]
                if header.get("format") not in FORMATS:  # before its parts: say what it is
                    raise CheckpointError(f"unknown format in header {header!r}")
            for name, rows in body["parts"].items():
                parts[name].extend(rows)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"chunk {c.seq} does not decode: {e!r}") from e
    if header.get("format") not in FORMATS or header.get("position") != position:
        raise CheckpointError(f"unknown format or position in header {header!r}")
    return Restored(
        position,
        float(header["last_event_time"]),
        float(header["taken_at"]),
        parts["drivers"],
        parts["pending"],
        parts["offers"],
        parts["assigned"],
        parts["aggregates"] if header.get("aggregates") else None,
        parts["live"] if header.get("aggregates") else None,
        [(c, float(t)) for rows in parts["surge"] for c, t in rows]
        if header.get("surge")
        else None,
        parts["vehicles"],
        parts["places"],
        parts["scheduled"],
        parts["sharing"],
        parts["plans"],
    )


def restore_matcher(
    store: CheckpointStore,
    factory: Callable[[], Matcher],
    log_end: int,
    shard: int,
    floor: int = 0,
    open: Opener = as_is,
) -> tuple[Matcher, Restored | None]:
    """A fresh matcher holding the newest complete checkpoint that lies within the log
    (``log_end``: its last position), reads back intact and loads; or an empty one (the
    caller then folds the whole log). Each checkpoint passed over is logged with the
    reason; a store that cannot be read means a full replay, logged too.

    ``floor``: the shard's store holds only the events after this position (it was
    restored from the checkpoint there), so only a checkpoint at or after it will do, and
    finding none is a ``CheckpointError`` (there is no whole log to replay)."""
    try:
        positions = store.checkpoint_positions()
    except Exception as e:
        if floor:
            raise CheckpointError(f"checkpoints unreadable ({e!r})") from e
        log.warning("shard %s: checkpoints unreadable (%r); replaying the whole log", shard, e)
        return factory(), None
    for position in positions:
        if position > log_end or position < floor:
            log.warning(
                "shard %s: checkpoint at %s lies outside the log held (%s to %s); skipped",
                shard, position, floor, log_end,
            )  # fmt: skip
            continue
        matcher = factory()
        try:
            restored = assemble(position, store.checkpoint_chunks(position))
            load_into(matcher, restored, open)
            return matcher, restored
        except Exception as e:  # damaged, unreadable, or a state this code cannot load
            log.warning(
                "shard %s: checkpoint at %s is unusable (%s); trying an older one", shard,
                position, e,
            )  # fmt: skip
    if floor:
        raise CheckpointError(
            f"no usable checkpoint at or after {floor}, where the log held starts"
        )
    if positions:
        log.warning("shard %s: no usable checkpoint; replaying the whole log", shard)
    return factory(), None


def load_into(matcher: Matcher, restored: Restored, open: Opener = as_is) -> None:
    """``open``: how a sealed pickup is read (docs/PRIVACY.md)."""
    load(
        matcher, restored.pending, restored.offers, restored.assigned, restored.drivers,
        restored.surge, open, restored.vehicles, restored.places, restored.scheduled,
        restored.sharing, restored.plans,
    )  # fmt: skip
