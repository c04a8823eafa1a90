"""Record values on the command, location, shard-messages, driver-availability, outcome
and dead-letter topics.

- commands: key = target aggregate id, value = the ``CommandEnvelope`` JSON;
- locations: key = shard, value = ``{"pings": [[driver_id, lat, lng, at], ...]}``, a batch
  (batching many pings per record is what makes ingest fast). Nothing writes the formats
  from before batching (one ping object a record, pings as objects), so none is read: such
  a record, or such a ping, is poison with a reason that says what is expected;
- shard-messages: one record per message or ack another shard sends the partition's shard,
  key = the sender shard (as text), value = ``{"message": Envelope.to_data()}`` (a body's
  personal fields sealed by a sealing worker: docs/PRIVACY.md) or
  ``{"ack": {"from": sender, "to": receiver, "upto": n}}``;
- driver-availability: key = driver id, value = ``{"leads_to": [event type, ...], "epoch":
  n}``, the availability event types that bring a driver to its state now at the shard
  that serves it (the partition's), and its tenure there (hand-offs so far; 0 if absent);
- outcomes: key = command id, value = the ``Outcome`` JSON;
- a command's and its outcome's record may have a ``traceparent`` header: the W3C trace
  context of the span that sent the command and of the one that applied it;
- dead letters: value = ``{"source", "position", "reason", "raw"}`` (raw as text or base64).

A value that cannot be decoded or validated becomes a ``Poison`` with the reason; the
valid pings of a batch are kept and only the bad ones are dead-lettered.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

import orjson
from pydantic import ValidationError

from dispatch.domain.command_record import CarriedRecord
from dispatch.domain.geo import latlng_problem
from dispatch.domain.products import Vehicle
from dispatch.logs import valid_traceparent
from dispatch.matching.matcher import DRIVER_AVAILABILITY_EVENTS
from dispatch.messages import Ping, Poison, destination
from dispatch.privacy import DamagedValue
from dispatch.sealed_commands import KEY_FIELD, CommandKeyGone, subject_of
from dispatch.sealed_commands import seals as seals_json
from dispatch.shard.crossing import MESSAGE_HANDLERS
from dispatch.shard.crossshard.messages import KINDS, Ack, Body, Envelope
from dispatch.shard.inbound import ForeignDriver
from schemas.commands import CommandEnvelope, Outcome, RequestRide
from schemas.common import VehicleData
from schemas.fares import FareTermsData

MAX_PINGS_PER_RECORD = 10_000
TRACEPARENT = "traceparent"  # the W3C trace context header
TRACEPARENT_BYTES = 55  # its length (version 00)
Headers = list[tuple[str, bytes]]
# A message body's personal fields sealed (kind, body -> body), or opened in place.
SealBody = Callable[[str, dict[str, Any]], dict[str, Any]]
# A command's JSON sealed for the shard that decides it; a sealed command's JSON opened in
# place (``dispatch.sealed_commands``).
SealCommand = Callable[[dict[str, Any], int], dict[str, Any]]
OpenCommand = Callable[[dict[str, Any]], None]
OpenBody = Callable[[str, dict[str, Any]], None]


def encode_command(
    envelope: CommandEnvelope, seal: SealCommand | None = None
) -> tuple[bytes, bytes]:
    """A command's record; with ``seal``, its personal fields sealed under a one-time key
    (``dispatch.sealed_commands``)."""
    # without alternates, the record is the one a worker of before them reads; so is a
    # request for a single ride (its sharing fields at their defaults: a shared ride's are
    # read by workers that know shared rides)
    left_out: dict[str, Any] = {}
    if not envelope.fingerprint_alternates:
        left_out["fingerprint_alternates"] = True
    command = envelope.command
    if isinstance(command, RequestRide) and not command.shared and command.seats == 1:
        left_out["command"] = {"shared": True, "seats": True}
    key = str(envelope.target_id).encode()
    if seal is None:
        return key, envelope.model_dump_json(exclude=left_out or None).encode()
    body = envelope.model_dump(mode="json", exclude=left_out or None)
    if not seals_json(body):
        return key, envelope.model_dump_json(exclude=left_out or None).encode()
    return key, orjson.dumps(seal(body, destination(envelope)))


def decode_command(value: bytes | None, where: str) -> CommandEnvelope | Poison:
    """A command's envelope, or the poison it is (a sealed one too: nothing to open it)."""
    decoded, _ = read_command(value, where, None)
    return decoded


