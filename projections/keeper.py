"""The keeper of a process's views: keeps them in a ``ViewStore`` every so often and moves
the ended rides that left the rides view into the ``RideArchive``.

Order matters: evicted rides are archived (durably) before views that no longer hold them
are kept, so a ride is always answerable from one or the other; after a crash the views
kept last still hold the rides archived since, and evict (and archive) them again. The
keeper runs on the thread that folds (the projection runner's), or once that thread has
stopped, so nothing the events made can change under it: the views are encoded without
their lock. Pings change some views from other threads, but only what the kept form leaves
out (positions, the index, the heatmap's supply: each view's ``__getstate__``); the
drivers' last pings a history point keeps are copied under the lock. Encoding pickles the
big views' rows in chunks of a few milliseconds each (``projections.rows``), so readers
and the API's event loop run meanwhile: holding the lock, or one long pickling, would stall
every query for the whole encoding (0.4 s for 50,000 drivers; docs/BENCHMARKS.md). With a
``ViewHistory``, a save also adds a point to it once
``history_every_s`` of log time has passed since the last (``projections.history``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from projections.history import HistoryPoint, ViewHistory
from projections.store import RideArchive, ViewStore, encode
from projections.views import ViewSet

log = logging.getLogger(__name__)

# Evicted rides are archived by this many at most, while a long fold goes on.
ARCHIVE_BATCH = 5_000


class ViewKeeper:
    """``every_s`` 0 keeps the views only when asked (``save``: at a clean stop)."""

    def __init__(
        self,
        views: ViewSet,
        store: ViewStore,
        archive: RideArchive,
        log_name: str,
        every_s: float,
        clock: Callable[[], float] = time.monotonic,
        history: ViewHistory | None = None,
        history_every_s: float = 900.0,
    ) -> None:
        self.views, self.store, self.archive = views, store, archive
        self.log_name, self.every_s, self.clock = log_name, every_s, clock
        self.history, self.history_every_s = history, history_every_s
        self._due: float | None = None
        times = history.times() if history is not None else []
        self._last_point = times[-1] if times else None
        self._plan()

    def after_page(self) -> None:
        """Called after each folded page: archives evicted rides once there are enough."""
        if len(self.views.evicted) >= ARCHIVE_BATCH:
            self.archive_evicted()

    def archive_evicted(self) -> int:
        """Evicted rides into the archive; they stay in the view's ``evicted`` (and
        answerable from there) until the archive holds them."""
        with self.views.lock:
            rows = list(self.views.evicted.values())
        if rows:
            self.archive.put(rows)
            with self.views.lock:
                for row in rows:
                    self.views.evicted.pop(row.ride_id, None)
        return len(rows)

    def save(self) -> None:
        """Archive the evicted rides, then keep the views (all or nothing)."""
        started = time.perf_counter()
        archived = self.archive_evicted()
        stored = encode(self.views.projections, self.views.states, self.log_name)  # no lock
        taken_at = self.views.folded_until
        point_due = (
            self.history is not None
            and taken_at > 0
            and (self._last_point is None or taken_at >= self._last_point + self.history_every_s)
        )
        with self.views.lock:  # pings move them from other threads
            positions = self.views.positions() if point_due else {}
        self.store.save(stored)
        self._plan()
        if point_due:
            assert self.history is not None
            self.history.add(HistoryPoint(taken_at, stored, positions))
            self._last_point = taken_at
            log.info("views' state at %.0f kept in %s", taken_at, self.history.where)
        log.info(
            "views kept in %s (%d bytes, %d ended rides archived) in %.3f s",
            self.store.where,
            sum(len(b) for b in stored.views.values()),
            archived,
            time.perf_counter() - started,
        )

    def save_soon(self) -> None:
        """Keep the views at the next ``maybe_save`` (after a long fold at start)."""
        self._due = self.clock()

    def maybe_save(self) -> None:
        """Keep the views when due; a failure is logged and tried again later."""
        if self._due is None or self.clock() < self._due:
            return
        try:
            self.save()
        except Exception:
            self._due = self.clock() + max(self.every_s, 10.0)
            log.exception("views could not be kept in %s; trying again later", self.store.where)

    def _plan(self) -> None:
        self._due = self.clock() + self.every_s if self.every_s > 0 else None
