"""The wire format of stored events (Kafka record key, value and headers).

A stored event is a JSON object any Kafka client can read, for example::

    {"originator_id":"0a1b…","originator_id_type":"uuid","originator_version":3,
     "topic":"dispatch.Ride.Requested","state_encoding":"json","state":{"timestamp":…}}

Many events travel in one record (``encode_events``): one ``insert_events`` batch is one
record, or several when it is large (at most ``EVENTS_PER_RECORD`` events and about
``MAX_RECORD_BYTES`` of value each). Value = ``{"events":[<event>,<event>,…]}``, each
``<event>`` exactly the object above; key = the originator id of the record's first event
(the partition is always chosen explicitly, so the key routes nothing; it only keeps a
one-event record keyed as before). Header ``event-ends`` = a JSON list of the byte
positions in the value where each event ends, so a reader can slice every event's exact
state bytes back out without scanning the JSON. Records written before batching (the value
is one event, no ``"events"`` member) are still read, as a record of one event.

Notification ids: the event at index ``i`` of the record at offset ``o`` has id
``o * EVENTS_PER_RECORD + i + 1`` (``notification_id``; ``record_position`` is the inverse).
Ids rise strictly with log order, are contiguous within a record and leave gaps between
records (and where transaction markers take offsets). The first event of a log has id 1.

``state`` holds the library's serialised state byte for byte. When those bytes are a JSON
text (the default transcoder, no cipher, no compressor) they are embedded as they are, so
``kcat`` shows the event as nested JSON (``state_encoding`` = ``json``); any other bytes
(encrypted, compressed) are embedded as a base64 string (``state_encoding`` = ``base64``).
``state`` is always the last member, which lets the decoder slice the exact state bytes
back out and parse only the small header in front of them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, NamedTuple
from uuid import UUID

import orjson
from eventsourcing.persistence import DataError, StoredEvent

EVENTS_PER_RECORD = 4096
MAX_RECORD_BYTES = 512 * 1024
ENDS_HEADER = "event-ends"

_STATE_MEMBER = b',"state":'
_BATCH_OPEN = b'{"events":['
_BATCH_CLOSE = b"]}"
_JSON_STARTS = frozenset(b'{["')


class DecodedEvent(NamedTuple):
    """A stored event as read from the log, before it becomes a ``StoredEvent``."""

    originator_key: str
    originator_is_uuid: bool
    originator_version: int
    topic: str
    state: bytes

    def originator_id(self) -> UUID | str:
        return UUID(self.originator_key) if self.originator_is_uuid else self.originator_key


def notification_id(offset: int, index: int) -> int:
    """The notification id of the ``index``-th event of the events record at ``offset``."""
    return offset * EVENTS_PER_RECORD + index + 1


def record_position(notification_id: int) -> tuple[int, int]:
    """The inverse of ``notification_id``: ``(offset, index)`` of the event with that id.

    Any id >= 1 maps to a place in the log, whether or not an event sits there: a read
    "after id n" starts at the record at that offset and skips its events up to index.
    """
    offset, index = divmod(notification_id - 1, EVENTS_PER_RECORD)
    return offset, index


class EventRecord(NamedTuple):
    """One events record to produce: ``event_count`` events in one value."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    event_count: int


def originator_key(originator_id: UUID | str) -> str:
    """The text form of an originator id: the record key and the local index key."""
    return str(originator_id)


def encode_event(event: StoredEvent) -> tuple[bytes, bytes]:
    """Return the record (key, value) of a stored event."""
    key = originator_key(event.originator_id)
    header = {
        "originator_id": key,
        "originator_id_type": "uuid" if isinstance(event.originator_id, UUID) else "str",
        "originator_version": event.originator_version,
        "topic": event.topic,
    }
    if _is_json_text(event.state):
        encoding, state = "json", event.state
    else:
        encoding = "base64"
        state = b'"' + base64.b64encode(event.state) + b'"'
    header["state_encoding"] = encoding
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    return key.encode(), head[:-1] + _STATE_MEMBER + state + b"}"


def encode_events(events: Sequence[StoredEvent]) -> list[EventRecord]:
    """The records of one batch, in order: as few as the size limits allow."""
    records: list[EventRecord] = []
    chunk: list[bytes] = []
    first_key = b""
    size = len(_BATCH_OPEN) + len(_BATCH_CLOSE)
    for event in events:
        key, value = encode_event(event)
        if chunk and (len(chunk) == EVENTS_PER_RECORD or size + 1 + len(value) > MAX_RECORD_BYTES):
            records.append(_batch_record(first_key, chunk))
            chunk, size = [], len(_BATCH_OPEN) + len(_BATCH_CLOSE)
        if not chunk:
            first_key = key
        chunk.append(value)
        size += len(value) + 1
    if chunk:
        records.append(_batch_record(first_key, chunk))
    return records


def _batch_record(key: bytes, values: list[bytes]) -> EventRecord:
    ends: list[int] = []
    at = len(_BATCH_OPEN) - 1
    for value in values:
        at += 1 + len(value)  # the separator (the opening bracket for the first), the event
        ends.append(at)
    value = _BATCH_OPEN + b",".join(values) + _BATCH_CLOSE
    headers = [(ENDS_HEADER, orjson.dumps(ends))]
    return EventRecord(key, value, headers, len(values))


