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

from dispatch.cli.common import Kafka, settings_from
from dispatch.simulator.report import SimReport

console = Console()


def simulate(
    drivers: Annotated[int, typer.Option(min=1, help="Number of simulated drivers.")] = 2_000,
    minutes: Annotated[float, typer.Option(min=0.1, help="Simulated minutes.")] = 30.0,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same run).")] = 7,
    strategy: Annotated[str, typer.Option(help="greedy or batch")] = "greedy",
    demand: Annotated[
        float | None,
        typer.Option(help="Ride requests per simulated minute (default 7.5% of drivers)."),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where to write the event log (default: a new folder).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    kafka: Kafka = None,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="Kafka mode: worker processes to start "
            "(0: use workers already running with --clock "
            "stream).",
        ),
    ] = 1,
    shards: Annotated[
        int | None, typer.Option(min=1, help="Shards (default DISPATCH_SHARDS).")
    ] = None,
) -> None:
    """Run the engine against a simulated city and print a report."""
    from dispatch.simulator.embedded import run_embedded
    from dispatch.simulator.runner import SimConfig

    if strategy not in ("greedy", "batch"):
        raise typer.BadParameter("choose 'greedy' or 'batch'", param_hint="--strategy")
    base = settings_from(None, kafka, **({"shards": shards} if shards else {}))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = data_dir or base.data_dir / "simulations" / f"{stamp}-seed{seed}-{strategy}"
    if base.embedded and target.exists() and any(target.iterdir()):
        raise typer.BadParameter(
            f"{target} is not empty; a simulation needs a fresh log", param_hint="--data-dir"
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

        return run_on_kafka(config, settings, workers, target / "logs", progress)

    if as_json:
        report = run(None)
        print(json.dumps(report.as_dict() | {"log": where}, indent=2))
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
