"""Views that start warm: a serving process takes up the views it (or ``replay rebuild``)
kept, and folds only the events after their checkpoints.

Kept views are taken up only whole and only when they match the log: the same log
(``embedded`` or ``kafka:<prefix>``), shards the log has, and at each checkpoint the very
event (aggregate and version) the views were folded to, which a log that is another one,
or shorter than the views, does not have. That last check costs no read of its own: the
first catch-up (``first_catch_up``) reads each shard from the event at its checkpoint and
meets the kept events on its way. Otherwise, or when there are none or they cannot be
read, the process says why in its log and folds the whole log from the start, with the
ended-rides archive emptied first (the fold archives them again); views that did not match
are never served, not even in part. A view kept under other parameters
(``Projection.params``: a changed retention, say) is folded from the start alone.
Positions from pings are never kept: they come back with the next pings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dispatch.log import LogEvent, LogSource
from projections.base import Checkpointed, Projection
from projections.runner import ProjectionRunner
from projections.store import RideArchive, ViewStore, ViewStoreError, decode
from projections.views import ViewSet

log = logging.getLogger(__name__)

Anchors = dict[int, dict[int, tuple[str, int]]]  # shard -> position -> (aggregate, version)


class Mismatch(Exception):
    """Kept views that are not of this log."""


@dataclass
class WarmStart:
    views: ViewSet
    archive: RideArchive
    loaded: bool  # False: every view starts empty (the whole log is folded)
    reason: str  # what was taken up, or why nothing was
    anchors: Anchors = field(default_factory=dict)  # to meet in the first catch-up


def warm_views(
    projections: Sequence[Projection[Any]],
    store: ViewStore,
    archive: RideArchive,
    source: LogSource,
    log_name: str,
) -> WarmStart:
    """The views to serve, before the first catch-up: the kept ones when they are of this
    log (as far as can be told without reading it), else empty ones."""
    try:
        states, generation, overlay = _kept(projections, store, source.shards(), log_name)
        anchors = anchors_of(states or {})
    except (ViewStoreError, Mismatch) as error:
        reason = f"kept views at {store.where} not taken up ({error}): folding the whole log"
        log.warning(reason)
        return _cold(projections, archive, reason)
    if states is None:
        reason = f"no kept views at {store.where}: folding the whole log"
        log.info(reason)
        return _cold(projections, archive, reason)
    positions = {n: dict(s.checkpoint) for n, s in states.items()}
    reason = f"views taken up from {store.where} at {positions}"
    log.info(reason)
    views = ViewSet(projections, states)
    if generation and set(states) == {p.name for p in projections}:
        views.kept_as = generation  # the store holds these very views: keep their changes
        views.kept_overlay = overlay
    return WarmStart(views, archive, True, reason, anchors)


def first_catch_up(runner: ProjectionRunner, warm: WarmStart) -> int:
    """Fold the tail, meeting on the way each kept view's event at its checkpoint; when
    one is not there, empty every view and the archive and fold the whole log instead."""
    if not warm.anchors:
        return runner.catch_up()
    check = AnchorCheck(warm.anchors)
    try:
        folded = runner.catch_up(check)
        warm.anchors = {}  # met: a later start of the same views needs no check
        return folded
    except Mismatch as error:
        warm.reason = f"kept views not of this log ({error}): folding the whole log"
        log.warning(warm.reason)
        warm.loaded, warm.anchors = False, {}
        warm.views.reset()
        warm.archive.clear()
        return runner.catch_up()


class AnchorCheck:
    """Meets the kept events (``Anchors``) in a read of each shard that starts just before
    the first of them; ``Mismatch`` for one that is not there."""

    def __init__(self, anchors: Anchors) -> None:
        self.pending = {shard: dict(marks) for shard, marks in anchors.items()}

    def start(self, shard: int, after: int) -> int:
        """Where to read ``shard`` from: before its first kept event, to meet it."""
        marks = self.pending.get(shard)
        return min(after, min(marks) - 1) if marks else after

    def see(self, page: Sequence[LogEvent]) -> None:
        marks = self.pending.get(page[0].shard) if page else None
        if not marks:
            return
        last = page[-1].position
        for position in [p for p in marks if p <= last]:
            found = _at(page, position)
            expected = marks.pop(position)
            if found is None:
                raise Mismatch(f"the log has no event at {page[0].shard}:{position}")
            if (found.aggregate_id, found.version) != expected:
                raise Mismatch(
                    f"the event at {found.where} is {found.aggregate_id} v{found.version}, "
                    f"the views were folded to {expected[0]} v{expected[1]} (another log?)"
                )

    def finish(self, shard: int) -> None:
        marks = self.pending.pop(shard, None)
        if marks:
            raise Mismatch(f"the log ends before {shard}:{min(marks)} (a shorter log?)")


def _at(page: Sequence[LogEvent], position: int) -> LogEvent | None:
    for event in page:
        if event.position >= position:
            return event if event.position == position else None
    return None


def _cold(projections: Sequence[Projection[Any]], archive: RideArchive, reason: str) -> WarmStart:
    archive.clear()
    return WarmStart(ViewSet(projections), archive, False, reason)


def kept_views(
    projections: Sequence[Projection[Any]], store: ViewStore, shards: list[int], log_name: str
) -> dict[str, Checkpointed[Any]] | None:
    """The kept views of these projections (a view kept under other parameters left out),
    None when there are none; ``ViewStoreError`` or ``Mismatch`` when they cannot be taken
    up. Their events at their checkpoints are not checked here (``check_anchors``)."""
    return _kept(projections, store, shards, log_name)[0]


def _kept(
    projections: Sequence[Projection[Any]], store: ViewStore, shards: list[int], log_name: str
) -> tuple[dict[str, Checkpointed[Any]] | None, str, int]:
    """``kept_views``, the generation of the store they were read from and how many parts
    it keeps on it."""
    stored = store.load()
    if stored is None:
        return None, "", 0
    if stored.log != log_name:
        raise Mismatch(f"they were folded from log {stored.log!r}, this is {log_name!r}")
    states = decode(stored)
    wanted = {p.name: p.params for p in projections}
    for name in list(states):
        if name not in wanted:
            del states[name]
        elif stored.params.get(name) != wanted[name]:
            log.info(
                "view %s was kept with %s, not %s: folding it from the start",
                name,
                stored.params.get(name),
                wanted[name],
            )
            del states[name]
    for state in states.values():
        for shard in state.checkpoint:
            if shard not in shards:
                raise Mismatch(f"they hold shard {shard}, the log has shards {shards}")
    return states, stored.generation, sum(map(len, stored.parts.values()))


def anchors_of(states: dict[str, Checkpointed[Any]]) -> Anchors:
    """The events the views were folded to, by shard and position."""
    out: Anchors = {}
    for state in states.values():
        for shard, position in state.checkpoint.items():
            anchor = state.anchors.get(shard)
            if anchor is None:
                raise Mismatch(f"view {state.name} has no event recorded at {shard}:{position}")
            out.setdefault(shard, {})[position] = anchor
    return out


def check_anchors(states: dict[str, Checkpointed[Any]], source: LogSource) -> None:
    """``Mismatch`` unless the log has each view's event at its checkpoint (a read of each
    shard from its first kept event on, as far as the last)."""
    check = AnchorCheck(anchors_of(states))
    for shard in list(check.pending):
        for page in source.read_pages(shard, check.start(shard, 0)):
            check.see(page)
            if not check.pending.get(shard):
                break
        check.finish(shard)
