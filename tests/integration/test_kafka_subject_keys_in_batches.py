"""The Kafka key store joined by a shard's batch (docs/PRIVACY.md, "The key store"): a key
made in the batch is sent in the batch's transaction, so another process sees it when the
batch commits and never if it aborts (the store and the sealer's cache forget it, and the
retry makes a new one); an erasure in the same batch lands after the key record."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from kafka import KafkaProducer, TopicPartition

from dispatch.adapters.crypto.aesgcm import AesGcmCipher
from dispatch.adapters.kafka.eventstore.clients import new_consumer, new_producer
from dispatch.adapters.kafka.keystore import KEY_WAIT_S, KafkaKeyStore, KeyOutsideBatch
from dispatch.adapters.kafka.topics import Topics
from dispatch.domain.ids import new_id, shard_of
from dispatch.privacy import KeyNotYetKnown, PersonalData, SubjectErased
from dispatch.shard.personal import Sealer

pytestmark = pytest.mark.kafka


@pytest.fixture
def stores(kafka_topics: Any) -> Iterator[tuple[KafkaKeyStore, KafkaKeyStore]]:
    """The batch's process's store, and another process's."""
    name = Topics(kafka_topics.prefix).subject_keys

    def store() -> KafkaKeyStore:
        return KafkaKeyStore(kafka_topics.bootstrap, name, kafka_topics.partitions, 0.0)

    mine, other = store(), store()
    yield mine, other
    mine.close()
    other.close()


@pytest.fixture
def producer(kafka_topics: Any) -> Iterator[KafkaProducer]:
    made = new_producer(kafka_topics.bootstrap, transactional_id=f"test-{uuid.uuid4()}")
    made.init_transactions()
    yield made
    made.close()


def test_a_key_made_in_a_batch_is_seen_by_others_when_the_batch_commits(
    stores: tuple[KafkaKeyStore, KafkaKeyStore], producer: KafkaProducer
) -> None:
    mine, other = stores
    subject = new_id(1)
    producer.begin_transaction()
    mine.begin(producer)
    made = mine.create(subject)
    assert mine.create(subject) == made  # the batch reads its own key
    assert mine.get(subject, made.kid) == made.key
    producer.flush()
    other.key_wait_s = 0.3
    with pytest.raises(KeyNotYetKnown):  # not committed: not there, and not erased either
        other.get(subject, made.kid)
    producer.commit_transaction()
    mine.committed()
    # committed, maybe not yet readable (the last stable offset lags the commit): ``get``
    # waits for it rather than read it as erased (review finding 2; flaky before)
    other.key_wait_s = KEY_WAIT_S
    assert other.get(subject, made.kid) == made.key
    assert not other.erased(subject)
    assert mine.create(subject) == made


def test_a_key_made_in_a_batch_that_aborts_is_forgotten_and_made_again(
    stores: tuple[KafkaKeyStore, KafkaKeyStore], producer: KafkaProducer
) -> None:
    mine, other = stores
    sealer = Sealer(PersonalData(AesGcmCipher(), mine))
    subject = new_id(0)
    producer.begin_transaction()
    mine.begin(producer)
    lost = sealer.key(subject)
    producer.abort_transaction()
    sealer.forget(mine.aborted())
    other.key_wait_s = 0.3
    with pytest.raises(KeyNotYetKnown):  # never committed: unknown, not erased
        other.get(subject, lost.kid)
    other.key_wait_s = KEY_WAIT_S
    producer.begin_transaction()
    mine.begin(producer)
    kept = sealer.key(subject)  # the retry: a new key, sent in its own transaction
    producer.commit_transaction()
    mine.committed()
    assert kept.kid != lost.kid
    assert other.get(subject, kept.kid) == kept.key
    assert mine.get(subject, lost.kid) is None


def test_a_subject_registered_and_erased_in_one_batch_has_no_key_left(
    stores: tuple[KafkaKeyStore, KafkaKeyStore], producer: KafkaProducer, kafka_topics: Any
) -> None:
    mine, other = stores
    subject = new_id(1)
    producer.begin_transaction()
    mine.begin(producer)
    made = mine.create(subject)
    assert mine.erase(subject) is True
    producer.commit_transaction()
    mine.committed()
    assert mine.get(subject, made.kid) is None and mine.erased(subject)
    assert other.get(subject, made.kid) is None and other.erased(subject)
    # in the log, the key record comes before its tombstone (compaction then removes it)
    assert _values(kafka_topics.bootstrap, other.topic, subject)[-1] is None


