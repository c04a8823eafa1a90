"""Commands sealed under a one-time key (``dispatch.sealed_commands``, docs/PRIVACY.md
"Sealed commands"): a registration's name and a ride request's pickup and drop-off are
tokens in the command's record, opened back by the worker of the shard that decides it;
a record whose key is gone, whose fields do not open, or whose key is another shard's is
poison with the reason (``wire.read_command``), never a crash; other commands and records
of before go as they are."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import orjson
import pytest

from dispatch.adapters.crypto.aesgcm import AesGcmCipher
from dispatch.adapters.kafka import wire
from dispatch.adapters.sqlite.keystore import SqliteKeyStore
from dispatch.domain.ids import new_id, shard_of
from dispatch.messages import Poison
from dispatch.privacy import PersonalData, SubjectKey
from dispatch.sealed_commands import KEY_FIELD, CommandSealer, open_command
from schemas import commands as c

NAME = "Philippa Quarrington"
PICKUP = {"lat": 37.7749, "lng": -122.4194}
DROPOFF = {"lat": 37.7599, "lng": -122.4148}
RIDER = new_id(3)


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[SqliteKeyStore]:
    store = SqliteKeyStore(tmp_path / "command-keys.sqlite")
    yield store
    store.close()


def envelope(command: c.Command) -> c.CommandEnvelope:
    return c.CommandEnvelope(command_id="k", issued_at=datetime(2026, 1, 1, tzinfo=UTC),
                             command=command)  # fmt: skip


RIDE = envelope(c.RequestRide(ride_id=new_id(3), rider_id=RIDER, pickup=PICKUP, dropoff=DROPOFF))
REGISTRATION = envelope(c.RegisterRider(rider_id=RIDER, name=NAME))


def sealed(keys: SqliteKeyStore, sent: c.CommandEnvelope) -> bytes:
    sealer = CommandSealer(AesGcmCipher(), keys.create)
    return wire.encode_command(sent, sealer.seal)[1]


def opener(keys: SqliteKeyStore, shard: int) -> wire.OpenCommand:
    personal = PersonalData(AesGcmCipher(), keys)
    return lambda body: open_command(body, personal, shard) and None


@pytest.mark.parametrize("sent", [RIDE, REGISTRATION], ids=["ride", "registration"])
def test_a_commands_personal_fields_are_tokens_and_open_back_at_its_shard(
    keys: SqliteKeyStore, sent: c.CommandEnvelope
) -> None:
    value = sealed(keys, sent)
    assert NAME.encode() not in value and b"37.7749" not in value and b"-122.41" not in value
    subject = UUID(orjson.loads(value)[KEY_FIELD])
    assert shard_of(subject) == 3 and subject != RIDER  # a key of its own, in its shard
    read, spent = wire.read_command(value, "commands[3]@0", opener(keys, 3))
    assert (read, spent) == (sent, subject)


def test_a_command_without_personal_fields_goes_as_it_is_and_makes_no_key(
    keys: SqliteKeyStore,
) -> None:
    made: list[UUID] = []

    def make(subject: UUID) -> SubjectKey:
        made.append(subject)
        return keys.create(subject)

    sent = envelope(c.CancelRide(ride_id=new_id(3), rider_id=RIDER))
    value = wire.encode_command(sent, CommandSealer(AesGcmCipher(), make).seal)[1]
    assert made == [] and KEY_FIELD.encode() not in value
    assert wire.read_command(value, "commands[3]@0", opener(keys, 3)) == (sent, None)


def test_a_record_of_before_sealing_reads_as_it_is(keys: SqliteKeyStore) -> None:
    value = wire.encode_command(REGISTRATION)[1]
    assert wire.read_command(value, "commands[3]@0", opener(keys, 3)) == (REGISTRATION, None)


def test_a_sealed_command_whose_key_is_gone_is_poison_with_its_key_to_delete(
    keys: SqliteKeyStore,
) -> None:
    value = sealed(keys, RIDE)
    subject = UUID(orjson.loads(value)[KEY_FIELD])
    keys.erase(subject)
    read, spent = wire.read_command(value, "commands[3]@7", opener(keys, 3))
    assert isinstance(read, Poison) and spent == subject
    assert "sealed command" in read.reason and str(subject) in read.reason
    assert read.raw == value  # dead-lettered sealed


def test_a_sealed_command_read_at_another_shard_is_poison(keys: SqliteKeyStore) -> None:
    value = sealed(keys, REGISTRATION)
    read, _ = wire.read_command(value, "commands[4]@0", opener(keys, 4))
    assert isinstance(read, Poison) and "key of shard 3, read at 4" in read.reason


def test_a_token_moved_to_another_field_is_poison(keys: SqliteKeyStore) -> None:
    body = orjson.loads(sealed(keys, RIDE))
    body["command"]["pickup"], body["command"]["dropoff"] = (
        body["command"]["dropoff"],
        body["command"]["pickup"],
    )
    read, _ = wire.read_command(orjson.dumps(body), "commands[3]@0", opener(keys, 3))
    assert isinstance(read, Poison) and "pickup does not open" in read.reason


@pytest.mark.parametrize("named", ["not-an-id", None])
def test_a_record_naming_no_usable_key_is_poison(keys: SqliteKeyStore, named: object) -> None:
    body = orjson.loads(sealed(keys, REGISTRATION))
    body[KEY_FIELD] = named
    read, spent = wire.read_command(orjson.dumps(body), "commands[3]@0", opener(keys, 3))
    assert isinstance(read, Poison) and spent is None


def test_a_sealed_command_is_poison_to_a_reader_without_keys(keys: SqliteKeyStore) -> None:
    read = wire.decode_command(sealed(keys, REGISTRATION), "commands[3]@0")
    assert isinstance(read, Poison) and "no key to open it" in read.reason


def test_the_unkeyed_fingerprint_travels_sealed_and_dies_with_the_key(
    keys: SqliteKeyStore,
) -> None:
    """Review H1: the legacy alternate (a plain SHA-256 of route, caller and body, which
    confirms a guessed name) is never in the record in the clear; it opens back with the
    fields, and once the key is deleted nothing of it is left to read."""
    from dispatch.api.idempotency import Fingerprinter, legacy_fingerprint

    body = orjson.dumps({"name": NAME, "home": None}).decode()
    printed = Fingerprinter({"k1": "s" * 32, "k0": "t" * 32}, "k1", True)
    made = printed.of("POST", "/riders", "register-rider", body)
    guess = legacy_fingerprint("POST", "/riders", "register-rider", body)
    assert guess in made.alternates
    sent = REGISTRATION.model_copy(
        update={"fingerprint": made.primary, "fingerprint_alternates": made.alternates}
    )
    value = sealed(keys, sent)
    assert guess.encode() not in value
    assert all(other.encode() not in value for other in made.alternates)
    read, subject = wire.read_command(value, "commands[3]@0", opener(keys, 3))
    assert read == sent  # a retry still matches a record of before
    assert subject is not None
    keys.erase(subject)
    gone, _ = wire.read_command(value, "commands[3]@0", opener(keys, 3))
    assert isinstance(gone, Poison) and guess not in gone.reason
