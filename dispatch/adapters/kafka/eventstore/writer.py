"""The partition writer: one transactional producer per owned partition (the store's
"shard", ``KAFKA_SHARD``), and the transactions it runs.

The transactional id is tied to the partition, so ``init_transactions`` of a new owner
fences the old one (and aborts its open transaction). One writer serves every recorder a
factory makes (events, snapshots), so a worker's transaction can hold all of them.

Two ways to write:

- the caller's transaction: ``begin()`` ... ``commit()`` / ``abort()`` (or ``transaction()``).
  The calling thread owns it and holds the write lock until it ends; recorder inserts made
  by that thread join it, inserts from other threads wait. ``producer`` is there for the
  caller's own records (outcomes, dead letters, ``send_offsets_to_transaction``);
- a transaction per insert: a recorder insert with no open transaction begins one, produces,
  flushes and commits it before returning.

Participants (the local stores that took pending rows) are committed after the Kafka commit
and rolled back on abort or on any failure, so the stores never show what the log lacks.

A producer that was fenced, or that could not begin or abort a transaction, is lost: the
writer never calls it again, and every write raises ``ProducerLostError`` (``FencedError``
when a fencing error was seen). Only kafka-python's public behaviour decides this: its
private transaction state is not read.

kafka-python's commit, abort and ``send_offsets_to_transaction`` wait for the transaction
coordinator with no time limit, and were seen to wait for ever when the coordinator's broker
was killed (the producer asked the dead node again and never looked the coordinator up
anew). The writer runs them on a helper thread and waits at most ``commit_timeout_s``: a
call that has not returned by then loses the producer, and the shard is reopened with a new
one, whose ``init_transactions`` finishes the old transaction either way (commits it if its
commit reached the coordinator, aborts it otherwise) before the shard reads its log.

A transaction is kept short of the broker's transaction timeout
(``clients.TRANSACTION_TIMEOUT_MS``, 20 s): its flushes wait at most until ``FLUSH_SPAN_S``
after it began (at least ``MIN_FLUSH_S``, so a batch that took long to decide still gets a
flush), then the commit is bounded as above. A transaction the broker aborted on its timeout
comes back to kafka-python as a fence (``FencedError``), and the worker reopens the shard
once the group confirms it still owns it; a flush that overran aborts the batch instead,
which is retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from threading import Event, RLock, Thread, get_ident
from typing import Any, Protocol

import kafka.errors as kafka_errors
from eventsourcing.persistence import OperationalError, PersistenceError, ProgrammingError
from kafka import KafkaProducer

from dispatch.adapters.kafka.eventstore.clients import new_producer
from dispatch.adapters.kafka.eventstore.connection import Connection
from dispatch.adapters.kafka.eventstore.errors import (
    FencedError,
    ProducerLostError,
    is_fencing,
)

log = logging.getLogger(__name__)
# How long a commit, an abort or adding the consumed offsets may take before the producer is
# given up. A commit takes milliseconds (0.3 s seen in a slow batch under load); the bound
# adds to the recovery after a coordinator's broker dies when the client hangs (10 s gave
# 10.9 s in fault test 1, over its 10 s goal). Given up too soon costs a shard reopen, never
# correctness: the new producer's init finishes the old transaction either way.
COMMIT_TIMEOUT_S = 5.0
# How long after a transaction began its flushes may still wait (the clients' request timeout,
# ``clients.REQUEST_TIMEOUT_MS``, is 5 s: room for one request given up and sent again to a
# new leader), and the least a flush gets. With three bounded calls after it, a transaction
# stays under the 20 s ``clients.TRANSACTION_TIMEOUT_MS`` unless all three use their bound.
FLUSH_SPAN_S = 7.0
MIN_FLUSH_S = 1.0


class Participant(Protocol):
    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class PartitionWriter:
    """Owns the partition's transactional producer and runs its transactions."""

    producer: KafkaProducer

    def __init__(
        self,
        bootstrap: Connection,
        transactional_id: str,
        timeout_s: float = 30.0,
        commit_timeout_s: float = COMMIT_TIMEOUT_S,
    ) -> None:
        self._init_state(transactional_id, timeout_s)
        self.commit_timeout_s = commit_timeout_s
        self.producer = new_producer(
            bootstrap,
            transactional_id=transactional_id,
            max_block_ms=int(timeout_s * 1000),
            client_id=transactional_id,
            # The next transaction's AddPartitionsToTxn often meets CONCURRENT_TRANSACTIONS
            # while the broker finishes the previous commit; kafka-python then sleeps the
            # full retry backoff (100 ms by default) before retrying: keep it short.
            retry_backoff_ms=10,
            # Every insert ends with a flush, and a commit flushes too: lingering only lets
            # a batch's records travel in one produce request instead of one each.
            linger_ms=1000,
        )
        try:
            self.producer.init_transactions()
        except Exception as e:
            self.producer.close(timeout=1)
            raise OperationalError(f"init_transactions({transactional_id}) failed: {e}") from e

    def _init_state(self, transactional_id: str, timeout_s: float) -> None:
        self.transactional_id = transactional_id
        self.timeout_s = timeout_s
        self._lock = RLock()
        self._open = False  # a Kafka transaction is open
        self._external = False  # ... begun by a caller (begin()), not by an insert
        self._owner: int | None = None  # the thread that opened it
        self._participants: list[Participant] = []
        self._failed: PersistenceError | None = None  # this transaction cannot commit
        self._broken: PersistenceError | None = None  # this writer cannot write any more
        self._refs = 0
        self._sent = 0
        self._closed = False
        self._stuck = False  # a call to the producer never returned
        self._began = 0.0  # monotonic: when the open transaction began

    # -- the caller's transaction -----------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        """True if the calling thread has begun a transaction it has not ended."""
        return self._external and self._owner == get_ident()

    def begin(self) -> KafkaProducer:
        """Begin a transaction owned by the calling thread; return the producer."""
        self._acquire()
        try:
            if self._open:
                raise ProgrammingError("a transaction is already open on this shard")
            self._begin()
        except BaseException:
            self._lock.release()
            raise
        self._external = True
        return self.producer

    def commit(self) -> None:
        """Commit the caller's transaction, then its pending rows; raise if it failed."""
        self._require_owner()
        try:
            self._commit()
        finally:
            self._end_external()

    def abort(self) -> None:
        """Abort the caller's transaction; the stores drop its pending rows."""
        self._require_owner()
        try:
            self._abort()
        finally:
            self._end_external()

    @contextmanager
    def transaction(self) -> Iterator[KafkaProducer]:
        """``begin()``; commit when the block ends, abort if it raises.

        If the producer is lost by then (the block's error, or the abort, showed it), the
        block's error is raised as that ``ProducerLostError``: the caller must release the
        shard, not retry with this writer.
        """
        producer = self.begin()
        try:
            yield producer
        except BaseException as e:
            with suppress(ProducerLostError):  # learnt from ``_broken`` below
                self.abort()
            lost = self._broken
            if isinstance(e, Exception) and isinstance(lost, ProducerLostError) and lost is not e:
                raise lost from e
            raise
        self.commit()

    # -- recorder inserts ---------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the write lock for one insert: join the caller's transaction, or run one.

        Inside the block, ``send`` begins this insert's own transaction on first use; it is
        committed when the block ends, and aborted if the block raises. Kafka errors come out
        as ``OperationalError`` (``ProducerLostError`` once the producer is lost).
        """
        self._acquire()
        try:
            if self._broken is not None:
                raise self._broken
            if self._external:
                sent = self._sent
                try:
                    yield
                except BaseException as e:
                    if self._sent > sent:  # records of a failed insert are in the transaction
                        self._failed = self._failed or self._translate(e)
                    if isinstance(e, kafka_errors.KafkaError):
                        raise self._translate(e) from e
                    raise
                return
            try:
                yield
            except BaseException as e:
                if self._open:
                    self._abort(quiet=True)
                if isinstance(e, kafka_errors.KafkaError):
                    raise self._translate(e) from e
                raise
            if self._open:
                self._commit()
        finally:
            self._lock.release()

    def send(
        self,
        topic: str,
        partition: int,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any:
        """Produce one record into the current transaction (only inside ``writing``)."""
        if not self._open:
            self._begin()
        self._sent += 1
        return self.producer.send(
            topic, value=value, key=key, partition=partition, headers=headers or None
        )

    def send_offsets(self, offsets: Any, group_metadata: Any) -> None:
        """Add the consumed ``offsets`` to the caller's transaction (bounded, as a commit)."""
        self._require_owner()
        try:
            self._bounded(
                lambda: self.producer.send_offsets_to_transaction(offsets, group_metadata),
                "add the consumed offsets to its transaction",
            )
        except BaseException as e:
            self._failed = self._failed or self._translate(e)
            raise self._translate(e) from e

    def flush(self, futures: list[Any]) -> list[int]:
        """Flush and return the offsets of the given send futures (within the flush bound of
        the open transaction: ``flush_wait_s``)."""
        wait = self.flush_wait_s()
        self.producer.flush(timeout=wait)
        return [f.get(timeout=wait).offset for f in futures]

    def flush_wait_s(self) -> float:
        """How long a flush may wait now: until ``FLUSH_SPAN_S`` after the open transaction
        began, at least ``MIN_FLUSH_S``, at most the write timeout."""
        if not self._open:
            return self.timeout_s
        left = self._began + FLUSH_SPAN_S - time.monotonic()
        return min(self.timeout_s, max(MIN_FLUSH_S, left))

    def prefetch(self, topics: Iterable[str]) -> list[Thread]:
        """Fetch the producer's metadata of ``topics`` in the background (one thread each,
        so that they share a request), for the first send to each not to wait for it:
        kafka-python spaces two metadata requests of a producer 100 ms apart whatever its
        ``retry_backoff_ms``, so a batch sending to a new topic waited that long. A fetch
        that fails is logged and changes nothing: the first send fetches it, as before."""
        producer, threads = self.producer, []

        def fetch(topic: str) -> None:
            try:
                producer.partitions_for(topic)
            except Exception as e:
                if not self._closed:
                    log.info("%s: metadata of %s not fetched ahead (%r); its first send "
                             "fetches it", self.transactional_id, topic, e)  # fmt: skip

        for topic in topics:
            thread = Thread(target=fetch, args=(topic,), daemon=True,
                            name=f"{self.transactional_id} metadata {topic}")  # fmt: skip
            thread.start()
            threads.append(thread)
        return threads

    def enlist(self, participant: Participant) -> None:
        if participant not in self._participants:
            self._participants.append(participant)

    # -- lifetime -----------------------------------------------------------------------------
    def retain(self) -> None:
        self._refs += 1

    def release(self) -> None:
        self._refs -= 1
        if self._refs <= 0:
            self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._lock.acquire(timeout=self.timeout_s):
            log.warning("closing %s while a transaction is open", self.transactional_id)
        else:
            try:
                if self._open:
                    self._abort(quiet=True)
            finally:
                self._lock.release()
        self._broken = self._broken or ProgrammingError("the shard writer is closed")
        # A producer stuck in a call is closed without waiting for what it has pending.
        self._close_producer(0 if self._stuck else 5)

    def _close_producer(self, timeout_s: float) -> None:
        """Close the producer; never raise, so the shard's release always completes.

        kafka-python's ``close`` flushes first and raises if records are still pending
        (a broker that died led their partitions), before it stops its sender thread; then
        the sender is stopped through its ``force_close`` (kafka-python has no public call
        for it), so the old producer's thread and connections do not outlive the shard.
        """
        try:
            self.producer.close(timeout=timeout_s)
        except Exception as e:
            log.warning("%s: the producer did not close cleanly (%r); stopping its sender",
                        self.transactional_id, e)  # fmt: skip
            sender = getattr(self.producer, "_sender", None)
            with suppress(Exception):
                if sender is not None:
                    sender.force_close()

    # -- internals ------------------------------------------------------------------------------
    def _acquire(self) -> None:
        if not self._lock.acquire(timeout=self.timeout_s):
            raise OperationalError(
                f"timed out after {self.timeout_s}s waiting for the open transaction "
                f"of {self.transactional_id}"
            )

    def _require_owner(self) -> None:
        if not self.in_transaction:
            raise ProgrammingError("no transaction begun by this thread")

    def _end_external(self) -> None:
        self._external = False
        self._owner = None
        self._lock.release()

    def _begin(self) -> None:
        if self._broken is not None:
            raise self._broken
        try:
            self.producer.begin_transaction()
        except kafka_errors.KafkaError as e:  # no transaction is open: refused, so lost
            raise self._lose(e, "could not begin a transaction") from e
        self._open, self._owner, self._failed = True, get_ident(), None
        self._began = time.monotonic()

    def _commit(self) -> None:
        participants, self._participants = self._participants, []
        try:
            if self._failed is not None:
                raise self._failed
            self.producer.flush(timeout=self.flush_wait_s())  # the caller's lingering records
            self._bounded(self.producer.commit_transaction, "commit its transaction")
        except BaseException as e:
            self._participants = participants
            self._abort(quiet=True)
            raise self._translate(e) from e  # after the abort, which may lose the producer
        self._open = False
        for participant in participants:
            participant.commit()

    def _abort(self, *, quiet: bool = False) -> None:
        participants, self._participants = self._participants, []
        self._open = False
        error: ProducerLostError | None = None
        if not isinstance(self._broken, ProducerLostError):  # a lost producer is not called
            try:
                self._bounded(self.producer.abort_transaction, "abort its transaction")
            except Exception as e:
                error = self._lose(e, "could not abort its transaction")
        for participant in participants:
            participant.rollback()
        if error is not None and not quiet:
            raise error

    def _bounded(self, call: Callable[[], object], what: str) -> None:
        """``call()`` on a helper thread, waited for at most ``commit_timeout_s``; its error
        is raised here. One that does not return in time loses the producer, and its thread
        stays blocked for good (kafka-python's wait has no limit, and closing the producer
        does not end it): one parked thread per producer lost this way, each logged."""
        done, failed = Event(), []

        def run() -> None:
            try:
                call()
            except BaseException as e:
                failed.append(e)
            finally:
                done.set()

        Thread(target=run, daemon=True, name=f"{self.transactional_id} {what}").start()
        if not done.wait(self.commit_timeout_s):
            self._stuck = True
            timeout = TimeoutError(f"no answer within {self.commit_timeout_s:g} s")
            log.warning("%s: could not %s within %g s (COMMIT_TIMEOUT_S): the producer is given "
                        "up and its call's thread left blocked", self.transactional_id, what,
                        self.commit_timeout_s)  # fmt: skip
            raise self._lose(timeout, f"could not {what}")
        if failed:
            raise failed[0]

    def _lose(self, e: BaseException, failure: str) -> ProducerLostError:
        """Never call the producer again; every later write raises the error returned.

        ``FencedError`` if ``e`` says the producer was fenced (kept once seen), else a
        ``ProducerLostError`` that says what failed.
        """
        tid = self.transactional_id
        if is_fencing(e):
            error: ProducerLostError = FencedError(
                f"producer {tid} was fenced (a newer producer of the shard began, or the "
                "coordinator rolled its transaction back on the transaction timeout)"
            )
        else:
            error = ProducerLostError(
                f"producer {tid} {failure} ({e!r}), so it is not used again: "
                "close the writer and reopen the shard with a new producer"
            )
        if not isinstance(self._broken, FencedError):
            self._broken = error
        return self._broken

    def _translate(self, e: BaseException) -> PersistenceError:
        if is_fencing(e):
            return self._lose(e, "was fenced")
        if isinstance(self._broken, ProducerLostError):
            return self._broken  # whatever failed, the producer is gone: that is the news
        if isinstance(e, PersistenceError):
            return e
        return OperationalError(f"kafka ({self.transactional_id}): {e!r}")


class ReadOnlyWriter(PartitionWriter):
    """For readers (replay, inspection) of a shard: no producer, so it fences no one."""

    def __init__(self, shard_name: str) -> None:
        self._init_state(shard_name, timeout_s=1.0)
        self._broken = ProgrammingError(f"{shard_name} was opened read-only (KAFKA_READ_ONLY)")

    def prefetch(self, topics: Iterable[str]) -> list[Thread]:
        return []  # no producer: nothing is ever sent

    def close(self) -> None:
        self._closed = True
