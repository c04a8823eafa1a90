"""Records of the shard-messages topic: one message or ack between shards a record
(``dispatch.adapters.kafka.wire``). They round-trip; a record no decoder can use is poison
with a reason, never a crash (tests/unit/test_kafka_batch_shard_messages.py: how a Kafka
batch sends them)."""

from __future__ import annotations

import dataclasses
import typing
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest

from dispatch.adapters.crypto.aesgcm import AesGcmCipher
from dispatch.adapters.kafka import wire
from dispatch.adapters.sqlite.keystore import SqliteKeyStore, key_store_path
from dispatch.domain.command_record import CarriedRecord
from dispatch.domain.fares import FareRule
from dispatch.domain.ids import new_id
from dispatch.domain.ride_fare import FareTerms
from dispatch.messages import Poison
from dispatch.privacy import PersonalData
from dispatch.shard.crossing import MESSAGE_HANDLERS
from dispatch.shard.crossshard.messages import (
    KINDS,
    Ack,
    Body,
    Envelope,
    HandOff,
    OpenRide,
    UnlockRider,
)
from dispatch.shard.personal import Sealer

T0 = 1_767_600_000.0
RIDE, RIDER = str(new_id(1)), str(new_id(0))
OPEN = Envelope(0, 1, 3, OpenRide(RIDE, RIDER, 37.3382, -121.8863, 37.344, -121.88, T0))
STANDARD = FareRule("USD", Decimal("2.50"), Decimal("1.10"), Decimal("0.30"), Decimal("7.00"))
TERMS = FareTerms("standard", "san-jose", "sha256:0123456789abcdef", STANDARD, Decimal("1"),
                  None, Decimal("1.35")).to_data()  # fmt: skip
PRICED = Envelope(0, 1, 4, OpenRide(RIDE, RIDER, 37.3382, -121.8863, 37.344, -121.88, T0,
                                    TERMS))  # fmt: skip
UNLOCK = Envelope(1, 0, 7, UnlockRider(RIDER, RIDE, "completed"))
RECORD = CarriedRecord("cmd-1", "go_offline", False, "illegal_transition", "has an offer",
                       (RIDE,), "fp", 86_400.0, T0)  # fmt: skip
HANDOFF = Envelope(1, 0, 8, HandOff(str(new_id(1)), 2, "Dee", 3, (RECORD,)))


@pytest.mark.parametrize(
    "message",
    [OPEN, PRICED, UNLOCK, HANDOFF],
    ids=["OpenRide", "OpenRide with fare terms", "UnlockRider", "HandOff"],
)
def test_a_message_round_trips_keyed_by_its_sender(message: Envelope) -> None:
    key, value = wire.encode_shard_message(message)
    assert key == str(message.sender).encode()
    assert orjson.loads(value) == {"message": message.to_data()}
    assert wire.decode_shard_message(value, "m", message.receiver) == message


def test_an_ack_round_trips_keyed_by_its_sender() -> None:
    ack = Ack(sender=1, receiver=0, upto=12)
    key, value = wire.encode_ack(ack)
    assert key == b"1"
    assert orjson.loads(value) == {"ack": {"from": 1, "to": 0, "upto": 12}}
    assert wire.decode_shard_message(value, "a", 0) == ack


def test_whole_floats_and_ints_for_floats_decode_as_floats() -> None:
    data = OPEN.to_data()
    data["body"] |= {"pickup_lat": 37, "requested_at": 1_767_600_000}
    decoded = wire.decode_shard_message(orjson.dumps({"message": data}), "m", 1)
    assert isinstance(decoded, Envelope) and isinstance(decoded.body, OpenRide)
    assert decoded.body.pickup_lat == 37.0 and isinstance(decoded.body.pickup_lat, float)
    assert isinstance(decoded.body.requested_at, float)


def _message(**changes: Any) -> bytes:
    data = OPEN.to_data() | changes
    return orjson.dumps({"message": data})


def _body(**changes: Any) -> bytes:
    data = OPEN.to_data()
    data["body"] = data["body"] | changes
    return orjson.dumps({"message": data})


