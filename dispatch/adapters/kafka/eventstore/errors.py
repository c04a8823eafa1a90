"""The module's own errors, and how Kafka errors are recognised as fencing."""

from __future__ import annotations

import kafka.errors as kafka_errors
from eventsourcing.persistence import NotSupportedError, OperationalError

# INVALID_PRODUCER_EPOCH is what a zombie's produce request gets; for a transactional
# producer it means the same as PRODUCER_FENCED (the Java client normalises it so).
_FENCING = (kafka_errors.ProducerFencedError, kafka_errors.InvalidProducerEpochError)


class ProducerLostError(OperationalError):
    """The shard writer's producer can no longer be used, and never is again.

    Raised when it was fenced (``FencedError``), and when it could not begin or abort a
    transaction. kafka-python refuses those only when the producer has a fatal error or is
    bumping its epoch, and a zombie's fencing often shows up only so: after its epoch bump
    is refused, every transactional call fails with a bare ``KafkaError``. What the
    producer left open is aborted by the shard's next producer (its ``init_transactions``)
    or by the broker's transaction timeout, so ``read_committed`` readers never see it.

    The writer is finished: close it, and release the shard. Whoever opens the shard next
    gets a new producer, which fences any older one (and a consumer group's generation
    fences a zombie's offset commits), and restores the shard from its log, which settles
    whatever the failed call left uncertain.
    """


class FencedError(ProducerLostError):
    """Kafka said the producer is fenced: a newer producer with this shard's transactional
    id began (another process took the shard over), or the transaction coordinator rolled
    the open transaction back on its timeout (kafka-python reports both alike).

    Nothing this writer produced in its open transaction is visible to ``read_committed``
    readers, and the writer cannot write again: close it. Whether the process still owns
    the shard is the consumer group's word (the worker asks it before reopening).
    """


class UnsupportedRecorderError(NotSupportedError, NotImplementedError):
    """Asked for a recorder this module does not have (tracking, process).

    A ``NotImplementedError``, as eventsourcing raises for what a recorder does not do, and
    eventsourcing's ``NotSupportedError`` (PEP 249's "not supported by the database"), so
    either ``except`` catches it.
    """


def is_fencing(error: BaseException) -> bool:
    """True for an error that says the producer was fenced (Kafka's, or ``FencedError``)."""
    return isinstance(error, (FencedError, *_FENCING))
