"""The key store port (``dispatch.privacy.KeyStore``): the same cases over every adapter,
the embedded SQLite file and the Kafka compacted topic.

Each case may open a second store on the same data (``reopen``): what one store made or
erased is durable and seen by another (a restarted process, another process)."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dispatch.domain.ids import new_id
from dispatch.privacy import KeyNotYetKnown, KeyStore, KeyWrap, KeyWrapError, SubjectErased


@dataclass
class Stores:
    open: Callable[[KeyWrap | None], KeyStore]
    opened: list[KeyStore]
    raw: Callable[[], bytes]  # everything the store keeps, as stored (the file, the records)
    misses_are_final: bool = True  # a key store that never lags a commit (embedded)

    def reopen(self, wrap: KeyWrap | None = None) -> KeyStore:
        store = self.open(wrap)
        self.opened.append(store)
        return store


def _embedded(tmp_path: Path) -> tuple[Callable[[KeyWrap | None], KeyStore], Callable[[], bytes]]:
    from dispatch.adapters.sqlite.keystore import SqliteKeyStore, key_store_path

    path = key_store_path(tmp_path)
    return (lambda wrap: SqliteKeyStore(path, wrap)), path.read_bytes


def _kafka(topics: Any) -> tuple[Callable[[KeyWrap | None], KeyStore], Callable[[], bytes]]:
    from kafka import KafkaConsumer

    from dispatch.adapters.kafka.keystore import KafkaKeyStore
    from dispatch.adapters.kafka.topics import Topics

    name = Topics(topics.prefix).subject_keys

    def raw() -> bytes:
        consumer = KafkaConsumer(
            name, bootstrap_servers=topics.bootstrap, auto_offset_reset="earliest",
            consumer_timeout_ms=3_000, enable_auto_commit=False,
        )  # fmt: skip
        try:
            return b"\n".join((r.key or b"") + b" " + (r.value or b"") for r in consumer)
        finally:
            consumer.close()

    return (
        lambda wrap: KafkaKeyStore(
            topics.bootstrap, name, topics.partitions, refresh_s=0.0, key_wait_s=0.3, wrap=wrap
        )
    ), raw


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    if request.param == "embedded":
        make, raw = _embedded(tmp_path)
    else:
        make, raw = _kafka(request.getfixturevalue("kafka_topics"))
    found = Stores(make, [], raw, misses_are_final=request.param == "embedded")
    yield found
    for store in found.opened:
        store.close()


def kek_wrap(**keks: bytes) -> KeyWrap:
    """Keys wrapped under the first of ``keks`` (by id), any of them read."""
    from dispatch.adapters.crypto.keywrap import AesGcmKeyWrap

    return AesGcmKeyWrap(keks, next(iter(keks)))


def test_a_subject_gets_one_key_that_every_later_create_and_get_returns(stores: Stores) -> None:
    keys = stores.reopen()
    subject = new_id(1)
    made = keys.create(subject)
    assert len(made.key) == 32 and made.subject == subject
    assert keys.create(subject) == made
    assert keys.get(subject, made.kid) == made.key


def test_a_key_is_durable_once_created(stores: Stores) -> None:
    subject = new_id(0)
    made = stores.reopen().create(subject)
    again = stores.reopen()
    assert again.get(subject, made.kid) == made.key
    assert again.create(subject) == made


def test_subjects_have_keys_of_their_own(stores: Stores) -> None:
    keys = stores.reopen()
    one, other = keys.create(new_id(0)), keys.create(new_id(0))
    assert one.key != other.key and one.kid != other.kid


def test_no_key_for_an_unknown_subject_or_another_key_id(stores: Stores) -> None:
    keys = stores.reopen()
    made = keys.create(new_id(1))
    if stores.misses_are_final:
        assert keys.get(new_id(1), made.kid) is None
    else:  # Kafka: an unknown subject is not erased: its key may not be readable yet
        with pytest.raises(KeyNotYetKnown):
            keys.get(new_id(1), made.kid)
    assert keys.get(made.subject, "0" * 16) is None
    assert not keys.erased(new_id(1))


def test_erasing_deletes_the_key_for_good(stores: Stores) -> None:
    keys = stores.reopen()
    made = keys.create(new_id(0))
    assert keys.erase(made.subject) is True
    assert keys.get(made.subject, made.kid) is None
    assert keys.erased(made.subject)
    with pytest.raises(SubjectErased):
        keys.create(made.subject)
    again = stores.reopen()
    assert again.get(made.subject, made.kid) is None
    assert again.erased(made.subject)
    with pytest.raises(SubjectErased):
        again.create(made.subject)


def test_erasing_twice_or_a_subject_without_a_key_is_harmless(stores: Stores) -> None:
    keys = stores.reopen()
    made = keys.create(new_id(1))
    assert keys.erase(made.subject) is True
    assert keys.erase(made.subject) is False
    never = new_id(1)
    assert keys.erase(never) is False
    assert keys.erased(never)
    with pytest.raises(SubjectErased):
        keys.create(never)


def test_erasing_one_subject_leaves_the_others(stores: Stores) -> None:
    keys = stores.reopen()
    gone, kept = keys.create(new_id(0)), keys.create(new_id(0))
    keys.erase(gone.subject)
    assert keys.get(kept.subject, kept.kid) == kept.key
    assert not keys.erased(kept.subject)


def test_an_erasure_by_one_store_is_seen_by_another_that_held_the_key(stores: Stores) -> None:
    first, second = stores.reopen(), stores.reopen()
    made = first.create(new_id(1))
    assert second.get(made.subject, made.kid) == made.key
    first.erase(made.subject)
    assert second.get(made.subject, made.kid) is None
    assert second.erased(made.subject)


def test_keys_made_ahead_are_the_ones_create_gives_and_as_durable(stores: Stores) -> None:
    """``create_ahead`` (a batch's keys before its sealing): what it makes is what
    ``create`` then gives, durable like it; an erased subject is left out. A store whose
    keys go in the batch's own transaction (Kafka) makes none ahead."""
    keys = stores.reopen()
    new, known, gone = new_id(0), new_id(1), new_id(0)
    had = keys.create(known)
    keys.create(gone)
    keys.erase(gone)
    ahead = keys.create_ahead([new, known, gone, new])
    assert gone not in ahead
    if stores.misses_are_final:  # embedded: made ahead, in one write
        assert set(ahead) == {new, known} and ahead[known] == had
    again = stores.reopen()
    for subject, key in ahead.items():
        assert keys.create(subject) == key
        assert again.get(subject, key.kid) == key.key


# -- wrapped keys (docs/PRIVACY.md, "Wrapped keys") -----------------------------------------
KEK_A, KEK_B = os.urandom(32), os.urandom(32)


def _stored_forms(key: bytes) -> list[bytes]:
    return [key, base64.b64encode(key), base64.urlsafe_b64encode(key)]


def test_a_store_with_a_key_encryption_key_keeps_no_key_as_it_is(stores: Stores) -> None:
    before = stores.reopen().create(new_id(0))  # the control: with no KEK, kept as it is
    assert any(form in stores.raw() for form in _stored_forms(before.key))
    keys = stores.reopen(kek_wrap(a=KEK_A))
    made = [keys.create(new_id(i % 2)) for i in range(4)]
    again = stores.reopen(kek_wrap(a=KEK_A))
    assert all(again.get(m.subject, m.kid) == m.key for m in made)
    kept = stores.raw()
    assert not any(form in kept for m in made for form in _stored_forms(m.key))


def test_a_store_opened_without_the_kek_its_keys_are_under_refuses_and_reads_none_erased(
    stores: Stores,
) -> None:
    made = stores.reopen(kek_wrap(a=KEK_A)).create(new_id(1))
    with pytest.raises(KeyWrapError, match="'a'"):
        stores.reopen().get(made.subject, made.kid)  # no KEK configured
    with pytest.raises(KeyWrapError, match="'a'"):
        stores.reopen(kek_wrap(b=KEK_B)).get(made.subject, made.kid)  # another id only
    with pytest.raises(KeyWrapError, match="does not authenticate"):
        stores.reopen(kek_wrap(a=KEK_B)).get(made.subject, made.kid)  # another key, same id


def test_keys_kept_before_a_kek_and_under_an_older_kek_are_read_and_new_ones_wrapped(
    stores: Stores,
) -> None:
    before = stores.reopen().create(new_id(0))
    older = stores.reopen(kek_wrap(a=KEK_A)).create(new_id(0))
    rotated = stores.reopen(kek_wrap(b=KEK_B, a=KEK_A))  # b current, a still read
    newest = rotated.create(new_id(0))
    assert rotated.get(before.subject, before.kid) == before.key
    assert rotated.get(older.subject, older.kid) == older.key
    assert stores.reopen(kek_wrap(b=KEK_B, a=KEK_A)).get(newest.subject, newest.kid) == newest.key
    with pytest.raises(KeyWrapError, match="'b'"):  # newest is under b, not a
        stores.reopen(kek_wrap(a=KEK_A)).get(newest.subject, newest.kid)


def test_an_erased_subject_stays_erased_under_a_kek(stores: Stores) -> None:
    keys = stores.reopen(kek_wrap(a=KEK_A))
    made = keys.create(new_id(1))
    assert keys.erase(made.subject) is True
    again = stores.reopen(kek_wrap(a=KEK_A))
    assert again.get(made.subject, made.kid) is None and again.erased(made.subject)