def _without(field: str, in_body: bool = False) -> bytes:
    data = OPEN.to_data()
    if in_body:
        data["body"] = {k: v for k, v in data["body"].items() if k != field}
    else:
        data = {k: v for k, v in data.items() if k != field}
    return orjson.dumps({"message": data})


def _handoff(**changes: Any) -> bytes:
    data = HANDOFF.to_data() | {"to": 1, "from": 0}
    data["body"] = data["body"] | changes
    return orjson.dumps({"message": data})


def _record(**changes: Any) -> dict[str, Any]:
    return dataclasses.asdict(RECORD) | {"aggregate_ids": [RIDE]} | changes


def _ack(**changes: Any) -> bytes:
    return orjson.dumps({"ack": {"from": 0, "to": 1, "upto": 3} | changes})


POISON = [
    # (what, value, reason): every record read from partition 1
    ("no value", None, "empty record (no value)"),
    ("not JSON", b"{not json", "not JSON: "),
    ("a list", b"[1, 2]", "not a message between shards: a record is "),
    ("another kind of record", b'{"pings": []}', "not a message between shards"),
    ("both at once", orjson.dumps({"message": {}, "ack": {}}), "not a message between shards"),
    ("message not an object", b'{"message": 3}', "message must be an object with from, to"),
    ("unknown kind", _message(kind="Teleport"), "unknown kind 'Teleport' (known: Accept, "),
    ("kind not a string", _message(kind=3), "unknown kind 3"),
    ("missing seq", _without("seq"), "message: missing seq"),
    ("missing body", _without("body"), "message: missing body"),
    ("missing a body field", _without("rider", in_body=True), "OpenRide body: missing rider"),
    ("an unexpected field", _message(extra=1), "message: unexpected extra"),
    ("an unexpected body field", _body(colour="red"), "OpenRide body: unexpected colour"),
    (
        "seq as text",
        _message(seq="3"),
        "message.seq must be a whole number of at least 1, not '3'",
    ),
    ("seq as a boolean", _message(seq=True), "message.seq must be a whole number"),
    ("seq zero", _message(seq=0), "message.seq must be a whole number of at least 1, not 0"),
    ("seq a fraction", _message(seq=2.5), "message.seq must be a whole number"),
    (
        "sender negative",
        _message(**{"from": -1}),
        "message.from must be a whole number of at least 0, not -1",
    ),
    (
        "a latitude as text",
        _body(pickup_lat="37.3"),
        "OpenRide.pickup_lat must be float, not '37.3'",
    ),
    ("a latitude as a boolean", _body(pickup_lat=True), "OpenRide.pickup_lat must be float"),
    ("a missing latitude", _body(pickup_lat=None), "OpenRide.pickup_lat must be float, not None"),
    ("an id as a number", _body(rider=5), "OpenRide.rider must be str, not 5"),
    (
        "an id that is no UUID",
        _body(ride="ride-1"),
        "OpenRide.ride must be an id (a UUID), not 'ride-1'",
    ),
    ("body not an object", _message(body=[1]), "OpenRide body must be an object with ride, "),
    (
        "a message for another shard",
        _message(to=0, **{"from": 1}),
        "message to shard 0 read from partition 1",
    ),
    ("a message from itself", _message(**{"from": 1}), "message from shard 1 to itself"),
    ("an ack for another shard", _ack(to=0), "ack to shard 0 read from partition 1"),
    ("an ack from itself", _ack(**{"from": 1}), "ack from shard 1 to itself"),
    ("an ack without upto", orjson.dumps({"ack": {"from": 0, "to": 1}}), "ack: missing upto"),
    ("an ack upto below zero", _ack(upto=-1), "ack.upto must be a whole number of at least 0"),
    ("an ack upto as text", _ack(upto="3"), "ack.upto must be a whole number"),
    ("an ack not an object", b'{"ack": "all"}', "ack must be an object with from, to, upto"),
    ("hand-off records not a list", _handoff(records={}), "HandOff.records must be a list"),
    (
        "a carried record missing a field",
        _handoff(records=[{"command_id": "c"}]),
        "HandOff.records[0]: missing command_type",
    ),
    (
        "a carried outcome as text",
        _handoff(records=[_record(accepted="yes")]),
        "HandOff.records[0].accepted must be true or false, not 'yes'",
    ),
    (
        "a carried record's ids not strings",
        _handoff(records=[_record(aggregate_ids=[1])]),
        "HandOff.records[0].aggregate_ids must be a list of strings",
    ),
    (
        "a carried record's ids not ids",
        _handoff(records=[_record(aggregate_ids=["ride-1"])]),
        "HandOff.records[0].aggregate_ids must be ids, not 'ride-1'",
    ),
    (
        "a carried record's window not above 0",
        _handoff(records=[_record(window_s=0)]),
        "HandOff.records[0].window_s must be above 0, not 0.0",
    ),
]


