"""Rebuild one aggregate from its stored events with the domain's own classes."""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum
from typing import Any

from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    UUIDAsHex,
)

# Importing the aggregates registers their stable topics.
from dispatch.domain import command_record, credentials, driver, ride, rider  # noqa: F401


def make_mapper() -> Mapper[Any]:
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DatetimeAsISO(), DecimalAsStr()):
        transcoder.register(transcoding)
    return Mapper(transcoder=transcoder)


def public_state(aggregate: Any) -> dict[str, Any]:
    """The aggregate's fields, as plain values, without the library's bookkeeping."""
    out: dict[str, Any] = {}
    for key, value in vars(aggregate).items():
        if key in ("_pending_events",):
            continue
        name = key.lstrip("_")
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, list):
            value = [str(v) for v in value]
        elif not isinstance(value, str | int | float | bool | type(None)):
            value = str(value)
        out[name] = value
    return out


def replay_states(stored: list[StoredEvent]) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Each domain event of one aggregate with the aggregate's state after it."""
    mapper = make_mapper()
    aggregate: Any = None
    for record in stored:
        event: Any = mapper.to_domain_event(record)
        aggregate = event.mutate(aggregate)
        yield event, public_state(aggregate)
