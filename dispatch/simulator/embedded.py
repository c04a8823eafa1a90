"""Run a simulation against the embedded engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dispatch.bootstrap import build_embedded_engine, build_markets
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

    sim = Simulation(config, engine.transport, step, clock, build_markets(settings), demand)
    for worker in engine.workers.values():
        worker.listeners.append(sim.on_commit)
    sim.run(progress)
    return sim