def read_command(
    value: bytes | None, where: str, open_: OpenCommand | None
) -> tuple[CommandEnvelope | Poison, UUID | None]:
    """A command's envelope or the poison it is, and for a sealed command (one that names
    its key, ``dispatch.sealed_commands``) its key's subject, which the batch that decides
    or dead-letters it deletes. A sealed command is opened with ``open_``; one that does
    not open (its key known deleted, a field damaged) is poison with the reason (its raw,
    sealed, value dead-lettered), never a crash; one whose key is not visible (yet) raises
    ``KeyNotYetKnown`` (the caller reads it again, or gives up on it by its age). Without
    ``open_`` it is poison."""
    if value is None:
        return Poison("commands", where, "empty record (no value)", b""), None
    if f'"{KEY_FIELD}"'.encode() not in value:
        return _validated(lambda: CommandEnvelope.model_validate_json(value), value, where), None
    try:
        body = orjson.loads(value)
        subject = subject_of(body) if isinstance(body, dict) else None
    except (orjson.JSONDecodeError, CommandKeyGone) as error:
        return Poison("commands", where, f"invalid command: {error}", value), None
    if not isinstance(body, dict) or subject is None:
        return _validated(lambda: CommandEnvelope.model_validate_json(value), value, where), None
    if open_ is None:
        return Poison("commands", where, "a sealed command, and no key to open it", value), None
    try:
        open_(body)
    except CommandKeyGone as error:
        return Poison("commands", where, f"sealed command: {error}", value), subject
    return _validated(lambda: CommandEnvelope.model_validate(body), value, where), subject


def _validated(
    validate: Callable[[], CommandEnvelope], value: bytes, where: str
) -> CommandEnvelope | Poison:
    try:
        return validate()
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


SHARD_MESSAGES = "shard-messages"
_BETWEEN_SHARDS = (
    'a record is {"message": {"from", "to", "seq", "kind", "body"}} '
    'or {"ack": {"from", "to", "upto"}}'
)
_ID_FIELDS = frozenset({"ride", "rider", "driver"})  # body fields that hold aggregate ids


def encode_shard_message(message: Envelope, seal: SealBody | None = None) -> tuple[bytes, bytes]:
    """Key (the sender shard) and value of a message's record; its partition is the
    receiver. ``seal``: the body's personal fields sealed (docs/PRIVACY.md)."""
    data = message.to_data()
    if seal is not None:
        data["body"] = seal(data["kind"], data["body"])
    return str(message.sender).encode(), orjson.dumps({"message": data})


def encode_ack(ack: Ack) -> tuple[bytes, bytes]:
    """Key (the sender shard) and value of an ack's record; its partition is the receiver."""
    value = {"ack": {"from": ack.sender, "to": ack.receiver, "upto": ack.upto}}
    return str(ack.sender).encode(), orjson.dumps(value)


class _Bad(ValueError):
    """Why a shard-messages record cannot be used."""


def decode_shard_message(
    value: bytes | None, where: str, partition: int, open: OpenBody | None = None
) -> Envelope | Ack | Poison:
    """A record of the shard-messages topic read from ``partition`` (the receiver's): the
    message or ack it holds, or a ``Poison`` that says what is wrong (never an exception).
    ``open``: opens a body's sealed fields in place (a sealed one is a ``Poison`` without)."""
    if value is None:
        return Poison(SHARD_MESSAGES, where, "empty record (no value)", b"")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        return Poison(SHARD_MESSAGES, where, f"not JSON: {error}", value)
    try:
        if not isinstance(doc, dict) or len(doc) != 1 or not {"message", "ack"} & doc.keys():
            raise _Bad(f"not a message between shards: {_BETWEEN_SHARDS}")
        if "ack" in doc:
            return _ack(doc["ack"], partition)
        return _message(doc["message"], partition, open)
    except _Bad as error:
        return Poison(SHARD_MESSAGES, where, str(error), value)


