"""Run a simulation against the embedded engine."""

from __future__ import annotations

from collections.abc import Callable

from dispatch.bootstrap import build_embedded_engine, build_markets
from dispatch.settings import Settings
from dispatch.simulator.clock import SimClock
from dispatch.simulator.report import SimReport
from dispatch.simulator.runner import SimConfig, Simulation
from schemas.commands import Outcome


def run_embedded(
    config: SimConfig, settings: Settings, progress: Callable[[float], None] | None = None
) -> SimReport:
    clock = SimClock()
    engine = build_embedded_engine(settings, clock)

    def step(_sent: list[str]) -> list[Outcome]:
        return [o for report in engine.run_once() for o in report.outcomes]

    sim = Simulation(config, engine.transport, step, clock, build_markets(settings))
    for worker in engine.workers.values():
        worker.listeners.append(sim.on_commit)
    return sim.run(progress)
