"""The embedded engine: every shard's worker in one process, over the in-process transport."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from dispatch.adapters.embedded.transport import EmbeddedTransport
from dispatch.worker import BatchReport, ShardWorker

log = logging.getLogger(__name__)


class EmbeddedEngine:
    def __init__(self, transport: EmbeddedTransport, workers: Sequence[ShardWorker]) -> None:
        self.transport = transport
        self.workers = {w.shard: w for w in workers}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def restore(self) -> int:
        return sum(w.restore() for w in self.workers.values())

    def run_once(self) -> list[BatchReport]:
        """One batch on every shard (used by the simulator, which drives a simulated clock)."""
        return [w.run_once() for w in self.workers.values()]

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
        self._threads.clear()

    def _loop(self, worker: ShardWorker, timeout_s: float) -> None:
        while not self._stop.is_set():
            try:
                worker.run_once(timeout_s)
            except Exception:  # keep serving; the worker already restored itself
                log.exception("shard %s: batch failed", worker.shard)
