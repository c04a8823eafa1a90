"""The replay operations, each a function of a log source. The CLI only formats them."""

from __future__ import annotations

import gc
import os
import stat
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from dispatch.invariants import InvariantChecker, Violation
from dispatch.invariants_across import CrossShardChecker
from dispatch.log import LogEvent, LogSource
from dispatch.privacy import Opener, as_is
from dispatch.replay.surge_sources import SurgeClaims
from projections.base import Checkpointed, Projection
from projections.keeper import ViewKeeper
from projections.store import RideArchive, StoredViews, ViewStore, ViewStoreError, encode
from projections.views import ViewSet, default_projections
from projections.warm import Mismatch, check_anchors, kept_views


class UnknownViews(ValueError):
    """A rebuild was asked for views that do not exist."""


@contextmanager
def batch_gc() -> Iterator[None]:
    """Folding builds millions of long-lived objects and no reference cycles: the cyclic
    collector would rescan the growing views again and again, so it pauses meanwhile."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_all(
    source: LogSource, shard: int | None = None, until: float | None = None
) -> Iterator[LogEvent]:
    """Every event of one shard or of all shards (shard by shard), up to a time."""
    for s in [shard] if shard is not None else source.shards():
        for event in source.read(s):
            if until is not None and event.at > until:
                break
            yield event


@dataclass
class RoadFigures:
    """What happened on the road to shared rides, counted, not flagged (the plans kept
    the bounds as estimated; traffic the estimate did not foresee may not)."""

    waits_over_bound: int = 0  # riders picked up after their latest pickup
    rides_over_bound: int = 0  # riders longer in the vehicle than their bound


@batch_gc()
def verify(
    source: LogSource,
    shard: int | None = None,
    open: Opener = as_is,
    road: RoadFigures | None = None,
) -> tuple[int, list[Violation]]:
    """``open``: how a sealed pickup or drop-off is read (a completed ride's distance is
    checked against them; one that does not open is not checked). ``road``, when given,
    gets the shared rides' figures on the road."""
    checker = InvariantChecker()
    shards = [shard] if shard is not None else source.shards()
    across = CrossShardChecker()
    opener = InvariantChecker(open=open)  # reads a sealed pickup as the checks do
    # each priced ride's surge, checked at the end against the event it names
    surges = SurgeClaims(lambda e: opener.point(e.data.get("pickup"), "pickup"))
    # Every shard up to where it stood when verify began (a cut taken first, so a log still
    # being written is read as of one moment, give or take the instants between the cuts;
    # a source that cannot tell is read to its end).
    heads = {s: source.cut(s) for s in shards}
    for s in shards:
        # Each shard's aggregates are checked on their own (a driver handed off has a
        # stream in each shard that served it, each whole); what shards tell one another,
        # over all of them together.
        per_shard = InvariantChecker(open=open)
        head = heads[s]  # None: a source that cannot tell (Kafka): to its end
        for event in source.read(s):
            if head is not None and event.position > head:
                break
            per_shard.check(event)
            across.check(event)
            surges.see(event)
        checker.events += per_shard.events
        checker.violations.extend(per_shard.finish())
        if road is not None:
            road.waits_over_bound += per_shard.pooled.waits_over_bound
            road.rides_over_bound += per_shard.pooled.rides_over_bound
    if shard is None:
        checker.violations.extend(across.finish())
    for claim, problem in surges.problems(source):
        checker.violations.append(
            Violation(claim.where, claim.ride_id, "surge_unexplained", problem)
        )
    for where, ride_id, problem in surges.unreadable:
        checker.violations.append(Violation(where, ride_id, "surge_unexplained", problem))
    return checker.events, checker.violations


@dataclass
class RebuildResult:
    events: int
    resumed_from: dict[int, int]
    target: str


@dataclass(frozen=True)
class RebuildStores:
    """Where a rebuild keeps its work in progress, the views it switches over to (what
    ``serve`` takes up) and the ended rides the rides view lets go."""

    work: ViewStore
    target: ViewStore
    archive: RideArchive