def _values(bootstrap: str, topic: str, subject: UUID) -> list[bytes | None]:
    """The committed values under the subject's key, in log order."""
    consumer = new_consumer(bootstrap, group_id=None)
    tp = TopicPartition(topic, shard_of(subject))
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        found: list[bytes | None] = []
        while consumer.position(tp) < end:
            for records in consumer.poll(timeout_ms=500).values():
                found += [r.value for r in records if r.key == str(subject).encode()]
        return found
    finally:
        consumer.close()


def test_an_erasure_in_a_batch_that_aborts_leaves_the_key_and_no_marker(
    stores: tuple[KafkaKeyStore, KafkaKeyStore], producer: KafkaProducer
) -> None:
    """Review finding 2, Kafka: the erased marker and the tombstone are in the batch's
    transaction, atomic with its ``Erased`` event; an aborted erasure erases nothing, and
    the retry that commits erases for everyone."""
    mine, other = stores
    subject = new_id(0)
    made = mine.create(subject)  # outside a batch: committed at once
    producer.begin_transaction()
    mine.begin(producer)
    assert mine.erases_with_the_batch()
    assert mine.erase(subject) is True
    assert mine.erased(subject)  # the batch reads its own erasure
    producer.flush()
    assert not other.erased(subject) and other.get(subject, made.kid) == made.key
    producer.abort_transaction()
    mine.aborted()
    assert not mine.erased(subject) and mine.get(subject, made.kid) == made.key
    assert not other.erased(subject) and other.get(subject, made.kid) == made.key
    producer.begin_transaction()
    mine.begin(producer)
    mine.erase(subject)
    producer.commit_transaction()
    mine.committed()
    assert mine.erased(subject) and mine.get(subject, made.kid) is None
    assert other.erased(subject) and other.get(subject, made.kid) is None


def test_a_workers_store_makes_no_key_outside_a_batch(
    stores: tuple[KafkaKeyStore, KafkaKeyStore], producer: KafkaProducer, kafka_topics: Any
) -> None:
    """Review finding 3: a worker's key is sent only in a batch's transaction; outside one
    (a post-commit path, a zombie) it is refused and nothing is written; a key the store
    knows is still returned."""
    mine, _ = stores
    mine.keys_outside_batch = False
    subject, known = new_id(0), new_id(1)
    producer.begin_transaction()
    mine.begin(producer)
    made = mine.create(known)
    producer.commit_transaction()
    mine.committed()
    with pytest.raises(KeyOutsideBatch):
        mine.create(subject)
    assert mine.create(known) == made
    assert _values(kafka_topics.bootstrap, mine.topic, subject) == []


def test_a_key_deleted_by_another_process_leaves_this_processs_cache(
    stores: tuple[KafkaKeyStore, KafkaKeyStore],
) -> None:
    """Review finding 7: a sealer's cached key is dropped once its store reads the
    tombstone (or the erased marker) another process wrote: it is not used to seal again."""
    mine, other = stores
    sealer = Sealer(PersonalData(AesGcmCipher(), other))
    subject = new_id(1)
    made = mine.create(subject)
    assert sealer.key(subject) == made  # cached in the other process
    mine.erase(subject)
    assert other.erased(subject)  # the other store reads the marker and the tombstone
    with pytest.raises(SubjectErased):
        sealer.key(subject)


def test_a_fenced_zombies_erasure_erases_nothing(
    stores: tuple[KafkaKeyStore, KafkaKeyStore], kafka_topics: Any
) -> None:
    """Review finding 1: a worker fenced long ago (its shard's new owner initialised the
    same transactional id) that decides an erasure sends the marker and the tombstone in
    its transaction, which the broker refuses: nobody reads the subject as erased."""
    mine, other = stores
    subject = new_id(0)
    made = mine.create(subject)
    tid = f"test-{uuid.uuid4()}"
    zombie = new_producer(kafka_topics.bootstrap, transactional_id=tid)
    zombie.init_transactions()
    owner = new_producer(kafka_topics.bootstrap, transactional_id=tid)
    owner.init_transactions()  # the new owner: the zombie is fenced
    try:
        zombie.begin_transaction()
        mine.begin(zombie)
        mine.erase(subject)
        with pytest.raises(Exception):  # noqa: B017 (kafka-python's fenced error, any form)
            zombie.flush(timeout=10)
            zombie.commit_transaction()
        mine.aborted()
        assert not mine.erased(subject) and mine.get(subject, made.kid) == made.key
        assert not other.erased(subject) and other.get(subject, made.kid) == made.key
        assert _values(kafka_topics.bootstrap, other.topic, subject)[-1] is not None
    finally:
        zombie.close(timeout=2)
        owner.close(timeout=2)
