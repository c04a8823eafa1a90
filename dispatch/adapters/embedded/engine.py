"""The embedded engine: every shard's worker in one process, over the in-process transport.

It owns each batch here: poll, let the worker decide and save (one SQLite transaction),
publish the outcomes and dead letters, tell the worker the batch is durable. Its failure
policy: a batch that could not be saved is dropped, its commands are answered
``unavailable`` (nothing was recorded: a retry is safe) and the shard's state is refolded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from dispatch import logs
from dispatch.adapters.embedded.transport import EmbeddedTransport
from dispatch.shard.inbound import ForeignDriver, Inbound
from dispatch.shard.worker import Batch, BatchReport, ShardWorker

log = logging.getLogger(__name__)


class EmbeddedEngine:
    def __init__(
        self,
        transport: EmbeddedTransport,
        workers: Sequence[ShardWorker],
        closers: Sequence[Callable[[], None]] = (),
    ) -> None:
        """``workers`` restored; with several, each sees the others' drivers (pings and
        availability) and may ask their owners for them. ``closers`` release what the
        workers share (the personal-data key store), after the workers' own stores."""
        self.transport = transport
        self.workers = {w.shard: w for w in workers}
        self._closers = list(closers)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        if len(self.workers) > 1:
            for worker in self.workers.values():
                self._tell_others(worker.shard, worker.local_drivers())

    def restore(self) -> int:
        count = sum(w.restore() for w in self.workers.values())
        for worker in self.workers.values():
            self._tell_others(worker.shard, worker.local_drivers())
        return count

    def _tell_others(self, shard: int, items: list[ForeignDriver]) -> None:
        if len(self.workers) > 1:
            self.transport.send_foreign(items, [s for s in self.workers if s != shard])

    def _refill(self, worker: ShardWorker) -> None:
        """A worker restored after a failed batch: what it knew of other shards' drivers."""
        for other in self.workers.values():
            if other is not worker:
                self.transport.send_foreign(other.local_drivers(), [worker.shard])

    def run_once(self) -> list[BatchReport]:
        """One batch on every shard (used by the simulator, which drives a simulated clock)."""
        return [self.run_batch(w) for w in self.workers.values()]

    def run_batch(self, worker: ShardWorker, timeout_s: float = 0.0) -> BatchReport:
        """Poll one batch of ``worker``'s shard and see it through (its shard and number in
        the log context)."""
        inbound = self.transport.poll(worker.shard, worker.max_batch, timeout_s)
        with logs.bound(shard=worker.shard, batch=worker.next_batch()):
            return self._see_through(worker, inbound)

    def _see_through(self, worker: ShardWorker, inbound: Inbound) -> BatchReport:
        batch: Batch
        try:
            batch = worker.process(inbound)
        except Exception:
            log.exception("shard %s: batch not saved; dropped, shard restored", worker.shard)
            worker.recover()
            self._refill(worker)
            batch = worker.unavailable(inbound)
        if batch.poison:
            self.transport.dead_letter(batch.poison)
        if batch.outcomes:
            self.transport.publish_outcomes(batch.outcomes)
        self.transport.send_between_shards(batch.messages, batch.acks)
        if len(self.workers) > 1:
            self._tell_others(worker.shard, batch.told)
        worker.committed(batch)
        return batch.report

    def start(self, poll_timeout_s: float = 0.05) -> None:
        """Run each shard's worker in its own thread until ``stop()``."""
        for worker in self.workers.values():
            thread = threading.Thread(
                target=self._loop,
                args=(worker, poll_timeout_s),
                daemon=True,
                name=f"shard-{worker.shard}",
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = [t for t in self._threads if t.is_alive()]

    def close(self) -> None:
        """Stop, then close every shard's store and what the shards share: their SQLite
        connections would otherwise stay open until the garbage collector finds them, and
        close (checkpointing and deleting the ``-wal`` files) at a moment nobody chose.
        A shard thread that did not stop in time keeps its store (logged)."""
        self.stop()
        if self._threads:
            log.warning("%d shard thread(s) did not stop: stores left open", len(self._threads))
            return
        for worker in self.workers.values():
            worker.app.close()
        for close in self._closers:
            close()
        self._closers.clear()

    def _loop(self, worker: ShardWorker, timeout_s: float) -> None:
        while not self._stop.is_set():
            try:
                self.run_batch(worker, timeout_s)
            except Exception:  # keep serving
                log.exception("shard %s: batch failed", worker.shard)
