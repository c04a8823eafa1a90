"""The event log as readers see it: plain decoded records, no domain classes involved.

Projections, ``replay`` and the log checker read ``LogEvent``s. Decoding is one orjson
parse per event (no topic resolution, no dataclass construction), which is what lets a
replay run at hundreds of thousands of events a second. The JSON shapes are published in
``schemas/events`` (see docs/EVENTS.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import orjson
from eventsourcing.persistence import StoredEvent

TOPIC_PREFIX = "dispatch."


@dataclass(frozen=True, slots=True)
class LogEvent:
    shard: int
    position: int
    aggregate_id: str
    version: int
    topic: str
    at: float
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        """The topic without its prefix, e.g. ``Ride.Offered``."""
        return (
            self.topic[len(TOPIC_PREFIX) :] if self.topic.startswith(TOPIC_PREFIX) else self.topic
        )

    @property
    def where(self) -> str:
        return f"{self.shard}:{self.position}"

    def as_json(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "position": self.position,
            "aggregate_id": self.aggregate_id,
            "version": self.version,
            "type": self.topic,
            "at": datetime.fromtimestamp(self.at, UTC).isoformat(),
            "data": self.data,
        }


class StoredNotification(Protocol):
    @property
    def originator_id(self) -> Any: ...
    @property
    def originator_version(self) -> int: ...
    @property
    def topic(self) -> str: ...
    @property
    def state(self) -> bytes: ...
    @property
    def id(self) -> int: ...


_WRAPPED = b'"_type_"'


def decode_state(state: bytes) -> dict[str, Any]:
    """The library's JSON with its type wrappers (datetimes, UUIDs) flattened to strings."""
    raw: dict[str, Any] = orjson.loads(state)
    if state.count(_WRAPPED) == 1:  # the common case: only the timestamp is wrapped
        raw["timestamp"] = raw["timestamp"]["_data_"]
        return raw
    return flatten(raw)


def flatten(raw: dict[str, Any]) -> dict[str, Any]:
    """Replace the library's ``{"_type_": ..., "_data_": ...}`` wrappers by their data."""
    for key, value in raw.items():
        if value.__class__ is dict and "_type_" in value:
            raw[key] = value["_data_"]
    return raw


_LAST_TIME: list[Any] = ["", 0.0]


def _epoch(iso: str) -> float:
    """``parse_time`` for the replay path. A batch's events all carry the worker's clock
    of that batch, so the last conversion is kept and reused while it matches."""
    last = _LAST_TIME
    if iso != last[0]:
        last[0], last[1] = iso, datetime.fromisoformat(iso).timestamp()
    value: float = last[1]
    return value


def parse_time(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


_CANONICAL: dict[Any, str] = {}


def canonical_id(value: Any) -> str:
    """Ids as the 36-character UUID form, whatever form the store keeps them in.

    Aggregates have several events each, so the conversions are remembered (bounded)."""
    if value.__class__ is str and len(value) == 36:
        return str(value)
    found = _CANONICAL.get(value)
    if found is not None:
        return found
    text = value if isinstance(value, str) else str(value)
    if len(text) == 32:
        text = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    if len(_CANONICAL) >= 1_000_000:
        _CANONICAL.clear()
    _CANONICAL[value] = text
    return text


def decode(notification: StoredNotification, shard: int) -> LogEvent:
    return decode_fields(
        shard,
        notification.id,
        notification.originator_id,
        notification.originator_version,
        notification.topic,
        notification.state,
    )


def decode_fields(
    shard: int, position: int, originator_id: Any, version: int, topic: str, state: bytes
) -> LogEvent:
    """``decode`` for callers that hold the fields already (the fast replay path)."""
    return from_state(shard, position, originator_id, version, topic, decode_state(state))


def from_state(
    shard: int,
    position: int,
    originator_id: Any,
    version: int,
    topic: str,
    data: dict[str, Any],
) -> LogEvent:
    """A ``LogEvent`` from state already parsed and flattened."""
    at = _epoch(data.pop("timestamp"))
    data.pop("originator_topic", None)
    data.pop("class_version", None)
    return LogEvent(shard, position, canonical_id(originator_id), version, topic, at, data)


class LogSource(ABC):
    """The log-source port: a log of shards, each read from a position (exclusive) on.

    Projections, replay and the API read the log through this and nothing else. Adapters:
    the embedded log's shard files (``adapters.sqlite``) and the events topic
    (``adapters.kafka``); ``tests/contract`` runs the same cases over both."""

    @abstractmethod
    def shards(self) -> list[int]:
        """The log's shards, in order."""

    @abstractmethod
    def read(self, shard: int, after: int = 0) -> Iterator[LogEvent]:
        """The shard's events after position ``after``, in log order: what was committed
        when the read started (a source that follows a live log may stop at a fetch that
        brings nothing; the next read goes on from the last position read)."""

    def read_pages(self, shard: int, after: int = 0) -> Iterator[list[LogEvent]]:
        """``read`` in pages (lists in log order), for folds that apply a page at a time.
        An adapter that fetches in pages yields its own."""
        return pages(self.read(shard, after), PAGE)

    def set_read_patience(self, seconds: float) -> None:
        """How long a ``read`` that may stop short waits for fetches that bring nothing
        before it stops (a source whose reads always go to the end has nothing to wait for,
        and ignores it)."""
        return None

    def reached_end(self, shard: int) -> bool:
        """Whether the last ``read`` of ``shard``, iterated to its last event, went as far
        as the end the shard had when that read began: then every event committed before
        it began was in it. A source whose reads always go to that end says True; one that
        may stop short (a follower's patience) says whether this one did."""
        return True

    @abstractmethod
    def head(self, shard: int) -> int | None:
        """The shard's last position (0 when it is empty), or None when the source cannot
        tell without reading the shard (readiness and tokens then do without it)."""

    def cut(self, shard: int) -> int | None:
        """A position that every event committed to the shard when it is asked is at or
        below, and every event committed later is above: where a read taken as of this
        moment stops (``replay verify`` takes one per shard before reading any). None: the
        source cannot tell (a read goes to its end). The head, where the source tells it."""
        return self.head(shard)

    @abstractmethod
    def stored_events(self, shard: int, aggregate_id: UUID) -> list[StoredEvent]:
        """One aggregate's stored events in version order (``replay history``); none for
        an aggregate or a shard the log does not have."""

    @abstractmethod
    def close(self) -> None:
        """Release what the source keeps open between reads; it may be read again after."""


PAGE = 1_000


def pages(events: Iterator[LogEvent], size: int) -> Iterator[list[LogEvent]]:
    """``events`` in lists of ``size`` (the last may be shorter)."""
    page: list[LogEvent] = []
    for event in events:
        page.append(event)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page
