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
from dispatch.shard.personal import Sealer, SealingMapper


def make_mapper(sealer: Sealer | None = None) -> Mapper[Any]:
    """The library's mapper; with ``sealer``, sealed personal fields opened (erased ones
    read as the shard application reads them: docs/PRIVACY.md)."""
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DatetimeAsISO(), DecimalAsStr()):
        transcoder.register(transcoding)
    if sealer is None:
        return Mapper(transcoder=transcoder)
    return SealingMapper(transcoder, sealer=sealer)


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


def replay_states(
    stored: list[StoredEvent], sealer: Sealer | None = None
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Each domain event of one aggregate with the aggregate's state after it (``sealer``:
    opens sealed personal fields; it never makes a key)."""
    mapper = make_mapper(sealer)
    aggregate: Any = None
    for record in stored:
        event: Any = mapper.to_domain_event(record)
        aggregate = event.mutate(aggregate)
        yield event, public_state(aggregate)