def select_views(
    names: list[str] | None,
    resolution: int = 9,
    ttl_s: float = 30.0,
    ride_retention_s: float | None = None,
    open: Opener = as_is,
    queued_places: frozenset[str] | None = None,
) -> list[Projection[Any]]:
    """The named views (every one for None), as a serving process with these settings
    folds them (``open``: how a sealed pickup is read); ``UnknownViews`` for a name that
    is not a view."""
    projections = [
        p
        for p in default_projections(resolution, ttl_s, ride_retention_s, open, queued_places)
        if names is None or p.name in names
    ]
    unknown = set(names or []) - {p.name for p in projections}
    if unknown:
        raise UnknownViews(f"unknown view(s): {', '.join(sorted(unknown))}")
    return projections


@batch_gc()
def rebuild(
    source: LogSource,
    stores: RebuildStores,
    projections: list[Projection[Any]],
    log_name: str,
    save_every_s: float = 30.0,
    progress: Callable[[int], None] | None = None,
    stop_after: int | None = None,
    since: float | None = None,
) -> RebuildResult:
    """Fold the log into fresh views and switch over to them when done.

    Work in progress is kept in ``stores.work`` every ``save_every_s`` seconds; a rebuild
    that was interrupted resumes from the last save. The finished views replace
    ``stores.target`` atomically, beside the views it held that were not rebuilt; ended
    rides the rides view lets go are archived as they go. ``stop_after`` interrupts on
    purpose after that many events (for tests). With ``since`` (epoch seconds) the views
    fold only the events from that time on, e.g. a heatmap of the last hour; their
    checkpoints still cover the whole log, so they can go on following it."""
    views = ViewSet(projections, _resumable(projections, stores.work, source, log_name))
    keeper = ViewKeeper(views, stores.work, stores.archive, log_name, every_s=0)
    resumed = {s: views.position(s) for s in source.shards() if views.position(s)}
    applied = 0
    next_save = time.monotonic() + save_every_s
    for shard in source.shards():
        for page in source.read_pages(shard, views.position(shard)):
            if since is not None and page[0].at < since:
                page = [e for e in page if e.at >= since] or page[-1:]
                if page[-1].at < since:  # nothing to fold: only move the checkpoints
                    views.skip_to(page[-1])
                    continue
            if stop_after is not None and applied + len(page) >= stop_after:
                page = page[: stop_after - applied]
            views.apply_page(page)
            keeper.after_page()
            applied += len(page)
            if time.monotonic() >= next_save:
                keeper.save()  # a checkpoint to resume from
                next_save = time.monotonic() + save_every_s
            if progress is not None:
                progress(applied)
            if stop_after is not None and applied >= stop_after:
                keeper.save()
                raise InterruptedError(f"stopped after {applied} events")
    keeper.archive_evicted()
    stores.target.save(_beside_kept(encode(projections, views.states, log_name), stores.target))
    stores.work.discard()
    return RebuildResult(applied, resumed, stores.target.where)


def _resumable(
    projections: list[Projection[Any]], work: ViewStore, source: LogSource, log_name: str
) -> dict[str, Checkpointed[Any]]:
    """The work in progress of an interrupted rebuild, when it is of this log."""
    try:
        states = kept_views(projections, work, source.shards(), log_name) or {}
        check_anchors(states, source)
    except (ViewStoreError, Mismatch):
        return {}
    return states


def _beside_kept(rebuilt: StoredViews, target: ViewStore) -> StoredViews:
    """``rebuilt`` with the views ``target`` keeps of the same log that were not rebuilt."""
    try:
        kept = target.load()
    except ViewStoreError:
        return rebuilt
    if kept is None or (kept.log, kept.format) != (rebuilt.log, rebuilt.format):
        return rebuilt
    others = [name for name in kept.views if name not in rebuilt.views]
    return StoredViews(
        rebuilt.log,
        {**{n: kept.views[n] for n in others}, **rebuilt.views},
        {**{n: kept.params[n] for n in others if n in kept.params}, **rebuilt.params},
        rests={n: kept.rests[n] for n in others if n in kept.rests},
        parts={n: kept.parts[n] for n in others if n in kept.parts},
    )


