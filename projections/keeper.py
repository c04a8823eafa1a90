"""The keeper of a process's views: keeps them in a ``ViewStore`` every so often and moves
the ended rides that left the rides view into the ``RideArchive``.

Order matters: evicted rides are archived (durably) before views that no longer hold them
are kept, so a ride is always answerable from one or the other; after a crash the views
kept last still hold the rides archived since, and evict (and archive) them again.

The keeper runs on the thread that folds (the projection runner's), or once that thread has
stopped, so nothing the events make changes under it while it begins: the views are
encoded as they are at that moment, without their lock. Pings change some views from other
threads, but only what the kept form leaves out (positions, the index, the heatmap's
supply: each view's ``__getstate__``); the drivers' last pings a history point keeps are
copied under the lock.

A keeping writes the views' changes since they were last kept (``projections.parts``: the
parts of the drivers and rides that changed, and each view's small rest), on the whole
views kept before; they are kept whole at the first keeping of a process that folded them
from the start, when the store holds another generation, and once the changes kept on the
whole views pass ``OVERLAY_SHARE`` of their keys. Changes of up to ``INLINE_PARTS`` parts
are encoded here, on this thread (about 12 ms of drivers' parts, twice that of rides');
larger ones, a whole keeping (every view pickled: 0.1-0.9 s of CPU for 50,000 drivers)
and a history point (compressed) run
through a ``Background``: in a serving process a forked child (``dispatch.adapters.posix``),
which sees the views as they were at the fork while this thread goes on folding, and takes
nothing from the GIL the API's event loop needs (docs/BENCHMARKS.md, "The API's tail");
``maybe_save`` takes the result up when the child has ended and writes it. A background
that fails is logged and the views are kept on this thread instead; ``save`` (a clean stop,
the replay tools) always keeps them on this thread. With a ``ViewHistory``, a save also
adds a point to it once ``history_every_s`` of log time has passed since the last
(``projections.history``).
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from projections import parts
from projections.background import Background, InlineBackground, Job, JobFailed
from projections.history import HistoryPoint, ViewHistory
from projections.store import (
    RideArchive,
    StaleViews,
    StoredViews,
    ViewChanges,
    ViewStore,
    encode,
    encode_changes,
)
from projections.views import ViewSet

log = logging.getLogger(__name__)

# Evicted rides are archived by this many at most, while a long fold goes on.
ARCHIVE_BATCH = 5_000
# Views kept by key are kept whole again once the parts kept since they were whole pass
# this share of their keys (or this many, for small views): what a start reads and applies
# stays within a share of the views' size (``projections.parts``).
OVERLAY_SHARE = 0.25
OVERLAY_MIN = 1_000
# Changes of at most this many parts are encoded on the folding thread (about 2.5 us a
# part: 12 ms), not in the background: a fork costs more (docs/BENCHMARKS.md).
INLINE_PARTS = 5_000


@dataclass(frozen=True)
class _Saving:
    """A keeping under way: its job, when it began (perf counter), the rides it archived,
    the views' ``resets`` then, and the parts kept since the views were kept whole once
    it is written."""

    job: Job
    started: float
    archived: int
    resets: int
    overlay: int  # parts kept since the views were kept whole, once this one is


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
        background: Background | None = None,
    ) -> None:
        self.views, self.store, self.archive = views, store, archive
        self.log_name, self.every_s, self.clock = log_name, every_s, clock
        self.history, self.history_every_s = history, history_every_s
        self.background = background if background is not None else InlineBackground()
        self._saving: _Saving | None = None
        self._lock = threading.RLock()  # the folding thread's keeping, and a stop's
        self._closed = False
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
        """Archive the evicted rides, then keep the views (all or nothing), on this thread
        (a clean stop, the replay tools); a keeping under way in the background is
        dropped first. Waits for a ``maybe_save`` under way on another thread (a runner
        that did not stop in time), so the views kept last are these."""
        with self._lock:
            self._drop_pending()
            try:
                self._save_inline()
            except StaleViews as error:  # (the views' generation is forgotten: whole now)
                log.warning("views kept whole in %s: %s", self.store.where, error)
                self._save_inline()

    def _save_inline(self) -> None:
        saving = self._begin(InlineBackground())
        if not self._finish(saving):  # pragma: no cover - an inline job has ended
            raise JobFailed("an inline keeping did not end")

    def save_soon(self) -> None:
        """Keep the views at the next ``maybe_save`` (after a long fold at start)."""
        self._due = self.clock()

    def maybe_save(self) -> None:
        """Keep the views when due, in the background: begin a keeping, or take up the one
        under way once it has ended. A background that fails is logged and the views are
        kept on this thread at once; a failure here is logged and tried again later.
        Nothing once closed."""
        with self._lock:
            if not self._closed:
                self._maybe_save()

    def _maybe_save(self) -> None:
        try:
            if self._saving is None:
                if self._due is None or self.clock() < self._due:
                    return
                self._saving = self._begin(self.background)
            if self._finish(self._saving):
                self._saving = None
        except StaleViews as error:
            self._saving = None
            log.warning("views to be kept whole in %s: %s", self.store.where, error)
            self._due = self.clock()  # at the next call
        except JobFailed as error:
            self._saving = None
            log.warning("views could not be kept in the background (%s); keeping them "
                        "on the folding thread", error)  # fmt: skip
            self._save_or_retry()
        except Exception:
            self._drop_pending()
            self._retry_later()

    def close(self) -> None:
        """Stop a keeping under way, and begin none until ``open`` (the process stops)."""
        with self._lock:
            self._drop_pending()
            self._closed = True

    def open(self) -> None:
        """Keep the views when due again (a runtime started after a stop)."""
        with self._lock:
            self._closed = False

    def _save_or_retry(self) -> None:
        try:
            self.save()
        except Exception:
            self._retry_later()

    def _retry_later(self) -> None:
        self._due = self.clock() + max(self.every_s, 10.0)
        log.exception("views could not be kept in %s; trying again later", self.store.where)

    def _drop_pending(self) -> None:
        if self._saving is not None:
            self._saving.job.cancel()
            self._saving = None

    def _begin(self, background: Background) -> _Saving:
        """Archive the evicted rides, then start encoding the views as they are now (the
        job must see them unchanged while it runs: inline it runs at once; forked, the
        child has its own copy): their changes since the generation kept last (they cost
        what changed, ``projections.parts``), or, when there is none, the whole views;
        and a history point when one is due."""
        started = time.perf_counter()
        archived = self.archive_evicted()
        views = self.views
        taken_at = views.folded_until
        history = self.history
        point_due = (
            history is not None
            and taken_at > 0
            and (self._last_point is None or taken_at >= self._last_point + self.history_every_s)
        )
        with views.lock:  # pings move them from other threads
            positions = views.positions() if point_due else {}
        projections, states, name = views.projections, views.states, self.log_name
        changed, base, generation = views.take_changed(), views.kept_as, uuid.uuid4().hex
        views.kept_as = None  # until this keeping is written
        overlay = views.kept_overlay + sum(map(len, changed.values()))
        if base is not None and overlay > max(OVERLAY_MIN, OVERLAY_SHARE * _keys(views)):
            base = None  # the changes kept since the views were whole: keep them whole again

        def job() -> bytes:
            kept: StoredViews | ViewChanges
            whole = None
            if base is None:
                kept = whole = encode(projections, states, name, generation)
            else:
                kept = encode_changes(projections, states, changed, name, base, generation)
            packed = None
            if point_due and history is not None:
                point = (
                    _for_history(whole)
                    if whole is not None
                    else encode(
                        [p for p in projections if p.name not in LEFT_OUT_OF_HISTORY],
                        states,
                        name,
                    )
                )
                packed = history.pack(HistoryPoint(taken_at, point, positions))
            return pickle.dumps((kept, packed), protocol=5)

        if base is not None and not point_due and overlay - views.kept_overlay <= INLINE_PARTS:
            background = InlineBackground()  # a few changes: cheaper here than a fork
        return _Saving(
            background.start(job), started, archived, views.resets, 0 if base is None else overlay
        )

    def _finish(self, saving: _Saving) -> bool:
        """Keep what the job encoded once it has ended (False while it runs); changes the
        store refuses (another writer replaced the views): ``StaleViews``."""
        data = saving.job.result()
        if data is None:
            return False
        kept, packed = pickle.loads(data)
        if isinstance(kept, ViewChanges):
            self.store.keep_changes(kept)  # StaleViews: the caller keeps them whole
            written = sum(map(len, kept.views.values())) + sum(map(len, kept.rests.values()))
            written += sum(len(b) for changed in kept.parts.values() for b in changed.values())
        else:
            self.store.save(kept)
            written = sum(map(len, kept.views.values()))
        if self.views.resets == saving.resets:  # (views emptied meanwhile: not these)
            self.views.kept_as, self.views.kept_overlay = kept.generation, saving.overlay
        self._plan()
        if packed is not None:
            assert self.history is not None
            self.history.add_packed(packed)
            self._last_point = packed.taken_at
            log.info("views' state at %.0f kept in %s", packed.taken_at, self.history.where)
        log.info(
            "views kept in %s (%s, %d bytes, %d ended rides archived) in %.3f s",
            self.store.where,
            "their changes" if isinstance(kept, ViewChanges) else "whole",
            written,
            saving.archived,
            time.perf_counter() - saving.started,
        )
        return True

    def _plan(self) -> None:
        self._due = self.clock() + self.every_s if self.every_s > 0 else None


def _keys(views: ViewSet) -> int:
    """How many keys the views kept by key hold (each counted by its first attribute)."""
    return sum(parts.keys(state.view) for state in views.states.values())


# Views a history point leaves out. The places view holds which drivers are inside which
# place, opened (personal: docs/PRIVACY.md); a point is kept for about a day and an erasure
# does not rewrite it, and nothing reads that view from a point (the past's replay folds
# rides, drivers, locations, heatmap and surge).
LEFT_OUT_OF_HISTORY = frozenset({"places"})


def _for_history(whole: StoredViews) -> StoredViews:
    def kept(names: dict[str, Any]) -> dict[str, Any]:
        return {n: v for n, v in names.items() if n not in LEFT_OUT_OF_HISTORY}

    return replace(whole, views=kept(whole.views), params=kept(whole.params), generation="")
