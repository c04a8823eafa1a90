"""``dispatch simulate``: the main job, a simulated city against the engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from dispatch.adapters.sqlite.datadir import MAX_SHARDS
from dispatch.cli.common import Kafka, settings_from
from dispatch.simulator.report import SimReport

console = Console()


MAX_DRIVERS = 100_000
MAX_MINUTES = 7 * 24 * 60.0
MAX_DEMAND = 10_000.0  # ride requests a simulated minute


def simulate(
    drivers: Annotated[
        int, typer.Option(min=1, max=MAX_DRIVERS, help="Number of simulated drivers.")
    ] = 2_000,
    minutes: Annotated[
        float, typer.Option(help=f"Simulated minutes, 0.1 to {MAX_MINUTES:g}.")
    ] = 30.0,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (same seed, same run).")] = 7,
    strategy: Annotated[str, typer.Option(help="greedy or batch")] = "greedy",
    demand: Annotated[
        float | None,
        typer.Option(
            help=f"Ride requests per simulated minute, more than 0 and at most {MAX_DEMAND:g} "
            "(default 7.5% of drivers).",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the event log, a new or empty folder (default: a new folder)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    kafka: Kafka = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Kafka mode: worker processes to start, at most one a shard (default 1; "
            "0: use workers already running with --clock stream).",
        ),
    ] = None,
    shards: Annotated[
        int | None, typer.Option(min=1, max=MAX_SHARDS, help="Shards (default DISPATCH_SHARDS).")
    ] = None,
) -> None:
    """Run the engine against a simulated city and print a report."""
    from dispatch.simulator.embedded import run_embedded
    from dispatch.simulator.runner import SimConfig

    if strategy not in ("greedy", "batch"):
        raise typer.BadParameter("choose 'greedy' or 'batch'", param_hint="--strategy")
    if not 0.1 <= minutes <= MAX_MINUTES:  # NaN too
        raise typer.BadParameter(
            f"must be 0.1 to {MAX_MINUTES:g} minutes, not {minutes:g}", param_hint="--minutes"
        )
    if demand is not None and not 0 < demand <= MAX_DEMAND:
        raise typer.BadParameter(
            f"must be more than 0 and at most {MAX_DEMAND:g}, not {demand:g}",
            param_hint="--demand",
        )
    base = settings_from(None, kafka, **({"shards": shards} if shards else {}))
    if base.embedded and workers is not None:
        raise typer.BadParameter("only with --kafka (embedded has none)", param_hint="--workers")
    if workers is not None and workers > base.shards:
        raise typer.BadParameter(
            f"{workers} workers for {base.shards} shard(s): at most one a shard",
            param_hint="--workers",
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = data_dir or base.data_dir / "simulations" / f"{stamp}-seed{seed}-{strategy}"
    if target.exists() and not target.is_dir():
        raise typer.BadParameter(f"not a folder: {target}", param_hint="--data-dir")
    if base.embedded and target.exists() and any(target.iterdir()):
        raise typer.BadParameter(
            f"not empty (a simulation needs a fresh log): {target}", param_hint="--data-dir"
        )
    settings = base.model_copy(update={"data_dir": target, "strategy": strategy})
    config = SimConfig(
        drivers=drivers, minutes=minutes, seed=seed, demand_per_min=demand, strategy=strategy
    )
    where = str(target) if settings.embedded else f"topic {settings.topic_prefix}.events"

    def run(progress: Callable[[float], None] | None) -> SimReport:
        if settings.embedded:
            return run_embedded(config, settings, progress)
        from dispatch.simulator.kafka import run_on_kafka

        processes = 1 if workers is None else workers
        return run_on_kafka(config, settings, processes, target / "logs", progress)

    if as_json:
        report = run(None)
        print(json.dumps(report.as_dict() | {"log": where}, indent=2, allow_nan=False))
    else:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("simulating", total=minutes * 60)
            report = run(lambda s: bar.advance(task, s))
        table = Table(title="simulation report", show_header=False)
        for key, value in report.rows():
            table.add_row(key, value)
        console.print(table)
        for violation in report.violations[:20]:
            console.print(f"[red]violation[/red] {violation}")
        console.print(f"event log: {where}")
    if report.violations:
        raise typer.Exit(code=1)
