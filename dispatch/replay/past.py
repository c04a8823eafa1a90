"""A past moment's picture for the ``/ops`` page's time slider (docs/OPERATIONS.md, "The
time slider"), computed outside the serving process: from the latest view-history point at
or before the moment (``projections.history``) plus the log's tail up to it, or from the
start of the log when there is no usable point (none kept, another log's, views of other
parameters, or damaged: the answer says which).

Statuses, rides in flight, demand and surge are the log's as of the moment. Positions are
not in the log (pings are not events): drivers are drawn where their last pings put them at
the point the fold started from (``positions_at``), with their statuses as of the moment,
and the heatmap's supply counts the available ones among them. With no point, no driver is
drawn; ``drivers_by_status`` counts them all the same.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import takewhile
from typing import Any

from dispatch.log import LogSource
from projections.base import Checkpointed, Projection
from projections.history import HistoryPoint, ViewHistory
from projections.ops_picture import Limits, PickupOf, available_by_cell, picture
from projections.store import ViewStoreError, decode
from projections.views import ViewSet

# The views a picture is drawn from.
WANTED = frozenset({"rides", "drivers", "locations", "heatmap", "surge"})


@dataclass(frozen=True)
class Start:
    """Where a fold starts: a point's views, or nothing (the log's start) and why."""

    point: HistoryPoint | None
    states: dict[str, Checkpointed[Any]] | None
    note: str


def ops_state_at(
    source: LogSource,
    at: float,
    projections: Sequence[Projection[Any]],
    history: ViewHistory | None,
    log_name: str,
    pickup_of: PickupOf,
    limits: Limits,
) -> dict[str, Any]:
    """The ``/ops`` picture as of ``at`` (epoch s), with where its fold started."""
    wanted = [p for p in projections if p.name in WANTED]
    start = _start(history, at, wanted, log_name)
    views = ViewSet(wanted, start.states)
    folded = 0
    for shard in source.shards():
        after = min((s.position(shard) for s in views.states.values()), default=0)
        for page in source.read_pages(shard, after):
            upto = list(takewhile(lambda e: e.at <= at, page))  # (as the log is read by time)
            views.apply_page(upto)
            folded += len(upto)
            if len(upto) < len(page):
                break
    point = start.point
    locations = views.locations
    locations.positions = dict(point.positions) if point is not None else {}
    seen = (
        [locations.where(d, point.taken_at) for d in sorted(locations.positions)] if point else []
    )
    by_status = Counter(r.status for r in views.drivers.rows.values())
    out = picture(views, at, seen, pickup_of, limits, available_by_cell(seen))
    pinged = [p[2] for p in locations.positions.values()]
    out.update(
        replayed=True,
        drivers_by_status=dict(sorted(by_status.items())),
        positions_at=_iso(max(pinged)) if pinged else None,  # the latest ping of the point
        folded_from=None if point is None else _iso(point.taken_at),
        events_folded=folded,
        note=start.note,
    )
    return out


def _start(
    history: ViewHistory | None, at: float, wanted: Sequence[Projection[Any]], log_name: str
) -> Start:
    if history is None:
        return Start(None, None, "no view history is kept: folded from the start of the log")
    try:
        point = history.at_or_before(at)
        if point is None:
            times = history.times()
            why = f"its first is of {_iso(times[0])}" if times else "none is kept yet"
            return Start(None, None, f"no view history point at or before it ({why}): "
                                     "folded from the start of the log")  # fmt: skip
        if point.stored.log != log_name:
            return Start(None, None, f"the history is of log {point.stored.log!r}: folded "
                                     "from the start")  # fmt: skip
        states = decode(point.stored)
    except ViewStoreError as error:
        return Start(None, None, f"the view history cannot be read ({error}): folded from "
                                 "the start")  # fmt: skip
    kept: dict[str, Checkpointed[Any]] = {}
    for p in wanted:
        if p.name not in states or point.stored.params.get(p.name) != p.params:
            return Start(None, None, f"the history's {p.name} view was kept with other "
                                     "settings: folded from the start")  # fmt: skip
        kept[p.name] = states[p.name]
    return Start(point, kept, f"folded from the view history point of {_iso(point.taken_at)}")


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()
