"""Views that start warm: a serving process takes up the views it (or ``replay rebuild``)
kept, and folds only the events after their checkpoints.

Kept views are taken up only whole and only when they match the log: the same log
(``embedded`` or ``kafka:<prefix>``), shards the log has, and at each checkpoint the very
event (aggregate and version) the views were folded to, which a log that is another one,
or shorter than the views, does not have. Otherwise, or when there are none or they cannot
be read, the process says why in its log and folds the whole log from the start, with the
ended-rides archive emptied first (the fold archives them again). A view kept under other
parameters (``Projection.params``: a changed retention, say) is folded from the start
alone. Positions from pings are never kept: they come back with the next pings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dispatch.log import LogEvent, LogSource
from projections.base import Checkpointed, Projection
from projections.store import RideArchive, ViewStore, ViewStoreError, decode
from projections.views import ViewSet

log = logging.getLogger(__name__)


class Mismatch(Exception):
    """Kept views that are not of this log."""


@dataclass
class WarmStart:
    views: ViewSet
    loaded: bool  # False: every view starts empty (the whole log is folded)
    reason: str  # what was taken up, or why nothing was


def warm_views(
    projections: Sequence[Projection[Any]],
    store: ViewStore,
    archive: RideArchive,
    source: LogSource,
    log_name: str,
) -> WarmStart:
    """The views to serve: the kept ones when they match the log, else empty ones."""
    try:
        states = kept_views(projections, store, source, log_name)
    except (ViewStoreError, Mismatch) as error:
        reason = f"kept views at {store.where} not taken up ({error}): folding the whole log"
        log.warning(reason)
        return _cold(projections, archive, reason)
    except Exception as error:  # an unreadable log here is the fold's to report
        reason = f"kept views at {store.where} not checked ({error!r}): folding the whole log"
        log.warning(reason)
        return _cold(projections, archive, reason)
    if states is None:
        reason = f"no kept views at {store.where}: folding the whole log"
        log.info(reason)
        return _cold(projections, archive, reason)
    positions = {n: dict(s.checkpoint) for n, s in states.items()}
    reason = f"views taken up from {store.where} at {positions}"
    log.info(reason)
    return WarmStart(ViewSet(projections, states), True, reason)


def _cold(projections: Sequence[Projection[Any]], archive: RideArchive, reason: str) -> WarmStart:
    archive.clear()
    return WarmStart(ViewSet(projections), False, reason)


def kept_views(
    projections: Sequence[Projection[Any]], store: ViewStore, source: LogSource, log_name: str
) -> dict[str, Checkpointed[Any]] | None:
    """The kept views of these projections (a view kept under other parameters left out),
    None when there are none; ``ViewStoreError`` or ``Mismatch`` when they cannot be taken
    up."""
    stored = store.load()
    if stored is None:
        return None
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
    _check_anchors(states, source)
    return states


def _check_anchors(states: dict[str, Checkpointed[Any]], source: LogSource) -> None:
    shards = set(source.shards())
    anchors: dict[tuple[int, int], tuple[str, int]] = {}
    for state in states.values():
        for shard, position in state.checkpoint.items():
            if shard not in shards:
                raise Mismatch(f"they hold shard {shard}, the log has shards {sorted(shards)}")
            anchor = state.anchors.get(shard)
            if anchor is None:
                raise Mismatch(f"view {state.name} has no event recorded at {shard}:{position}")
            anchors[(shard, position)] = anchor
    for (shard, position), (aggregate_id, version) in sorted(anchors.items()):
        found = _first_after(source, shard, position - 1)
        if found is None or found.position != position:
            raise Mismatch(f"the log has no event at {shard}:{position} (a shorter log?)")
        if (found.aggregate_id, found.version) != (aggregate_id, version):
            raise Mismatch(
                f"the event at {shard}:{position} is {found.aggregate_id} v{found.version}, "
                f"the views were folded to {aggregate_id} v{version} (another log?)"
            )


def _first_after(source: LogSource, shard: int, after: int) -> LogEvent | None:
    for event in source.read(shard, after):
        return event  # the read is left here (and closed as it goes out of scope)
    return None
