"""Paired dispatch experiments: every strategy on every seed, the same demand per seed.

Each run is a fresh embedded engine in its own process (runs share nothing, so they may run
side by side) with a log in a temporary folder. A seed's demand is drawn from its own keyed
stream (``streams``), so every strategy gets byte-identical requests; the experiment checks
the hashes and refuses to compare runs whose demand differs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dispatch.settings import Settings
from dispatch.simulator.embedded import simulate_embedded
from dispatch.simulator.html_report import Comparison, RunData
from dispatch.simulator.paired import PairedDifference, compare
from dispatch.simulator.results import Request
from dispatch.simulator.runner import SimConfig

# What the experiment compares: (summary key, label). Lower is better except where noted.
METRICS: tuple[tuple[str, str], ...] = (
    ("served_pct", "served (%, higher is better)"),
    ("rejection_pct", "rejected: expired unserved (%)"),
    ("wait_s_mean", "wait for the car, mean (s)"),
    ("wait_s_p95", "wait for the car, p95 (s)"),
    ("offer_s_p50", "time to first offer, p50 (s)"),
    ("accept_s_p50", "time to a driver, p50 (s)"),
    ("pickup_eta_s_mean", "pickup ETA offered, mean (s)"),
    ("pickup_realised_s_mean", "pickup time driven, mean (s)"),
    ("eta_error_s_mean", "driven - offered pickup, mean (s)"),
    ("in_vehicle_s_mean", "in-vehicle time, mean (s)"),
    ("empty_distance_pct", "empty distance share (%)"),
    ("utilisation_pct", "driver utilisation (%)"),
)


class DemandMismatch(Exception):
    """Two strategies of one seed saw different requests: comparing them would be unpaired."""


@dataclass(frozen=True)
class Plan:
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    config: SimConfig
    settings: Settings
    demand: tuple[Request, ...] | None = None  # a trace, or each seed's synthetic demand


@dataclass(frozen=True)
class Outcome:
    runs: list[RunData]
    differences: list[PairedDifference]

    def comparisons(self) -> list[Comparison]:
        labels = dict(METRICS)
        return [
            Comparison(
                metric=d.metric,
                label=labels.get(d.metric, d.metric),
                means={d.baseline: d.baseline_mean, d.other: d.other_mean},
                baseline=d.baseline,
                other=d.other,
                diff_mean=d.diff_mean,
                ci_low=d.ci_low,
                ci_high=d.ci_high,
                n=d.n,
            )
            for d in self.differences
        ]


def run_one(config: SimConfig, settings: Settings, demand: Sequence[Request] | None) -> RunData:
    """One strategy on one seed, in a log of its own that is deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="dispatch-experiment-") as folder:
        run_settings = settings.model_copy(
            update={"data_dir": Path(folder), "strategy": config.strategy}
        )
        sim = simulate_embedded(config, run_settings, None, demand)
        report = sim.finished
        return RunData(report.strategy, report.seed, report.as_dict(), sim.records(), sim.samples)


def run_experiment(
    plan: Plan, jobs: int, on_done: Callable[[RunData], None] | None = None
) -> Outcome:
    """Every (strategy, seed), ``jobs`` at a time; then the demand check and the paired
    differences against the first strategy."""
    configs = [
        replace(plan.config, strategy=strategy, seed=seed)
        for seed in plan.seeds
        for strategy in plan.strategies
    ]
    results: dict[tuple[str, int], RunData] = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        pending: set[Future[RunData]] = {
            pool.submit(run_one, config, plan.settings, plan.demand) for config in configs
        }
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                run = future.result()
                results[(run.strategy, run.seed)] = run
                if on_done is not None:
                    on_done(run)
    runs = [results[(c.strategy, c.seed)] for c in configs]
    check_paired(runs)
    summaries: dict[str, list[dict[str, Any]]] = {
        s: [results[(s, seed)].summary for seed in plan.seeds] for s in plan.strategies
    }
    metrics = [key for key, _ in METRICS]
    return Outcome(runs, compare(summaries, metrics, baseline=plan.strategies[0]))


def check_paired(runs: Sequence[RunData]) -> None:
    """Every strategy of a seed made the same requests (their hashes agree)."""
    by_seed: dict[int, dict[str, str]] = {}
    for run in runs:
        by_seed.setdefault(run.seed, {})[run.strategy] = str(run.summary["demand_hash"])
    for seed, hashes in sorted(by_seed.items()):
        if len(set(hashes.values())) > 1:
            shown = ", ".join(f"{s} {h[:16]}" for s, h in hashes.items())
            raise DemandMismatch(
                f"seed {seed}: the strategies saw different requests ({shown}); "
                "refusing to compare unpaired runs"
            )
