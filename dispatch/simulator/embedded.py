"""Run a simulation against the embedded engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dispatch.bootstrap import build_embedded_engine, build_geofences, build_markets, build_router
from dispatch.pricing.rules import fare_book, fares_of
from dispatch.roads.routes import RoadRouter
from dispatch.settings import Settings
from dispatch.simulator.clock import SimClock
from dispatch.simulator.report import SimReport
from dispatch.simulator.results import Request
from dispatch.simulator.runner import SimConfig, Simulation
from schemas.commands import Outcome


def run_embedded(
    config: SimConfig,
    settings: Settings,
    progress: Callable[[float], None] | None = None,
    demand: Sequence[Request] | None = None,
) -> SimReport:
    return simulate_embedded(config, settings, progress, demand).finished


def simulate_embedded(
    config: SimConfig,
    settings: Settings,
    progress: Callable[[float], None] | None = None,
    demand: Sequence[Request] | None = None,
) -> Simulation:
    """Run to the end; the simulation keeps its report, requests and samples."""
    clock = SimClock()
    engine = build_embedded_engine(settings, clock)

    def step(_sent: list[str]) -> list[Outcome]:
        return [o for report in engine.run_once() for o in report.outcomes]

    def pool_stats() -> dict[str, Any]:
        """The pooled windows of every shard's matcher, summed (the slowest: the max)."""
        out: dict[str, Any] = {}
        for worker in engine.workers.values():
            for key, value in worker.matcher.pool.stats.as_dict().items():
                out[key] = (
                    max(out.get(key, 0), value)
                    if key == "slowest_ms"
                    else (out.get(key, 0) + value)
                )
        return out

    try:  # closed however the run ends, its setup failing too
        sim = Simulation(
            config,
            engine.transport,
            step,
            clock,
            build_markets(settings),
            demand,
            router_of(config, settings),
            fare_book(fares_of(settings)),
            settings.catalog,
            build_geofences(settings),
            pool_stats,
            next(iter(engine.workers.values())).app.open_personal,  # one sealer for all
        )
        for worker in engine.workers.values():
            worker.listeners.append(sim.on_commit)
        sim.run(progress)
    finally:
        engine.close()
    return sim


def router_of(config: SimConfig, settings: Settings) -> RoadRouter | None:
    """Routes over the road network the simulated drivers drive (None: straight lines),
    with the run's straight-line pace (``settings``' road factor and speed) for the legs
    off the roads, as the matcher's road ETA has it. ``settings.road_network`` says what the
    matcher ranks by, not what the drivers drive: ``config.road_network`` does."""
    if config.road_network is None:
        return None
    return build_router(settings.model_copy(update={"road_network": config.road_network}))