@pytest.mark.parametrize(("what", "value", "reason"), POISON, ids=[p[0] for p in POISON])
def test_a_bad_record_is_poison_with_a_reason_that_can_be_dead_lettered(
    what: str, value: bytes | None, reason: str
) -> None:
    where = "dispatch.shard-messages[1]@4"
    decoded = wire.decode_shard_message(value, where, 1)
    assert isinstance(decoded, Poison), what
    assert (decoded.source, decoded.position) == ("shard-messages", where)
    assert decoded.reason.startswith(reason), decoded.reason
    assert decoded.raw == (value or b"")
    letter = orjson.loads(wire.encode_dead_letter(decoded))
    assert letter["reason"] == decoded.reason and letter["source"] == "shard-messages"


def test_a_hand_off_sent_before_records_travelled_still_decodes() -> None:
    """A sender of the version before writes no ``records``: the field's default."""
    data = HANDOFF.to_data() | {"to": 0, "from": 1}
    del data["body"]["records"]

    decoded = wire.decode_shard_message(orjson.dumps({"message": data}), "m", 0)

    assert isinstance(decoded, Envelope), decoded
    assert isinstance(decoded.body, HandOff) and decoded.body.records == ()


def test_the_valid_message_the_poison_is_made_from_decodes() -> None:
    assert wire.decode_shard_message(_message(), "m", 1) == OPEN
    assert wire.decode_shard_message(_ack(), "a", 1) == Ack(0, 1, 3)


def _sample(kind: type[Body]) -> Body:
    """A body of ``kind`` with a value of the right type in every field."""
    hints = typing.get_type_hints(kind)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(kind):
        hint = hints[f.name]
        if hint is str:
            values[f.name] = str(new_id(1)) if f.name in ("ride", "rider", "driver") else "x"
        elif hint is float:
            values[f.name] = 1.5
        elif hint is int:
            values[f.name] = 2
        elif hint is bool:
            values[f.name] = True
        elif hint == tuple[CarriedRecord, ...]:
            values[f.name] = (RECORD,)
        else:
            values[f.name] = None  # int | None
    return kind(**values)


@pytest.mark.parametrize("kind", list(KINDS.values()), ids=list(KINDS))
def test_every_kind_round_trips_or_waits_for_a_version_that_handles_it(kind: type[Body]) -> None:
    """A kind the receiver handles decodes as it was sent; one it does not handle yet is
    dead-lettered (so the batch does not fail on it) and its channel waits for it."""
    message = Envelope(0, 1, 4, _sample(kind))
    decoded = wire.decode_shard_message(wire.encode_shard_message(message)[1], "m", 1)
    if kind in MESSAGE_HANDLERS:
        assert decoded == message
    else:
        assert isinstance(decoded, Poison)
        assert decoded.reason == f"kind {kind.__name__} is not handled by this version"


def _sealer(tmp_path: Path) -> Sealer:
    return Sealer(PersonalData(AesGcmCipher(), SqliteKeyStore(key_store_path(tmp_path))))


@pytest.mark.parametrize(
    "message", [OPEN, PRICED, HANDOFF], ids=["OpenRide", "OpenRide with fare terms", "HandOff"]
)
def test_a_sealing_worker_s_message_holds_no_name_or_coordinate_and_opens(
    message: Envelope, tmp_path: Path
) -> None:
    sealer = _sealer(tmp_path)
    _key, value = wire.encode_shard_message(message, sealer.seal_message)
    for plain in (b"Dee", b"37.3382", b"-121.8863", b"37.344", b"-121.88"):
        assert plain not in value
    assert wire.decode_shard_message(value, "m", message.receiver, sealer.open_record) == message


