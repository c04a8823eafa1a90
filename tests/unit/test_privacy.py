"""Sealed personal fields (``dispatch.privacy``): what a token holds, how it opens, and
what an erased subject's token reads as."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatch.adapters.crypto.aesgcm import AesGcmCipher
from dispatch.adapters.sqlite.keystore import SqliteKeyStore
from dispatch.domain.ids import new_id
from dispatch.privacy import (
    ERASED,
    MARKER,
    DamagedValue,
    PersonalData,
    Sealed,
    Token,
    is_sealed,
    shown,
)


@pytest.fixture
def personal(tmp_path: Path) -> PersonalData:
    return PersonalData(AesGcmCipher(), SqliteKeyStore(tmp_path / "keys.sqlite"))


def test_a_sealed_value_is_a_marked_token_that_names_its_subject_and_key(
    personal: PersonalData,
) -> None:
    key = personal.keys.create(new_id(2))
    token = personal.seal(key, "name", "Ada Lovelace")
    assert token.startswith(MARKER) and is_sealed(token)
    assert "Ada" not in token
    parsed = Token.parse(token)
    assert (parsed.subject, parsed.kid) == (key.subject, key.kid)


@pytest.mark.parametrize("value", ["Ada Lovelace", [51.501, -0.142], {"a": 1}, 3.5])
def test_a_token_opens_to_the_value_that_was_sealed(personal: PersonalData, value: object) -> None:
    key = personal.keys.create(new_id(0))
    assert personal.open(personal.seal(key, "field", value), "field") == value


def test_a_value_that_is_not_a_token_reads_as_it_is(personal: PersonalData) -> None:
    assert personal.open("Ada", "name") == "Ada"
    assert personal.open([1.0, 2.0], "pickup") == [1.0, 2.0]


def test_an_erased_subjects_tokens_read_as_erased(personal: PersonalData) -> None:
    key = personal.keys.create(new_id(1))
    token = personal.seal(key, "pickup", [51.5, -0.12])
    personal.keys.erase(key.subject)
    assert personal.open(token, "pickup") is ERASED
    assert shown(personal.open(token, "pickup")) == "erased"


def test_a_token_moved_to_another_field_is_damage_not_erasure(personal: PersonalData) -> None:
    key = personal.keys.create(new_id(1))
    token = personal.seal(key, "pickup", [51.5, -0.12])
    with pytest.raises(DamagedValue):
        personal.open(token, "dropoff")


def test_a_token_relabelled_with_another_subjects_key_does_not_open(
    personal: PersonalData,
) -> None:
    one, other = personal.keys.create(new_id(0)), personal.keys.create(new_id(0))
    sealed = Token.parse(personal.seal(one, "name", "Ada")).sealed
    forged = Token(other.subject, other.kid, sealed).text()
    with pytest.raises(DamagedValue):
        personal.open(forged, "name")


def test_a_whole_token_copied_into_another_subjects_record_is_damage(
    personal: PersonalData,
) -> None:
    """A reader that knows whose record it reads names the owner: another subject's
    token, intact, does not open there (review finding 4)."""
    one, other = personal.keys.create(new_id(0)), personal.keys.create(new_id(0))
    token = personal.seal(one, "name", "Ada")
    assert personal.open(token, "name", one.subject) == "Ada"
    with pytest.raises(DamagedValue):
        personal.open(token, "name", other.subject)


def test_a_value_the_sealer_made_is_typed_sealed_whatever_a_client_sends(
    personal: PersonalData,
) -> None:
    key = personal.keys.create(new_id(0))
    assert isinstance(personal.seal(key, "name", "Ada"), Sealed)
    assert not isinstance("pf1.Ada", Sealed)


@pytest.mark.parametrize("text", ["pf1.", "pf1.a.b.c", "pf1.x.y", f"pf1.{new_id(0)}.k.!!"])
def test_a_malformed_token_is_damage(personal: PersonalData, text: str) -> None:
    with pytest.raises(DamagedValue):
        personal.open(text, "name")


def test_a_key_never_shows_in_a_repr(personal: PersonalData) -> None:
    key = personal.keys.create(new_id(0))
    assert key.key.hex() not in repr(key) and repr(key.key) not in repr(key)
