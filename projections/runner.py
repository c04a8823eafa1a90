"""The projection runner: follows every shard of a log source and folds new events.

Idempotent on redelivery (each view skips positions at or before its checkpoint). In
embedded mode it follows the shard SQLite files; on Kafka the source is a read_committed
consumer of the events topic. ``nudge()`` wakes it at once after a commit. With a
``ViewKeeper`` it also keeps the views every so often and archives evicted rides, on its
own thread, between folds.

It also notes, per shard, when the last read that went to the shard's end began
(``caught_up_at``, by the monotonic clock): the views then hold every event committed
before that moment. ``age`` is how long ago that was, which bounds how late a revocation
recorded in the shard can be to the views (``dispatch.api.revocation``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from dispatch.log import LogEvent, LogSource, pages
from projections.keeper import ViewKeeper
from projections.views import ViewSet

log = logging.getLogger(__name__)


class ReadCheck(Protocol):
    """Something a catch-up meets on its way (``projections.warm.AnchorCheck``)."""

    def start(self, shard: int, after: int) -> int:
        """Where to read ``shard`` from (at most ``after``)."""
        ...

    def see(self, page: Sequence[LogEvent]) -> None:
        """Each page read, before it is folded; raises to stop the catch-up."""
        ...

    def finish(self, shard: int) -> None:
        """The shard is read to its end; raises to stop the catch-up."""
        ...


class ProjectionRunner:
    def __init__(
        self,
        source: LogSource,
        views: ViewSet,
        batch: int = 2_000,
        keeper: ViewKeeper | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source, self.views, self.batch, self.keeper = source, views, batch, keeper
        self._monotonic = monotonic
        # Per shard: when the last read that reached the shard's end began (monotonic s).
        self.caught_up_at: dict[int, float] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listeners: list[Callable[[LogEvent], None]] = []

    def catch_up(self, check: ReadCheck | None = None) -> int:
        """Fold everything new on every shard; returns the number of events applied. With
        a ``check``, each shard is read from where it says and each page shown to it."""
        applied = 0
        for shard in self.source.shards():
            begun = self._monotonic()
            after = self.views.position(shard)
            start = check.start(shard, after) if check is not None else after
            for page in pages(self.source.read(shard, start), self.batch):
                if check is not None:
                    check.see(page)
                    if page[0].position <= after:  # read again for the check only
                        page = [e for e in page if e.position > after]
                if page:
                    self._apply(page)
                    applied += len(page)
            if check is not None:
                check.finish(shard)
            if self.source.reached_end(shard):
                with self.views.progress:
                    self.caught_up_at[shard] = begun
                    self.views.progress.notify_all()
        return applied

    def bound_pass(self, seconds: float) -> None:
        """Keep a pass over every shard within about ``seconds`` however many partitions
        stall: the shards are read one after another, so a read that waits for a stalled
        one ages every other shard too. Each read waits at most ``seconds`` divided among
        the shards for fetches that bring nothing (``LogSource.set_read_patience``)."""
        self.source.set_read_patience(seconds / max(1, len(self.source.shards())))

    def age(self, shard: int) -> float:
        """Seconds since the last read of ``shard`` that reached its end began (infinite
        before the first): the views hold every event committed longer ago."""
        at = self.caught_up_at.get(shard)
        return math.inf if at is None else self._monotonic() - at

    def wait_caught_up(self, shard: int, timeout_s: float) -> bool:
        """Block until a read of ``shard`` that began after this call reached its end (the
        views then hold every event committed before the call)."""
        since = self._monotonic()
        self.nudge()
        with self.views.progress:
            return self.views.progress.wait_for(
                lambda: self.caught_up_at.get(shard, -math.inf) >= since, timeout_s
            )

    def _apply(self, page: list[LogEvent]) -> None:
        with self.views.lock:
            self.views.apply_page(page)
            self.views.progress.notify_all()
        if self.keeper is not None:
            self.keeper.after_page()
        for listener in self.listeners:
            for event in page:
                listener(event)

    def nudge(self) -> None:
        self._wake.set()

    def start(self, interval_s: float = 0.25) -> None:
        """Follow on a thread of its own (again, after a ``stop``)."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(interval_s,), daemon=True, name="projections"
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self, interval_s: float) -> None:
        while not self._stop.is_set():
            try:
                self.views.settle()
                self.catch_up()
            except Exception:
                log.exception("projection runner: catch-up failed; retrying")
            if self.keeper is not None:
                self.keeper.maybe_save()
            self._wake.wait(interval_s)
            self._wake.clear()