@dataclass
class Stats:
    events: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    by_shard: Counter[int] = field(default_factory=Counter)
    by_hour: Counter[str] = field(default_factory=Counter)
    aggregates: Counter[str] = field(default_factory=Counter)
    log_bytes: int = 0


@batch_gc()
def stats(source: LogSource, data_dir: Path | None = None) -> Stats:
    out = Stats()
    for event in read_all(source):
        out.events += 1
        out.by_type[event.kind] += 1
        out.by_shard[event.shard] += 1
        out.by_hour[datetime.fromtimestamp(event.at, UTC).strftime("%Y-%m-%d %H:00")] += 1
        if event.version == 1:
            out.aggregates[event.kind.split(".")[0]] += 1
    if data_dir is not None:
        out.log_bytes = sum(p.stat().st_size for p in data_dir.glob("shard-*.sqlite*"))
    return out


@batch_gc()
def state_at(
    source: LogSource,
    at: float,
    shard: int | None = None,
    queued_places: frozenset[str] | None = None,
    open: Opener = as_is,
) -> ViewSet:
    """The rides, drivers, surge and places views as of a moment, by replaying every event
    up to it (``queued_places``: the places that keep a queue; None: every place; ``open``:
    how a crossing's sealed place is read)."""
    wanted = ("rides", "drivers", "surge", "places")
    projections = default_projections(queued_places=queued_places, open=open)
    views = ViewSet([p for p in projections if p.name in wanted])
    for event in read_all(source, shard, until=at):
        views.apply(event)
    return views


def summarize(views: ViewSet) -> dict[str, Any]:
    rides = Counter(r.status for r in views.rides.values())
    drivers = Counter(r.status for r in views.drivers.rows.values())
    return {
        "rides": dict(sorted(rides.items())),
        "drivers": dict(sorted(drivers.items())),
        "surge": dict(sorted(views.surge.layer().items())),  # cells above 1.00
        # every place someone is inside: how many, and its queue (head first; none for a
        # place that keeps no queue)
        "places": {
            place: {
                "inside": views.places.inside(place),
                "queue": [d for d, _ in views.places.queue(place)],
            }
            for place in views.places.occupied()
        },
    }


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary file beside ``target`` to write; it replaces ``target`` (atomically, by
    a rename) only when the block ends without an error. On an error it is removed and
    ``target`` is left as it was. Something that is not a regular file (``/dev/stdout``, a
    pipe) is written in place."""
    if target.exists() and not target.is_file():
        yield target
        return
    descriptor, name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".partial", dir=target.parent
    )
    os.close(descriptor)
    temporary = Path(name)
    try:
        yield temporary
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(temporary, _mode_for(target))
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _mode_for(target: Path) -> int:
    """The permissions ``target`` has, or those a new file gets (mkstemp's are 0600)."""
    if target.exists():
        return stat.S_IMODE(target.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def export_jsonl(events: Iterator[dict[str, Any]], output: Path | None) -> int:
    """One JSON object per line to ``output`` (replaced only once every event is written)
    or to stdout."""
    if output is None:
        return _write_jsonl(events, sys.stdout.buffer)
    with replacing(output) as temporary, temporary.open("wb") as handle:
        return _write_jsonl(events, handle)


def _write_jsonl(events: Iterator[dict[str, Any]], handle: BinaryIO) -> int:
    count = 0
    for record in events:
        handle.write(orjson.dumps(record) + b"\n")
        count += 1
    handle.flush()
    return count


def export_parquet(events: Iterator[dict[str, Any]], output: Path) -> int:
    """A parquet file at ``output`` (replaced only once every event is written)."""
    try:
        import pyarrow as pa  # type: ignore[import-not-found]
        import pyarrow.parquet as pq  # type: ignore[import-not-found]
    except ImportError:
        raise RuntimeError("parquet export needs pyarrow: pip install pyarrow") from None
    rows = [dict(r, data=orjson.dumps(r["data"]).decode()) for r in events]
    with replacing(output) as temporary:
        pq.write_table(pa.Table.from_pylist(rows), temporary)
    return len(rows)
