"""The key store port (``dispatch.privacy.KeyStore``): the same cases over every adapter,
the embedded SQLite file and the Kafka compacted topic.

Each case may open a second store on the same data (``reopen``): what one store made or
erased is durable and seen by another (a restarted process, another process)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dispatch.domain.ids import new_id
from dispatch.privacy import KeyNotYetKnown, KeyStore, SubjectErased


@dataclass
class Stores:
    open: Callable[[], KeyStore]
    opened: list[KeyStore]
    misses_are_final: bool = True  # a key store that never lags a commit (embedded)

    def reopen(self) -> KeyStore:
        store = self.open()
        self.opened.append(store)
        return store


def _embedded(tmp_path: Path) -> Callable[[], KeyStore]:
    from dispatch.adapters.sqlite.keystore import SqliteKeyStore, key_store_path

    return lambda: SqliteKeyStore(key_store_path(tmp_path))


def _kafka(topics: Any) -> Callable[[], KeyStore]:
    from dispatch.adapters.kafka.keystore import KafkaKeyStore
    from dispatch.adapters.kafka.topics import Topics

    name = Topics(topics.prefix).subject_keys
    return lambda: KafkaKeyStore(
        topics.bootstrap, name, topics.partitions, refresh_s=0.0, key_wait_s=0.3
    )


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    if request.param == "embedded":
        make = _embedded(tmp_path)
    else:
        make = _kafka(request.getfixturevalue("kafka_topics"))
    found = Stores(make, [], misses_are_final=request.param == "embedded")
    yield found
    for store in found.opened:
        store.close()


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
