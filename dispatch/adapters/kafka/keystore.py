"""The key store port (``dispatch.privacy.KeyStore``) on Kafka: the compacted topic
``<prefix>.subject-keys``.

Partition = the subject's home shard (the top bits of its id, as for every co-partitioned
topic); records (``key_record``, ``erasure_records``):

- key = the subject id, value = ``{"kid", "key"}`` (the key in base64): the subject's key;
  with a key-encryption key configured (``dispatch.privacy.KeyWrap``), ``{"kid", "kek",
  "wrapped"}`` instead: the key wrapped under the KEK of id ``kek`` (base64). A store that
  reads a key wrapped under a KEK it does not have fails with the reason
  (``KeyWrapError``): the key is never taken for erased;
- key = the subject id, value = null: a tombstone, the key deleted (compaction then
  removes the key record, docs/PRIVACY.md "Deadlines");
- key = ``erased:<subject id>``, value = ``{"erased_at"}``: the subject is erased (no key
  material; kept, so a key is never made for it again).

A store reads the whole topic once (compaction keeps about a record per subject), keeps it
in memory, reads every partition's new records before a lookup once ``refresh_s`` has
passed since the last read, and reads the subject's partition to its end before it says
that a subject has no key. One writer per partition (the subject's home shard) creates
keys: two writers creating a key for one subject at once would each get their own.

A shard's batch joins the store (``begin`` with the batch's transactional producer): a key
made meanwhile is sent in the batch's Kafka transaction, so it is committed with the first
ciphertext that needs it, or not at all (a fenced zombie's key never shows); ``committed``
or ``aborted`` ends it (an aborted batch's keys are forgotten: its retry makes new ones).
Outside a batch a key is sent by the store's own idempotent producer and flushed, except
in a worker (``keys_outside_batch=False``), where that is refused (``KeyOutsideBatch``). An
erasure in a joined batch is sent in its transaction too (the erased marker, then the
tombstone, after the batch's events): it commits with the ``Erased`` event or not at all,
so a key is never deleted without its erasure recorded, nor the reverse; the subject
reads as erased to this store from ``erase`` on, and stays so only if the batch commits.
Outside a batch an erasure is sent by the store's own producer and flushed.
"""

from __future__ import annotations

import base64
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from typing import Any
from uuid import UUID

import orjson
from kafka import KafkaProducer

from dispatch.adapters.kafka.eventstore.clients import new_producer
from dispatch.adapters.kafka.eventstore.connection import Connection
from dispatch.adapters.kafka.follower import shard_follower
from dispatch.domain.ids import shard_of
from dispatch.privacy import (
    KeyNotYetKnown,
    KeyStore,
    KeyWrap,
    KeyWrapError,
    NoWrap,
    StoredKey,
    SubjectErased,
    SubjectKey,
    new_subject_key,
)

ERASED_PREFIX = "erased:"
SEND_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 30.0  # a read of the topic fails after this long *without progress*
KEY_WAIT_S = 5.0  # how long ``get`` waits for a key it does not know before it gives up
KEY_POLL_S = 0.05  # how often it reads the subject's partition again meanwhile
Record = tuple[int, bytes, bytes | None]  # partition, key, value


def key_record(key: SubjectKey, wrap: KeyWrap) -> Record:
    """The key's record, wrapped under ``wrap``'s current KEK (if any)."""
    kept = wrap.wrap(key)
    blob = base64.b64encode(kept.blob).decode()
    value = (
        {"kid": key.kid, "key": blob}
        if kept.kek is None
        else {"kid": key.kid, "kek": kept.kek, "wrapped": blob}
    )
    return shard_of(key.subject), str(key.subject).encode(), orjson.dumps(value)


def read_key(subject: UUID, value: dict[str, Any], wrap: KeyWrap) -> SubjectKey:
    """A key record's key (``KeyWrapError`` when it cannot be unwrapped here)."""
    try:
        kid = str(value["kid"])
        if "wrapped" in value:
            stored = StoredKey(str(value["kek"]), base64.b64decode(value["wrapped"]))
        else:
            stored = StoredKey(None, base64.b64decode(value["key"]))
    except (KeyError, TypeError, ValueError) as error:
        raise KeyWrapError(f"the key record of subject {subject} is damaged ({error!r})") from None
    return SubjectKey(subject, kid, wrap.unwrap(subject, kid, stored))


def erasure_records(subject: UUID, at: float) -> list[Record]:
    """The subject's erased marker, then the tombstone that deletes its key."""
    partition = shard_of(subject)
    marker = orjson.dumps({"erased_at": at})
    return [
        (partition, f"{ERASED_PREFIX}{subject}".encode(), marker),
        (partition, str(subject).encode(), None),
    ]


class KeyOutsideBatch(RuntimeError):
    """A worker's store asked for a new key with no batch joined (never sent: a key is
    made in a shard batch's transaction only)."""