def test_a_handed_off_driver_s_name_reads_erased_once_their_key_is_erased(
    tmp_path: Path,
) -> None:
    sealer = _sealer(tmp_path)
    _key, value = wire.encode_shard_message(HANDOFF, sealer.seal_message)
    assert isinstance(HANDOFF.body, HandOff)
    sealer.erase(UUID(HANDOFF.body.driver))
    decoded = wire.decode_shard_message(value, "m", 0, sealer.open_record)
    assert isinstance(decoded, Envelope) and isinstance(decoded.body, HandOff)
    assert decoded.body.name == "erased"


def test_a_sealed_field_that_does_not_open_is_poison(tmp_path: Path) -> None:
    sealer = _sealer(tmp_path)
    data = orjson.loads(wire.encode_shard_message(OPEN, sealer.seal_message)[1])
    body = data["message"]["body"]
    body["pickup_lat"], body["pickup_lng"] = body["pickup_lng"], body["pickup_lat"]
    decoded = wire.decode_shard_message(orjson.dumps(data), "m", 1, sealer.open_record)
    assert isinstance(decoded, Poison) and "OpenRide body" in decoded.reason


def test_an_open_ride_with_fare_terms_the_schema_refuses_is_poison() -> None:
    data = PRICED.to_data()
    data["body"]["fare"] = {**TERMS, "surge": "lots"}
    decoded = wire.decode_shard_message(orjson.dumps({"message": data}), "m", 1)
    assert isinstance(decoded, Poison)
    assert decoded.reason.startswith("OpenRide.fare must be null or fare terms (surge:")


def test_an_open_ride_s_fare_terms_survive_the_sealing_of_its_coordinates(
    tmp_path: Path,
) -> None:
    sealer = _sealer(tmp_path)
    _key, value = wire.encode_shard_message(PRICED, sealer.seal_message)
    body = orjson.loads(value)["message"]["body"]
    assert body["fare"] == TERMS  # the terms are not personal: carried as they are
    assert all(str(body[f]).startswith("pf1.") for f in ("pickup_lat", "dropoff_lng"))
    decoded = wire.decode_shard_message(value, "m", 1, sealer.open_record)
    assert decoded == PRICED
    assert isinstance(decoded, Envelope) and isinstance(decoded.body, OpenRide)
    assert decoded.body.fare == TERMS
    assert FareTerms.from_data(decoded.body.fare).to_data() == TERMS
    assert (decoded.body.pickup_lat, decoded.body.dropoff_lng) == (37.3382, -121.88)


def test_a_sealed_open_ride_with_fare_terms_the_schema_refuses_is_poison(
    tmp_path: Path,
) -> None:
    sealer = _sealer(tmp_path)
    data = orjson.loads(wire.encode_shard_message(PRICED, sealer.seal_message)[1])
    data["message"]["body"]["fare"] = {**TERMS, "surge": "lots"}
    decoded = wire.decode_shard_message(orjson.dumps(data), "m", 1, sealer.open_record)
    assert isinstance(decoded, Poison)
    assert decoded.reason.startswith("OpenRide.fare must be null or fare terms (surge:")


def test_an_open_ride_carries_its_product_and_an_older_one_reads_without() -> None:
    """``OpenRide.product`` (an unpriced accessible ride keeps it across shards); a message
    sent before rides carried their product has none: the receiver takes its fare's."""
    assert isinstance(OPEN.body, OpenRide)
    accessible = Envelope(0, 1, 5, dataclasses.replace(OPEN.body, product="accessible"))
    _key, value = wire.encode_shard_message(accessible)
    assert wire.decode_shard_message(value, "m", 1) == accessible
    data = orjson.loads(value)
    del data["message"]["body"]["product"]
    older = wire.decode_shard_message(orjson.dumps(data), "m", 1)
    assert isinstance(older, Envelope) and isinstance(older.body, OpenRide)
    assert older.body.product is None
    assert older == dataclasses.replace(accessible, body=OPEN.body)
