"""The wire format of stored events and tracking records (Kafka record key and value).

A stored event is one record: key = the originator id (UTF-8 text, UUIDs in canonical
form), value = a JSON object any Kafka client can read, for example::

    {"originator_id":"0a1b…","originator_id_type":"uuid","originator_version":3,
     "topic":"dispatch.Ride.Requested","state_encoding":"json","state":{"timestamp":…}}

``state`` holds the library's serialised state byte for byte. When those bytes are a JSON
text (the default transcoder, no cipher, no compressor) they are embedded as they are, so
``kcat`` shows the event as nested JSON (``state_encoding`` = ``json``); any other bytes
(encrypted, compressed) are embedded as a base64 string (``state_encoding`` = ``base64``).
``state`` is always the last member, which lets the decoder slice the exact state bytes
back out and parse only the small header in front of them.

A tracking record: key = the upstream application name, value =
``{"application_name": …, "notification_id": …}``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from uuid import UUID

import orjson
from eventsourcing.persistence import DataError, StoredEvent, Tracking

_STATE_MEMBER = b',"state":'
_JSON_STARTS = frozenset(b'{["')


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    """A stored event as read from the log, before it becomes a ``StoredEvent``."""

    originator_key: str
    originator_is_uuid: bool
    originator_version: int
    topic: str
    state: bytes

    def originator_id(self) -> UUID | str:
        return UUID(self.originator_key) if self.originator_is_uuid else self.originator_key


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


def decode_event(value: bytes) -> DecodedEvent:
    """Read a record value written by ``encode_event``."""
    cut = value.find(_STATE_MEMBER)
    if cut < 0 or not value.endswith(b"}"):
        raise DataError(f"not a stored event record: {value[:80]!r}")
    try:
        header = orjson.loads(value[:cut] + b"}")
        state = value[cut + len(_STATE_MEMBER) : -1]
        if header["state_encoding"] == "base64":
            state = base64.b64decode(state[1:-1])
        return DecodedEvent(
            originator_key=header["originator_id"],
            originator_is_uuid=header["originator_id_type"] == "uuid",
            originator_version=int(header["originator_version"]),
            topic=header["topic"],
            state=bytes(state),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"bad stored event record: {e}: {value[:80]!r}") from e


def encode_tracking(tracking: Tracking) -> tuple[bytes, bytes]:
    value = {
        "application_name": tracking.application_name,
        "notification_id": tracking.notification_id,
    }
    return tracking.application_name.encode(), json.dumps(value, separators=(",", ":")).encode()


def decode_tracking(value: bytes) -> Tracking:
    try:
        data = json.loads(value)
        return Tracking(str(data["application_name"]), int(data["notification_id"]))
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"bad tracking record: {e}: {value[:80]!r}") from e


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
