"""Record values on the command, location, outcome and dead-letter topics.

- commands: key = target aggregate id, value = the ``CommandEnvelope`` JSON;
- locations: key = shard, value = ``{"pings": [[driver_id, lat, lng, at], ...]}``, a batch
  (batching many pings per record is what makes ingest fast). Nothing writes the formats
  from before batching (one ping object a record, pings as objects), so none is read: such
  a record, or such a ping, is poison with a reason that says what is expected;
- outcomes: key = command id, value = the ``Outcome`` JSON;
- dead letters: value = ``{"source", "position", "reason", "raw"}`` (raw as text or base64).

A value that cannot be decoded or validated becomes a ``Poison`` with the reason; the
valid pings of a batch are kept and only the bad ones are dead-lettered.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from uuid import UUID

import orjson
from pydantic import ValidationError

from dispatch.domain.geo import latlng_problem
from dispatch.messages import Ping, Poison
from schemas.commands import CommandEnvelope, Outcome

MAX_PINGS_PER_RECORD = 10_000


def encode_command(envelope: CommandEnvelope) -> tuple[bytes, bytes]:
    return str(envelope.target_id).encode(), envelope.model_dump_json().encode()


def decode_command(value: bytes | None, where: str) -> CommandEnvelope | Poison:
    if value is None:
        return Poison("commands", where, "empty record (no value)", b"")
    try:
        return CommandEnvelope.model_validate_json(value)
    except ValidationError as error:
        reason = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}"
            for e in error.errors()[:5]
        )
        return Poison("commands", where, f"invalid command: {reason}", value)


def encode_pings(pings: Sequence[Ping]) -> bytes:
    return orjson.dumps({"pings": [[str(p.driver_id), p.lat, p.lng, p.at] for p in pings]})


def _ping(item: object) -> Ping:
    if not isinstance(item, list) or len(item) != 4:
        raise ValueError("a ping is [driver_id, lat, lng, at]")
    driver, lat, lng, at = item
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lng, at)):
        raise ValueError("lat, lng and at must be numbers")
    problem = latlng_problem(lat, lng)
    if problem is not None:
        raise ValueError(problem)
    if not math.isfinite(at):
        raise ValueError("at must be a finite number of seconds")
    return Ping(UUID(str(driver)), float(lat), float(lng), float(at))


def decode_pings(value: bytes | None, where: str) -> tuple[list[Ping], list[Poison]]:
    if value is None:
        return [], [Poison("locations", where, "empty record (no value)", b"")]
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        return [], [Poison("locations", where, f"not JSON: {error}", value)]
    if not isinstance(doc, dict) or "pings" not in doc:
        reason = 'not a batch of pings: a record is {"pings": [[driver_id, lat, lng, at], ...]}'
        return [], [Poison("locations", where, reason, value)]
    items = doc["pings"]
    if not isinstance(items, list) or len(items) > MAX_PINGS_PER_RECORD:
        reason = f"pings must be a list of at most {MAX_PINGS_PER_RECORD}"
        return [], [Poison("locations", where, reason, value)]
    pings, bad = [], []
    for i, item in enumerate(items):
        try:
            pings.append(_ping(item))
        except (ValueError, TypeError) as error:
            bad.append(
                Poison("locations", f"{where}#{i}", f"invalid ping: {error}", orjson.dumps(item))
            )
    return pings, bad


def encode_outcome(outcome: Outcome) -> tuple[bytes, bytes]:
    return outcome.command_id.encode(), outcome.model_dump_json().encode()


def decode_outcome(value: bytes) -> Outcome:
    return Outcome.model_validate_json(value)


def encode_dead_letter(poison: Poison) -> bytes:
    try:
        raw: str = poison.raw.decode()
        encoding = "utf-8"
    except UnicodeDecodeError:
        raw, encoding = base64.b64encode(poison.raw).decode(), "base64"
    return orjson.dumps(
        {
            "source": poison.source,
            "position": poison.position,
            "reason": poison.reason,
            "raw": raw,
            "raw_encoding": encoding,
        }
    )
