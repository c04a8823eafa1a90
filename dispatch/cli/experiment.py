"""``dispatch experiment``: strategies (and city splits) compared on the same demand, seed
by seed."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from dispatch.cli.common import settings_from
from dispatch.cli.roadnet import RoadNetwork, on_roads, parse_etas, road_network
from dispatch.cli.scenario import (
    CityKm,
    Demand,
    DemandTrace,
    Drivers,
    ExactTimes,
    Minutes,
    ReportDir,
    ScheduledShare,
    SharedShare,
    SkipBadRows,
    TimeScale,
    TraceWindow,
    Warmup,
    Zones,
    check_city,
    check_outputs,
    scenario,
    scheduled_options,
    shared_options,
)

if TYPE_CHECKING:
    from dispatch.simulator.experiment import Variant

console = Console(stderr=True)
STRATEGIES = ("greedy", "batch")
MAX_SEEDS = 1_000
MAX_CITY_SHARDS = 64


def parse_strategies(value: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise typer.BadParameter(
            f"unknown {', '.join(unknown)}: choose from {', '.join(STRATEGIES)}",
            param_hint="--strategies",
        )
    if not names:
        raise typer.BadParameter(
            f"strategies, comma-separated, not {value!r}", param_hint="--strategies"
        )
    if len(set(names)) != len(names):
        raise typer.BadParameter(f"a strategy named twice in {value!r}", param_hint="--strategies")
    return names


def parse_city_shards(value: str | None) -> tuple[int | None, ...]:
    """``--city-shards 1,4``: the shard counts to split the city over (None: not given)."""
    if value is None:
        return (None,)
    try:
        counts = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        counts = ()
    if not counts or any(not 1 <= n <= MAX_CITY_SHARDS for n in counts):
        raise typer.BadParameter(
            f"shard counts from 1 to {MAX_CITY_SHARDS}, comma-separated, not {value!r}",
            param_hint="--city-shards",
        )
    if len(set(counts)) != len(counts):
        raise typer.BadParameter(f"a count twice in {value!r}", param_hint="--city-shards")
    return counts


def parse_hints(value: str | None) -> tuple[str | None, ...]:
    """``--hints ignore,follow``: what the drivers do with repositioning hints (None: not
    given, hints off)."""
    from dispatch.simulator.experiment import HINTS

    if value is None:
        return (None,)
    chosen = tuple(part.strip() for part in value.split(",") if part.strip())
    if not chosen or any(h not in HINTS for h in chosen):
        raise typer.BadParameter(
            f"comma-separated from {', '.join(HINTS)}, not {value!r}", param_hint="--hints"
        )
    if len(set(chosen)) != len(chosen):
        raise typer.BadParameter(f"a choice twice in {value!r}", param_hint="--hints")
    return chosen


def parse_pooling(value: str | None, shared_share: float) -> tuple[bool | None, ...]:
    """``--pooling off,on``: whether the engine pools the requests that ask to share (None:
    not given, on when some do). Needs ``--shared-share`` above 0."""
    if value is None:
        return (None,)
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    if not names or any(n not in ("off", "on") for n in names):
        raise typer.BadParameter(f"comma-separated from off, on, not {value!r}",
                                 param_hint="--pooling")  # fmt: skip
    if len(set(names)) != len(names):
        raise typer.BadParameter(f"a choice twice in {value!r}", param_hint="--pooling")
    if shared_share <= 0:
        raise typer.BadParameter("needs --shared-share above 0 (no request asks to share)",
                                 param_hint="--pooling")  # fmt: skip
    return tuple(n == "on" for n in names)


def variants_of(
    strategies: str,
    city_shards: str | None,
    etas: tuple[str | None, ...] = (None,),
    hints: str | None = None,
    pooling: tuple[bool | None, ...] = (None,),
) -> tuple[Variant, ...]:
    """Every strategy with every shard count, every ETA, every use of hints and pooling
    on or off; at least two variants to compare."""
    from dispatch.simulator.experiment import Variant

    chosen = tuple(
        Variant(strategy, shards, eta, hint, pool)
        for pool in pooling
        for hint in parse_hints(hints)
        for eta in etas
        for shards in parse_city_shards(city_shards)
        for strategy in parse_strategies(strategies)
    )
    if len(chosen) < 2:
        raise typer.BadParameter(
            "at least two variants: two strategies, two --city-shards counts, two --etas, "
            "two --hints or --pooling off,on",
            param_hint="--strategies",
        )
    return chosen


def experiment(
    strategies: Annotated[
        str,
        typer.Option(help="Comma-separated; the first is the baseline differences are to."),
    ] = "greedy,batch",
    city_shards: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated shard counts to split the simulated city over, each run with "
            "every strategy (e.g. --strategies greedy --city-shards 1,4); the first is the "
            "baseline. Default: the configured markets.",
        ),
    ] = None,
    road_network_path: RoadNetwork = None,
    etas: Annotated[
        str | None,
        typer.Option(
            help="With a road network: what the matcher ranks drivers by, comma-separated "
            "(road, straight), each run with every strategy (e.g. --strategies greedy --etas "
            "road,straight); the first is the baseline. Default: road.",
        ),
    ] = None,
    hints: Annotated[
        str | None,
        typer.Option(
            help="What drivers do with repositioning hints, comma-separated (off, ignore, "
            "follow), each run with every strategy (e.g. --strategies greedy --hints "
            "ignore,follow); the first is the baseline. Default: off.",
        ),
    ] = None,
    seeds: Annotated[
        int, typer.Option(min=1, max=MAX_SEEDS, help="How many seeds: --seed, --seed+1, ...")
    ] = 10,
    seed: Annotated[int, typer.Option(min=0, help="The first seed.")] = 1,
    drivers: Drivers = 1_000,
    minutes: Minutes = 20.0,
    demand: Demand = None,
    warmup: Warmup = None,
    exact_times: ExactTimes = False,
    demand_trace: DemandTrace = None,
    zones: Zones = None,
    trace_time_scale: TimeScale = None,
    trace_window: TraceWindow = None,
    skip_bad_rows: SkipBadRows = False,
    report_dir: ReportDir = None,
    jobs: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Runs side by side (default: the CPU count)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    scheduled_share: ScheduledShare = 0.0,
    shared_share: SharedShare = 0.0,
    pooling: Annotated[
        str | None,
        typer.Option(
            help="With --shared-share: whether the engine pools the requests that ask to "
            "share, comma-separated (off, on), each run with every strategy (e.g. "
            "--strategies batch --shared-share 0.5 --pooling off,on: the same riders, pooled "
            "or each in a car of their own); the first is the baseline. Default: on.",
        ),
    ] = None,
    city_km: CityKm = None,
) -> None:
    """Run every strategy on every seed with the same demand; report each metric's mean per
    strategy and the paired difference with a 95% confidence interval (Student t over the
    per-seed differences). Embedded only: every run is a fresh engine of its own."""
    from dispatch.simulator.experiment import DemandMismatch, Plan, run_experiment
    from dispatch.simulator.html_report import write_report
    from dispatch.simulator.paired import METHOD, format_difference
    from dispatch.simulator.runner import SimConfig

    parse_strategies(strategies)
    parse_city_shards(city_shards)
    settings = settings_from(None, None)
    scheduled = scheduled_options(scheduled_share, settings)
    shared = shared_options(shared_share)
    pools = parse_pooling(pooling, shared_share)
    network = road_network(road_network_path, settings)
    check_city(city_km, None, network)
    chosen_etas: tuple[str | None, ...] = (None,)
    if network is not None or etas is not None:
        chosen_etas = parse_etas(etas, network, "--etas")
    variants = variants_of(strategies, city_shards, chosen_etas, hints, pools)
    names = [v.label for v in variants]
    chosen = scenario(
        drivers=drivers,
        minutes=minutes,
        demand=demand,
        warmup=warmup,
        exact_times=exact_times,
        demand_trace=demand_trace,
        zones=zones,
        time_scale=trace_time_scale,
        window=trace_window,
        skip_bad_rows=skip_bad_rows,
        city_km=city_km,
    )
    if not settings.embedded:
        raise typer.BadParameter(
            "experiments run embedded engines; unset DISPATCH_KAFKA_BOOTSTRAP",
            param_hint="DISPATCH_KAFKA_BOOTSTRAP",
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = report_dir or settings.data_dir / "experiments" / stamp
    check_outputs(None, target, demand_trace)
    plan = Plan(
        variants=variants,
        seeds=tuple(range(seed, seed + seeds)),
        config=SimConfig(**chosen.config, **scheduled, **shared),  # type: ignore[arg-type]
        settings=on_roads(settings, network, 1 if city_shards else None),
        demand=tuple(chosen.trace) if chosen.trace else None,
        road_network=network,
    )
    workers = jobs or min(os.cpu_count() or 1, len(names) * seeds)
    with Progress(console=console, transient=True, disable=as_json) as bar:
        task = bar.add_task(f"{len(names) * seeds} runs", total=len(names) * seeds)
        try:
            outcome = run_experiment(plan, workers, lambda _run: bar.advance(task))
        except DemandMismatch as error:
            console.print(f"[red]not paired[/red]: {error}")
            raise typer.Exit(code=1) from None
    notes = [
        f"paired design: {seeds} seeds from {seed}, every variant on the same requests "
        f"(hashes checked); difference = other - {names[0]}, 95% CI by {METHOD}",
        *(
            [
                chosen.trace_note,
                "every seed plays the same trace: the intervals cover the "
                "drivers' and riders' randomness, not the demand's",
            ]
            if chosen.trace_note
            else []
        ),
    ]
    title = f"Experiment: {' vs '.join(names)}, {drivers} drivers, {minutes:g} min, {seeds} seeds"
    html = write_report(
        target,
        outcome.runs,
        title=title,
        warmup_s=plan.config.warmup_s,
        comparisons=outcome.comparisons(),
        notes=notes,
    )
    violations = [v for run in outcome.runs for v in run.summary["violations"]]
    if as_json:
        print(
            json.dumps(
                {
                    "paired": True,
                    "method": METHOD,
                    "baseline": names[0],
                    "strategies": list(names),
                    "variants": [
                        {
                            "label": v.label,
                            "strategy": v.strategy,
                            "city_shards": v.city_shards,
                            "eta": v.eta,
                            "hints": v.hints,
                            "pooling": v.pooling,
                        }
                        for v in variants
                    ],
                    "road_network": None if network is None else str(network),
                    "seeds": list(plan.seeds),
                    "warmup_s": plan.config.warmup_s,
                    "differences": [asdict(d) for d in outcome.differences],
                    "runs": [run.summary for run in outcome.runs],
                    "report": str(html),
                },
                indent=2,
                allow_nan=False,
            )
        )
    else:
        table = Table(title=title)
        table.add_column("metric")
        for name in names:
            table.add_column(f"{name} mean", justify="right")
        table.add_column("difference [95% CI]", justify="right")
        for d in outcome.differences:
            means = [d.baseline_mean, d.other_mean]
            shown = ["-" if m is None else f"{m:.1f}" for m in means]
            mark = " *" if d.significant() else ""
            table.add_row(d.metric, *shown, f"{format_difference(d)}{mark}")
        print_table(table, notes, html)
    if violations:
        raise typer.Exit(code=1)


def print_table(table: Table, notes: list[str], html: Path) -> None:
    out = Console()
    out.print(table)
    out.print("* the 95% interval excludes 0")
    for note in notes:
        out.print(note)
    out.print(f"report: {html}")