class KafkaKeyStore(KeyStore):
    def __init__(
        self,
        bootstrap: Connection,
        topic: str,
        shards: int,
        refresh_s: float = 1.0,
        key_wait_s: float = KEY_WAIT_S,
        keys_outside_batch: bool = True,
        key_poll_s: float = KEY_POLL_S,
        remember_tombstones: int = 0,
        wrap: KeyWrap | None = None,
    ) -> None:
        self.topic, self.refresh_s, self.key_wait_s = topic, refresh_s, key_wait_s
        self.wrap = wrap if wrap is not None else NoWrap()
        self._kek_of: dict[UUID, str | None] = {}  # the KEK of each key read (None: plain)
        self._broken: KeyWrapError | None = None  # a key met that cannot be unwrapped
        self.key_poll_s = key_poll_s  # how often ``get`` reads again while it waits
        # The command keys (one-time, never made again): the subjects of the last
        # ``remember_tombstones`` tombstones read, whose ``get`` is None (deleted) at once
        # rather than a wait for a key that will never show (review M1). 0: none (a subject
        # key's tombstone is not an erasure; its marker is).
        self.remember_tombstones = remember_tombstones
        self._tombstoned: OrderedDict[UUID, None] = OrderedDict()
        # False in a worker: a key is made only in a shard batch's transaction (a zombie's
        # key sent outside one could land after the new owner's; review finding 3)
        self.keys_outside_batch = keys_outside_batch
        self._bootstrap = bootstrap
        self._keys: dict[UUID, SubjectKey] = {}
        self._erased: set[UUID] = set()
        self._lock = threading.Lock()
        self._producer: KafkaProducer | None = None
        self._batch: Any = None  # the producer of the joined batch's open transaction
        self._pending: dict[UUID, SubjectKey] = {}  # keys sent in it, not committed yet
        self._erasing: set[UUID] = set()  # erasures sent in it, not committed yet
        self._deleted: set[UUID] | None = None  # read deleted, for take_deleted (once asked)
        self._follower = shard_follower(
            bootstrap, topic, shards, "subject keys", "run `dispatch topics create`"
        )
        for partition in self._follower.partitions:
            self._follower.seek(partition, self._follower.beginning_offset(partition))
        self._read_at = 0.0
        try:
            with self._lock:
                self._catch_up(self._follower.partitions)
        except BaseException:  # a key this process cannot unwrap, say: nothing left open
            self._follower.close()
            raise

    # -- dispatch.privacy.KeyStore ---------------------------------------------------------
    def create(self, subject: UUID) -> SubjectKey:
        with self._lock:
            self._refresh()
            found = self._known(subject)
            if found is None and subject not in self._erased:
                self._catch_up([shard_of(subject)])  # a miss: read its partition first
                found = self._known(subject)
            if subject in self._erased or subject in self._erasing:
                raise SubjectErased(subject)
            if found is not None:
                return found
            made = new_subject_key(subject)
            if self._batch is not None:
                partition, key, value = key_record(made, self.wrap)
                self._batch.send(self.topic, key=key, value=value, partition=partition)
                self._pending[subject] = made
            elif self.keys_outside_batch:
                self._send([key_record(made, self.wrap)])
                self._keys[subject] = made
            else:
                raise KeyOutsideBatch(
                    f"{self.topic}: no key is made for {subject} outside a shard's batch"
                )
            return made

    def get(self, subject: UUID, kid: str) -> bytes | None:
        """The key, or None when the subject is erased (or the key is not ``kid``: another
        key of the subject, which only damage gives). A subject this store does not know is
        *not* erased: its key may be committed and not yet readable (the read stops at the
        last stable offset, which lags a commit), so the partition is read again until the
        key or the marker shows, for ``key_wait_s`` at most; then ``KeyNotYetKnown``."""
        waited_from = time.monotonic()
        while True:
            with self._lock:
                self._refresh()
                found = self._known(subject)
                if found is None and subject not in self._erased:
                    self._catch_up([shard_of(subject)])
                    found = self._known(subject)
                if found is None and subject in self._tombstoned:
                    return None  # a one-time key, deleted
                if found is not None or subject in self._erased or subject in self._erasing:
                    break
            waited = time.monotonic() - waited_from
            if waited >= self.key_wait_s:
                raise KeyNotYetKnown(subject, waited)
            time.sleep(min(self.key_poll_s, self.key_wait_s - waited))
        return found.key if found is not None and found.kid == kid else None

    def erase(self, subject: UUID) -> bool:
        with self._lock:
            self._catch_up([shard_of(subject)])
            had_key = subject in self._keys or subject in self._pending
            if self._batch is not None:
                # In the batch's transaction, after its key record if it made one.
                for partition, key, value in erasure_records(subject, time.time()):
                    self._batch.send(self.topic, key=key, value=value, partition=partition)
                self._pending.pop(subject, None)
                self._erasing.add(subject)
                return had_key
            self._send(erasure_records(subject, time.time()))
            self._keys.pop(subject, None)
            self._erased.add(subject)
            return had_key

    def erased(self, subject: UUID) -> bool:
        with self._lock:
            self._refresh()
            if self._known(subject) is None and subject not in self._erased:
                self._catch_up([shard_of(subject)])  # a subject with a key in memory: no read
            return subject in self._erased or subject in self._erasing

    def wrapping(self) -> Counter[str | None]:
        """The keys read from the topic, by the id of the KEK they are wrapped under
        (None: not wrapped); read to the topic's end first."""
        with self._lock:
            self._catch_up(self._follower.partitions)
            return Counter(self._kek_of[s] for s in self._keys if s in self._kek_of)

    def erased_count(self) -> int:
        with self._lock:
            self._refresh()
            return len(self._erased)

    def take_deleted(self) -> list[UUID]:
        with self._lock:
            taken, self._deleted = list(self._deleted or ()), set()
            return taken

    def erases_with_the_batch(self) -> bool:
        with self._lock:
            return self._batch is not None

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close()
            self._follower.close()

    # -- a shard's batch -------------------------------------------------------------------
    def begin(self, producer: Any) -> None:
        """Keys made from now until ``committed`` or ``aborted`` are sent by ``producer``,
        in its open transaction (a shard's batch; one at a time per process)."""
        with self._lock:
            if self._batch is not None:
                raise RuntimeError(f"{self.topic}: a batch has already joined the key store")
            self._batch, self._pending = producer, {}

    def committed(self) -> None:
        """The joined batch committed: its keys are the subjects' keys."""
        with self._lock:
            self._keys.update((s, k) for s, k in self._pending.items() if s not in self._erased)
            for subject in self._erasing:
                self._keys.pop(subject, None)
            self._erased |= self._erasing
            self._batch, self._pending, self._erasing = None, {}, set()

    def aborted(self) -> list[UUID]:
        """The joined batch aborted: its keys were never stored. Returns their subjects
        (whose keys a cache must forget)."""
        with self._lock:
            dropped = list(self._pending)  # the erasures it sent are void: keys kept
            self._batch, self._pending, self._erasing = None, {}, set()
            return dropped

    # -- reading and writing ---------------------------------------------------------------
    def _known(self, subject: UUID) -> SubjectKey | None:
        if subject in self._erasing:
            return None
        return self._keys.get(subject) or self._pending.get(subject)

    def _refresh(self) -> None:
        """Every partition's new records, once ``refresh_s`` has passed since the last read.
        A store that met a key it cannot unwrap answers nothing more (``_broken``)."""
        if self._broken is not None:
            raise self._broken
        if time.monotonic() - self._read_at >= self.refresh_s:
            self._catch_up(self._follower.partitions)

    def _catch_up(self, partitions: Iterable[int]) -> None:
        """Read ``partitions`` to their ends as they are now (committed records only, up to
        the last stable offset). Fails after ``READ_TIMEOUT_S`` without progress, however
        long the whole read takes (a large topic at start)."""
        if self._broken is not None:
            raise self._broken
        follower = self._follower
        ends = {p: follower.end_offset(p) for p in partitions}
        every = set(ends) == set(follower.partitions)
        deadline = time.monotonic() + READ_TIMEOUT_S
        while any(follower.position(p) < end for p, end in ends.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.topic}: no progress reading it in {READ_TIMEOUT_S:.0f} s"
                )
            for records in follower.poll(200).values():
                if records:
                    deadline = time.monotonic() + READ_TIMEOUT_S
                self._take(records)
        if every:
            self._read_at = time.monotonic()

    def _take(self, records: Iterable[Any]) -> None:
        for record in records:
            key = record.key.decode()
            if key.startswith(ERASED_PREFIX):
                subject = UUID(key[len(ERASED_PREFIX) :])
                self._erased.add(subject)
                self._keys.pop(subject, None)
                self._kek_of.pop(subject, None)
                if self._deleted is not None:
                    self._deleted.add(subject)
                continue
            subject = UUID(key)
            if record.value is None:
                self._keys.pop(subject, None)
                self._kek_of.pop(subject, None)
                if self._deleted is not None:
                    self._deleted.add(subject)
                if self.remember_tombstones:
                    self._tombstoned[subject] = None
                    if len(self._tombstoned) > self.remember_tombstones:
                        self._tombstoned.popitem(last=False)
            elif subject not in self._erased:
                value = orjson.loads(record.value)
                try:
                    self._keys[subject] = read_key(subject, value, self.wrap)
                except KeyWrapError as error:
                    # The poll's position has moved past this record: reading on would
                    # take the subject for keyless (a second key made, the first's data
                    # read as erased). The store stops for good; a restart reads it again.
                    self._broken = KeyWrapError(
                        f"{self.topic}: {error}; this key store reads no further: restart "
                        "the process with that key-encryption key configured"
                    )
                    raise self._broken from None
                self._kek_of[subject] = value.get("kek") if "wrapped" in value else None

    def _send(self, records: list[Record]) -> None:
        if self._producer is None:
            self._producer = new_producer(self._bootstrap)
        futures = [
            self._producer.send(self.topic, key=key, value=value, partition=partition)
            for partition, key, value in records
        ]
        self._producer.flush(timeout=SEND_TIMEOUT_S)
        for future in futures:
            future.get(timeout=SEND_TIMEOUT_S)
