"""A small simulated embedded log, and views of it in a form two folds can be compared in
(for the tests of views that start warm and of the ended-rides archive)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.adapters.sqlite.ridearchive import SqliteRideArchive
from dispatch.adapters.sqlite.viewstore import SqliteViewStore
from dispatch.bootstrap import build_embedded_engine, build_markets
from dispatch.log import LogEvent, LogSource
from dispatch.privacy import Opener, as_is
from dispatch.settings import MarketConfig, Settings
from dispatch.simulator.clock import SimClock
from dispatch.simulator.runner import SimConfig, Simulation
from projections.keeper import ViewKeeper
from projections.views import ViewSet, default_projections
from schemas.commands import Outcome

RETENTION_S = 300.0  # rides of a 20-minute simulation end long enough before its end
# The north of the simulated city is a market on shard 0; the rest of it falls to shard 1
# (its H3 region's hash): both shards have rides, about 60/40.
MARKETS = [MarketConfig(name="north", shard=0, lat=37.92, lng=-122.42, radius_km=5)]


def simulate(data_dir: Path, seed: int = 5, minutes: float = 20) -> int:
    """An embedded log of two shards written by the simulator; its event count."""
    settings = Settings(data_dir=data_dir, shards=2, markets=MARKETS)
    clock = SimClock()
    engine = build_embedded_engine(settings, clock)

    def step(_sent: list[str]) -> list[Outcome]:
        return [o for r in engine.run_once() for o in r.outcomes]

    sim = Simulation(
        SimConfig(drivers=120, minutes=minutes, seed=seed, demand_per_min=9, warmup_minutes=0),
        engine.transport,
        step,
        clock,
        build_markets(settings),
    )
    for worker in engine.workers.values():
        worker.listeners.append(sim.on_commit)
    report = sim.run()
    for worker in engine.workers.values():
        worker.app.close()
    return report.events


def new_views(retention_s: float | None = RETENTION_S, open: Opener = as_is) -> ViewSet:
    """``open``: how the heatmap reads a sealed pickup (a serving process opens them)."""
    return ViewSet(default_projections(ride_retention_s=retention_s, open=open))


def fold(
    source: LogSource, views: ViewSet, upto: dict[int, int] | None = None, page: int = 500
) -> ViewSet:
    """Fold ``source`` (only positions up to ``upto`` per shard, when given) shard by
    shard, in pages."""
    for shard in source.shards():
        batch: list[LogEvent] = []
        for event in source.read(shard, views.position(shard)):
            if upto is not None and event.position > upto.get(shard, 0):
                break
            batch.append(event)
            if len(batch) == page:
                views.apply_page(batch)
                batch = []
        views.apply_page(batch)
    return views


def keep(views: ViewSet, data_dir: Path, log_name: str = "embedded") -> None:
    """Keep ``views`` under ``data_dir`` as a serving process does."""
    archive = SqliteRideArchive(data_dir / "ended-rides.sqlite")
    try:
        store = SqliteViewStore(data_dir / "views.sqlite")
        ViewKeeper(views, store, archive, log_name, every_s=0).save()
    finally:
        archive.close()


def comparable(views: ViewSet) -> dict[str, Any]:
    """What the events made of the views (pings aside), and their checkpoints."""
    rides = views.rides
    return {
        "checkpoints": {n: (dict(s.checkpoint), dict(s.anchors)) for n, s in views.states.items()},
        "rides": dict(rides),
        "ending": {shard: sorted(heap) for shard, heap in rides.ending.items()},
        "drivers": views.drivers,
        "heatmap": views.heatmap.__getstate__(),
        "locations": views.locations.__getstate__(),
    }


def gone(views: ViewSet, archive: SqliteRideArchive | None, ids: Iterator[str]) -> dict[str, Any]:
    """The rows of rides that left the view, from its evicted rows or the archive."""
    out = {}
    for ride_id in ids:
        row = views.evicted.get(ride_id) or (archive.get(ride_id) if archive else None)
        out[ride_id] = row
    return out


def shard_files(data_dir: Path) -> SqliteLogSource:
    return SqliteLogSource(data_dir, shards=2)
