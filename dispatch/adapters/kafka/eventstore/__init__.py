"""An eventsourcing persistence module on Kafka:
``PERSISTENCE_MODULE=dispatch.adapters.kafka.eventstore``.

Environment (read through the application's env, so ``<APP>_KAFKA_SHARD`` works too):

- ``KAFKA_BOOTSTRAP_SERVERS`` (required), ``KAFKA_TOPIC_PREFIX`` (default ``dispatch``),
- ``KAFKA_SHARD`` (required): the partition index this application owns,
- ``KAFKA_TRANSACTIONAL_ID`` (default ``<prefix>.shard-<n>``): tie it to the shard, never to
  the process, so a new owner fences the old one,
- ``KAFKA_READ_ONLY`` (default no): read a shard without a producer (fences no one),
- ``KAFKA_RESTORE_TIMEOUT`` / ``KAFKA_WRITE_TIMEOUT`` in seconds (defaults 300 / 30),
- ``KAFKA_EVENTS_AFTER`` (default 0): the local events store holds only the events after
  this notification id (its ``max_notification_id`` is at least that id), and
  ``KAFKA_RESTORE_SNAPSHOTS`` (default yes): no leaves the local snapshots store empty. For
  a caller that restores the rest of the shard's state from a checkpoint of its own: it
  loads the aggregates it needs into the snapshots store (``EventTable.load_record``)
  before the first read; an aggregate it does not load, whose events all lie before that
  id, is not found.

Recorders: the aggregate recorder (``purpose="events"`` or ``"snapshots"``) and the
application recorder. Application events only: there is no tracking or process recorder
(eventsourcing's projections and process applications), and the factory's
``tracking_recorder()`` and ``process_recorder()`` raise ``UnsupportedRecorderError`` (a
``NotImplementedError``) before opening anything.

Layout: one recorder serves one shard = partition ``n`` of ``<p>.events`` (stored events,
many per record: one ``insert_events`` batch is one record, or a few if large, value
``{"events": [...]}``; see ``codec``) and ``<p>.snapshots`` (the ``purpose="snapshots"``
recorder; compacted, one record per snapshot, key = aggregate id). Values are readable JSON
(``codec``).

Notification ids: the ``i``-th event (from 0) of the events record at offset ``o`` has id
``o * 4096 + i + 1`` (``codec.notification_id``; ``codec.record_position`` maps an id back
to ``(offset, index)``; a record holds at most ``codec.EVENTS_PER_RECORD`` = 4096 events).
Ids rise strictly with log order and are contiguous within one record (one batch, unless it
was split), with gaps between records and where transaction markers take offsets. Every
reader of the events partition (the local store, ``dispatch.adapters.kafka.logsource``, the
simulator's follower) unpacks records and numbers events this way; records written one
event per record before batching are read as records of one event.

Reads come from local stores (``store``) rebuilt from those partitions, read_committed from
offset 0, when the factory first needs them, after its writer has fenced the previous owner.
Optimistic concurrency: the single writer checks each whole batch against the local version
index and raises ``IntegrityError`` before producing anything (a new event's version must
exceed its aggregate's last version; a snapshot's version must not be present yet).

Transactions (``shard``). With no transaction open, each ``insert_events`` is its own Kafka
transaction (begin, produce, flush, commit). A shard worker instead runs ONE transaction per
batch; inserts made by its thread join it (they produce and flush, to learn their ids, but do
not commit), and it adds its own records and the consumed offsets::

    recorder = app.recorder  # a KafkaApplicationRecorder
    with recorder.transaction() as producer:  # begin(); commit() at the end, abort() on error
        app.save(*aggregates)  # events produced into the transaction
        producer.send(topics.outcomes, key=..., value=..., partition=shard)
        producer.send_offsets_to_transaction(offsets, consumer.group_metadata())

or ``recorder.begin()`` / ``recorder.commit()`` / ``recorder.abort()``, from one thread.
Until the commit, the transaction's events are visible only to its own thread's
``select_events`` (so the batch can load what it just saved); notifications and subscribers
see them after the commit. On abort (or a failed commit) the local stores drop them.

Fencing: a second writer for the shard fences the first; the first's next write raises
``ProducerLostError`` (an ``OperationalError``) and nothing it tried is readable by
``read_committed`` consumers. Its recorder is finished: close it, and release the shard.
The error is ``FencedError`` when Kafka said "fenced"; kafka-python often says it only by
refusing to commit and then to abort, and a producer that cannot abort is unusable anyway,
so the writer treats both alike (see ``errors``).
"""

from dispatch.adapters.kafka.eventstore.errors import (
    FencedError,
    ProducerLostError,
    UnsupportedRecorderError,
)
from dispatch.adapters.kafka.eventstore.factory import KafkaFactory, KafkaSettings
from dispatch.adapters.kafka.eventstore.recorders import (
    KafkaAggregateRecorder,
    KafkaApplicationRecorder,
    KafkaRecorder,
    KafkaSubscription,
)
from dispatch.adapters.kafka.eventstore.writer import PartitionWriter

Factory = KafkaFactory

__all__ = [
    "Factory",
    "FencedError",
    "KafkaAggregateRecorder",
    "KafkaApplicationRecorder",
    "KafkaFactory",
    "KafkaRecorder",
    "KafkaSettings",
    "KafkaSubscription",
    "PartitionWriter",
    "ProducerLostError",
    "UnsupportedRecorderError",
]
