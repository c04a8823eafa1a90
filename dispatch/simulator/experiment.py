"""Paired dispatch experiments: every variant on every seed, the same demand per seed.

A variant is a strategy, the number of shards the city is split over (``--city-shards``;
by default the configured markets) and, on a road network, what the matcher ranks drivers by
(``--etas``: road or straight-line ETAs; the drivers drive the roads either way).

Each run is a fresh embedded engine in its own process (runs share nothing, so they may run
side by side) with a log in a temporary folder. A seed's demand is drawn from its own keyed
stream (``streams``), so every strategy gets byte-identical requests; the experiment checks
the hashes and refuses to compare runs whose demand differs.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dispatch.bootstrap import road_graph
from dispatch.settings import Settings
from dispatch.simulator.city import City
from dispatch.simulator.cityshards import split_city
from dispatch.simulator.embedded import simulate_embedded
from dispatch.simulator.html_report import Comparison, RunData
from dispatch.simulator.paired import PairedDifference, compare
from dispatch.simulator.results import Request
from dispatch.simulator.roads import city_over
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
    ("empty_km", "empty distance driven (km): the deadhead"),
    ("pickup_m_mean", "pickup distance driven, mean (m)"),
    ("utilisation_pct", "driver utilisation (%)"),
)
# Compared too when some requests ask to share (``--shared-share``).
SHARED_METRICS: tuple[tuple[str, str], ...] = (
    ("served", "riders served (count, higher is better)"),
    ("driven_km", "km driven, all legs"),
    ("vehicle_km_per_passenger_km", "vehicle-km per passenger-km"),
    ("mean_occupancy", "riders per occupied vehicle (higher is better)"),
    ("shared_served_pct", "shared rides served (%, higher is better)"),
    ("shared_wait_s_mean", "shared rides' wait for the car, mean (s)"),
    ("shared_detour_pct_p50", "shared rides' detour, p50 (%)"),
    ("shared_detour_pct_p95", "shared rides' detour, p95 (%)"),
    ("single_served_pct", "single rides served (%, higher is better)"),
    ("single_wait_s_mean", "single rides' wait for the car, mean (s)"),
)
# Compared too when the runs book scheduled rides (``--scheduled-share``).
SCHEDULED_METRICS: tuple[tuple[str, str], ...] = (
    ("scheduled_on_time_pct", "scheduled rides on time (%, higher is better)"),
    ("scheduled_late_s_p50", "scheduled rides' lateness, p50 (s)"),
    ("scheduled_late_s_p95", "scheduled rides' lateness, p95 (s)"),
    ("scheduled_early_s_mean", "scheduled rides' driver early, mean (s)"),
)


DEFAULT_HINT_EVERY_S = 30.0  # hints on without a cadence of the settings' own
HINTS = ("off", "ignore", "follow")


class DemandMismatch(Exception):
    """Two strategies of one seed saw different requests: comparing them would be unpaired."""


@dataclass(frozen=True)
class Variant:
    strategy: str
    city_shards: int | None = None  # None: the configured markets serve the city
    eta: str | None = None  # road or straight (a road network's runs); None: straight
    hints: str | None = None  # ignore or follow (repositioning hints on); None: off
    # whether the engine pools the requests that ask to share; None: as the config says
    pooling: bool | None = None

    @property
    def label(self) -> str:
        parts = [self.strategy]
        if self.pooling is not None:
            parts.append("pool on" if self.pooling else "pool off")
        if self.hints is not None:
            parts.append(f"hints {self.hints}")
        if self.city_shards is not None:
            parts.append(f"{self.city_shards} shard{'s' if self.city_shards > 1 else ''}")
        if self.eta is not None:
            parts.append(self.eta)
        return "/".join(parts)


@dataclass(frozen=True)
class Plan:
    variants: tuple[Variant, ...]
    seeds: tuple[int, ...]
    config: SimConfig
    settings: Settings
    demand: tuple[Request, ...] | None = None  # a trace, or each seed's synthetic demand
    road_network: Path | None = None  # drivers drive it; variants' ``eta`` says what ranks


@dataclass(frozen=True)
class Outcome:
    runs: list[RunData]
    differences: list[PairedDifference]

    def comparisons(self) -> list[Comparison]:
        labels = dict(METRICS + SCHEDULED_METRICS + SHARED_METRICS)
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


def run_one(
    variant: Variant,
    config: SimConfig,
    settings: Settings,
    demand: Sequence[Request] | None,
    road_network: Path | None = None,
) -> RunData:
    """One variant on one seed, in a log of its own that is deleted afterwards; on
    ``road_network`` the drivers drive its roads and the matcher ranks by the variant's
    ETA."""
    with tempfile.TemporaryDirectory(prefix="dispatch-experiment-") as folder:
        run_settings = settings.model_copy(
            update={"data_dir": Path(folder), "strategy": variant.strategy}
        )
        eta = variant.eta or "straight"
        run_settings = run_settings.model_copy(
            update={"road_network": road_network if eta == "road" else None}
        )
        if variant.city_shards is not None:
            points = [r.pickup for r in demand] if demand else None
            city = None
            if road_network is not None and not points:
                city = city_over(road_graph(road_network), random.Random(0))
            elif not points:
                city = City.sized(config.city_km)
            run_settings = split_city(run_settings, variant.city_shards, points, city)
        run_settings, hints = with_hints(run_settings, variant.hints or "off")
        pooling = config.pooling if variant.pooling is None else variant.pooling
        run_settings = run_settings.model_copy(update={"pool": pooling})
        run_config = replace(config, strategy=variant.strategy,
                             city_shards=variant.city_shards or 1,
                             road_network=road_network, eta=eta, hints=hints,
                             pooling=pooling)  # fmt: skip
        sim = simulate_embedded(run_config, run_settings, None, demand)
        report = sim.finished
        return RunData(variant.label, report.seed, report.as_dict(), sim.records(), sim.samples)


def with_hints(settings: Settings, hints: str) -> tuple[Settings, str]:
    """The settings for a run whose drivers ``hints`` (off, ignore or follow) the
    repositioning hints: off turns the engine's hints off; the others turn them on at
    ``DEFAULT_HINT_EVERY_S`` unless the settings have a cadence of their own."""
    if hints == "off":
        return settings.model_copy(update={"hint_every_s": 0.0}), hints
    every = settings.hint_every_s or DEFAULT_HINT_EVERY_S
    return settings.model_copy(update={"hint_every_s": every}), hints


def run_experiment(
    plan: Plan, jobs: int, on_done: Callable[[RunData], None] | None = None
) -> Outcome:
    """Every (variant, seed), ``jobs`` at a time; then the demand check and the paired
    differences against the first variant."""
    runs_planned = [
        (variant, replace(plan.config, seed=seed))
        for seed in plan.seeds
        for variant in plan.variants
    ]
    results: dict[tuple[str, int], RunData] = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        pending: set[Future[RunData]] = {
            pool.submit(run_one, variant, config, plan.settings, plan.demand, plan.road_network)
            for variant, config in runs_planned
        }
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                run = future.result()
                results[(run.strategy, run.seed)] = run
                if on_done is not None:
                    on_done(run)
    runs = [results[(v.label, c.seed)] for v, c in runs_planned]
    check_paired(runs)
    labels = [v.label for v in plan.variants]
    summaries: dict[str, list[dict[str, Any]]] = {
        label: [results[(label, seed)].summary for seed in plan.seeds] for label in labels
    }
    metrics = [key for key, _ in METRICS]
    if plan.config.scheduled_share > 0:
        metrics += [key for key, _ in SCHEDULED_METRICS]
    if plan.config.shared_share > 0:
        metrics += [key for key, _ in SHARED_METRICS]
    return Outcome(runs, compare(summaries, metrics, baseline=labels[0]))


def check_paired(runs: Sequence[RunData]) -> None:
    """Every variant of a seed made the same requests and bookings (their hashes agree)."""
    by_seed: dict[int, dict[str, str]] = {}
    for run in runs:
        summary = run.summary
        made = str(summary["demand_hash"])
        if summary.get("bookings_hash"):  # scheduled rides: which were booked, and when
            made += f" bookings {summary['bookings_hash']}"
        by_seed.setdefault(run.seed, {})[run.strategy] = made
    for seed, hashes in sorted(by_seed.items()):
        if len(set(hashes.values())) > 1:
            shown = ", ".join(f"{s} {_short(h)}" for s, h in hashes.items())
            raise DemandMismatch(
                f"seed {seed}: the variants saw different requests ({shown}); "
                "refusing to compare unpaired runs"
            )


def _short(made: str) -> str:
    """The hashes of ``check_paired`` cut to 16 digits each, for a message."""
    return " ".join(part[:16] for part in made.split(" "))