def is_batch(value: bytes) -> bool:
    """True if the record value holds ``{"events": [...]}`` (not one pre-batching event)."""
    return value.startswith(_BATCH_OPEN)


def decode_events(
    value: bytes, headers: Sequence[tuple[str, bytes]] | None = None
) -> list[DecodedEvent]:
    """Every event of an events record, in order (exact state bytes)."""
    if not is_batch(value):
        return [decode_event(value)]
    ends_text = next((v for k, v in headers or () if k == ENDS_HEADER), None)
    if ends_text is None:
        return _decode_events_by_scanning(value)
    try:
        return _decode_batch(value, orjson.loads(ends_text))
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise DataError(f"bad events record: {e}: {value[:80]!r}") from e


def _decode_batch(value: bytes, ends: list[int]) -> list[DecodedEvent]:
    # The restore path, per event only slicing: every event's header (the JSON in front of
    # its state) is cut out, and all headers are parsed by one orjson call as one array.
    if not ends:
        if value != _BATCH_OPEN + _BATCH_CLOSE:
            raise ValueError(f"{ENDS_HEADER} header does not match the record")
        return []
    starts = [len(_BATCH_OPEN), *[end + 1 for end in ends[:-1]]]
    find = value.find
    cuts = [find(_STATE_MEMBER, start, end) for start, end in zip(starts, ends, strict=True)]
    if (
        -1 in cuts
        or value[ends[-1] :] != _BATCH_CLOSE
        or any(value[end - 1] != 0x7D for end in ends)  # every event ends with "}"
    ):
        raise ValueError(f"{ENDS_HEADER} header does not match the record")
    heads = orjson.loads(
        b"[" + b"},".join([value[s:c] for s, c in zip(starts, cuts, strict=True)]) + b"}]"
    )
    if len(heads) != len(ends):
        raise ValueError(f"{ENDS_HEADER} header does not match the record")
    if any(head["state_encoding"] != "json" for head in heads):
        return [
            DecodedEvent(
                head["originator_id"],
                head["originator_id_type"] == "uuid",
                int(head["originator_version"]),
                head["topic"],
                _state(value, cut, end, head["state_encoding"]),
            )
            for head, cut, end in zip(heads, cuts, ends, strict=True)
        ]
    # All states are JSON text (the common case): the same, in the fastest form (a tuple
    # built directly, without the NamedTuple's Python-level constructor).
    skip, new = len(_STATE_MEMBER), tuple.__new__
    return [
        new(
            DecodedEvent,
            (
                head["originator_id"],
                head["originator_id_type"] == "uuid",
                head["originator_version"],
                head["topic"],
                value[cut + skip : end - 1],
            ),
        )
        for head, cut, end in zip(heads, cuts, ends, strict=True)
    ]


def _state(value: bytes, cut: int, end: int, encoding: str) -> bytes:
    state = value[cut + len(_STATE_MEMBER) : end - 1]
    return base64.b64decode(state[1:-1]) if encoding == "base64" else state


def _decode_events_by_scanning(value: bytes) -> list[DecodedEvent]:
    """A batch record without the ends header (copied by a tool that drops headers)."""
    try:
        text = value.decode()
        decoder = json.JSONDecoder()
        at, out = len(_BATCH_OPEN), []
        while text[at] != "]":
            _, end = decoder.raw_decode(text, at)
            out.append(decode_event(text[at:end].encode()))
            at = end + 1 if text[end] == "," else end
    except (ValueError, IndexError) as e:
        raise DataError(f"bad events record: {e}: {value[:80]!r}") from e
    return out


def event_documents(value: bytes) -> list[dict[str, Any]]:
    """The events of a record as parsed JSON objects (one parse), for readers that do not
    need exact state bytes (replay): a pre-batching record is a list of one."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise DataError(f"not an events record: {e}: {value[:80]!r}") from e
    events = doc.get("events") if isinstance(doc, dict) else None
    if events is None:
        return [doc]
    if not isinstance(events, list):
        raise DataError(f"bad events record: {value[:80]!r}")
    return events


def decode_event(value: bytes) -> DecodedEvent:
    """Read one event (the value written by ``encode_event``)."""
    return _decode_slice(value, 0, len(value))


def _decode_slice(value: bytes, start: int, end: int) -> DecodedEvent:
    cut = value.find(_STATE_MEMBER, start, end)
    if cut < 0 or value[end - 1 : end] != b"}":
        raise DataError(f"not a stored event: {value[start : start + 80]!r}")
    try:
        header = orjson.loads(value[start:cut] + b"}")
        state = value[cut + len(_STATE_MEMBER) : end - 1]
        if header["state_encoding"] == "base64":
            state = base64.b64decode(state[1:-1])
        return DecodedEvent(
            header["originator_id"],
            header["originator_id_type"] == "uuid",
            int(header["originator_version"]),
            header["topic"],
            bytes(state),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"bad stored event: {e}: {value[start : start + 80]!r}") from e


def _is_json_text(state: bytes) -> bool:
    # Only objects, arrays and strings: they delimit themselves, so no number or literal can
    # run into the closing brace. Parsing checks the whole text is one valid JSON value.
    if not state or state[0] not in _JSON_STARTS:
        return False
    try:
        orjson.loads(state)
    except orjson.JSONDecodeError:
        return False
    return True