def _fields(
    what: str, data: object, names: Sequence[str], optional: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``data``'s fields ``names``; one of ``optional`` it lacks takes its default there (a
    field added to a body later: a sender of the version before does not write it)."""
    if not isinstance(data, dict):
        raise _Bad(f"{what} must be an object with {', '.join(names)}")
    if optional:
        data = {**{k: v for k, v in optional.items() if k not in data}, **data}
    missing = [n for n in names if n not in data]
    if missing:
        raise _Bad(f"{what}: missing {', '.join(missing)}")
    extra = sorted(str(k) for k in data.keys() - set(names))
    if extra:
        raise _Bad(f"{what}: unexpected {', '.join(extra)}")
    return data


def _whole(what: str, value: object, least: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise _Bad(f"{what} must be a whole number of at least {least}, not {value!r}")
    return value


def _channel(what: str, data: dict[str, Any], partition: int) -> tuple[int, int]:
    sender = _whole(f"{what}.from", data["from"], 0)
    receiver = _whole(f"{what}.to", data["to"], 0)
    if receiver != partition:
        raise _Bad(f"{what} to shard {receiver} read from partition {partition}")
    if sender == receiver:
        raise _Bad(f"{what} from shard {sender} to itself")
    return sender, receiver


def _ack(data: object, partition: int) -> Ack:
    ack = _fields("ack", data, ("from", "to", "upto"))
    sender, receiver = _channel("ack", ack, partition)
    return Ack(sender, receiver, _whole("ack.upto", ack["upto"], 0))


def _message(data: object, partition: int, open: OpenBody | None = None) -> Envelope:
    message = _fields("message", data, ("from", "to", "seq", "kind", "body"))
    sender, receiver = _channel("message", message, partition)
    seq = _whole("message.seq", message["seq"], 1)
    kind_name = message["kind"]
    kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        raise _Bad(f"unknown kind {kind_name!r} (known: {', '.join(sorted(KINDS))})")
    if kind not in MESSAGE_HANDLERS:
        # Dead-lettered, not applied: the channel's next messages wait for it (the sender
        # sends it again until a version that handles it acknowledges it).
        raise _Bad(f"kind {kind_name} is not handled by this version")
    if open is not None and isinstance(message["body"], dict):
        try:
            open(kind_name, message["body"])
        except DamagedValue as error:
            raise _Bad(f"{kind_name} body: {error}") from None
    return Envelope(sender, receiver, seq, _body(kind, message["body"]))


# Each body's field names, in order, their types, and the defaults of those that have one
# (as read from the wire: a list for a tuple).
_SCHEMAS: dict[type, tuple[tuple[str, ...], dict[str, Any], dict[str, Any]]] = {
    kind: (
        tuple(f.name for f in dataclasses.fields(kind)),
        typing.get_type_hints(kind),
        {
            f.name: list(f.default) if isinstance(f.default, tuple) else f.default
            for f in dataclasses.fields(kind)
            if f.default is not dataclasses.MISSING
        },
    )
    for kind in KINDS.values()
}


def _body(kind: type[Body], data: object) -> Body:
    names, hints, defaults = _SCHEMAS[kind]
    body = _fields(f"{kind.__name__} body", data, names, defaults)
    values = {name: _typed(f"{kind.__name__}.{name}", body[name], hints[name]) for name in names}
    return kind(**values)


_RECORDS = tuple[CarriedRecord, ...]  # a HandOff's command records
_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(CarriedRecord))
_RECORD_HINTS = typing.get_type_hints(CarriedRecord)


def _records(what: str, value: Any) -> tuple[CarriedRecord, ...]:
    """A list of command records as a hand-off carries them, each field checked."""
    if not isinstance(value, list):
        raise _Bad(f"{what} must be a list of command records, not {value!r}")
    out = []
    for i, item in enumerate(value):
        record = _fields(f"{what}[{i}]", item, _RECORD_FIELDS)
        values = {
            name: _typed(f"{what}[{i}].{name}", record[name], _RECORD_HINTS[name])
            for name in _RECORD_FIELDS
        }
        if values["window_s"] is not None and values["window_s"] <= 0:
            raise _Bad(f"{what}[{i}].window_s must be above 0, not {values['window_s']!r}")
        for aggregate_id in values["aggregate_ids"]:
            try:
                UUID(aggregate_id)
            except ValueError:
                raise _Bad(f"{what}[{i}].aggregate_ids must be ids, not {aggregate_id!r}") from None
        out.append(CarriedRecord(**values))
    return tuple(out)


_TERMS = dict[str, Any] | None  # OpenRide's fare terms (FareTerms.to_data()), or none


def _terms(what: str, value: Any) -> dict[str, Any] | None:
    """A ride's fare terms as ``OpenRide`` carries them: null, or terms the published
    schema (``FareTermsData``) accepts; the receiver records them as they are."""
    if value is None:
        return None
    try:
        FareTermsData.model_validate(value)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'terms'}: {e['msg']}" for e in error.errors()
        )
        raise _Bad(f"{what} must be null or fare terms ({problems})") from None
    return typing.cast(dict[str, Any], value)


def _typed(what: str, value: Any, hint: Any) -> Any:
    """``value`` as a field of type ``hint`` (str, int, float, bool, a tuple of str, a
    union of them and None, a hand-off's records, or a ride's fare terms)."""
    if hint == _RECORDS:
        return _records(what, value)
    if hint == _TERMS:
        return _terms(what, value)
    if hint == tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _Bad(f"{what} must be a list of strings, not {value!r}")
        return tuple(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise _Bad(f"{what} must be true or false, not {value!r}")
        return value
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    if str in options and isinstance(value, str):
        if what.rsplit(".", 1)[-1] in _ID_FIELDS:
            try:
                UUID(value)
            except ValueError:
                raise _Bad(f"{what} must be an id (a UUID), not {value!r}") from None
        return value
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if int in options and number and isinstance(value, int):
        return value
    if float in options and number:
        if not math.isfinite(value):
            raise _Bad(f"{what} must be a finite number, not {value!r}")
        return float(value)
    expected = " or ".join("null" if o is type(None) else o.__name__ for o in options)
    raise _Bad(f"{what} must be {expected}, not {value!r}")


def encode_availability(state: ForeignDriver) -> tuple[bytes, bytes]:
    """Key and value of a driver's availability record (its partition is the owner's)."""
    value: dict[str, Any] = {"leads_to": list(state.leads_to), "epoch": state.epoch}
    if state.vehicle is not None:
        value["vehicle"] = state.vehicle.to_data()
    return str(state.driver_id).encode(), orjson.dumps(value)


def decode_availability(key: bytes | None, value: bytes | None, partition: int) -> ForeignDriver:
    """A driver-availability record read from ``partition`` (its owner's); ``ValueError``
    says what is wrong with one that is not."""
    try:
        driver_id = UUID((key or b"").decode())
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"key {key!r} is not a driver id") from None
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error}") from None
    leads_to = doc.get("leads_to") if isinstance(doc, dict) else None
    if not isinstance(leads_to, list) or not leads_to:
        raise ValueError('a record is {"leads_to": [event type, ...]}')
    unknown = [t for t in leads_to if t not in DRIVER_AVAILABILITY_EVENTS]
    if unknown:
        raise ValueError(f"not driver availability events: {unknown}")
    epoch = doc.get("epoch", 0)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise ValueError(f"epoch must be a whole number of at least 0, not {epoch!r}")
    return ForeignDriver(driver_id, partition, epoch, tuple(leads_to), _vehicle(doc.get("vehicle")))


def _vehicle(value: object) -> Vehicle | None:
    """An availability record's vehicle (none in a record written before vehicles)."""
    if value is None:
        return None
    try:
        return VehicleData.model_validate(value).as_vehicle()
    except ValidationError as error:
        raise ValueError(f"vehicle is not a vehicle: {error.errors()[0]['msg']}") from None


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


def trace_headers(parent: str | None) -> Headers | None:
    """A record's headers with the W3C traceparent ``parent``, or None without one."""
    return [(TRACEPARENT, parent.encode("ascii"))] if parent else None


def traceparent_of(headers: Sequence[tuple[str, bytes | None]] | None) -> str | None:
    """The W3C traceparent in a record's headers, or None: one that is not a well-formed
    version-00 traceparent (55 characters) is none, so nothing of it is echoed on the
    outcome or logged (an oversized one would make the outcome record too large to send)."""
    for name, value in headers or ():
        if name == TRACEPARENT and value and len(value) <= TRACEPARENT_BYTES:
            try:
                return valid_traceparent(value.decode("ascii"))
            except UnicodeDecodeError:
                return None
    return None
