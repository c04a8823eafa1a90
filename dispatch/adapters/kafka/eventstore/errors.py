"""The module's own errors, and how Kafka errors are recognised as fencing."""

from __future__ import annotations

from time import monotonic, sleep
from typing import Any

import kafka.errors as kafka_errors
from eventsourcing.persistence import NotSupportedError, OperationalError

# INVALID_PRODUCER_EPOCH is what a zombie's produce request gets; for a transactional
# producer it means the same as PRODUCER_FENCED (the Java client normalises it so).
_FENCING = (kafka_errors.ProducerFencedError, kafka_errors.InvalidProducerEpochError)


class FencedError(OperationalError):
    """A newer producer with this shard's transactional id took the shard over.

    Nothing this writer produced after the takeover is visible to ``read_committed``
    readers, and the writer cannot write again: close it (the process lost the shard).
    """


class UnsupportedRecorderError(NotSupportedError, NotImplementedError):
    """Asked for a recorder this module does not have (tracking, process).

    A ``NotImplementedError``, as eventsourcing raises for what a recorder does not do, and
    eventsourcing's ``NotSupportedError`` (PEP 249's "not supported by the database"), so
    either ``except`` catches it.
    """


def is_fencing(error: object) -> bool:
    """True for a fencing error (class or instance)."""
    if isinstance(error, type):
        return issubclass(error, _FENCING)
    return isinstance(error, _FENCING)


def producer_was_fenced(producer: Any, error: BaseException, timeout_s: float) -> bool:
    """True if ``error``, or the state it left ``producer`` in, means the producer is fenced.

    A zombie's produce fails with INVALID_PRODUCER_EPOCH; kafka-python then tries an epoch
    bump (KIP-360), which the coordinator refuses with PRODUCER_FENCED. Calls made meanwhile
    fail with a bare ``KafkaError`` ("invalid transition"): wait (at most ``timeout_s``) for
    the bump to settle, then look at the transaction manager's last error.
    """
    if is_fencing(error):
        return True
    manager = getattr(producer, "_transaction_manager", None)
    if manager is None:
        return False
    deadline = monotonic() + timeout_s
    while manager.is_bumping_epoch() and monotonic() < deadline:
        sleep(0.01)
    return is_fencing(manager.last_error)
