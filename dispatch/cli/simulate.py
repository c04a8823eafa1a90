"""``dispatch simulate``: the main job, a simulated city against the engine."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from dispatch.settings import Settings

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
) -> None:
    """Run the engine against a simulated city and print a report."""
    from dispatch.simulator.embedded import run_embedded
    from dispatch.simulator.runner import SimConfig

    if strategy not in ("greedy", "batch"):
        raise typer.BadParameter("choose 'greedy' or 'batch'", param_hint="--strategy")
    base = Settings()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = data_dir or base.data_dir / "simulations" / f"{stamp}-seed{seed}-{strategy}"
    if target.exists() and any(target.iterdir()):
        raise typer.BadParameter(
            f"{target} is not empty; a simulation needs a fresh log", param_hint="--data-dir"
        )
    settings = base.model_copy(update={"data_dir": target, "strategy": strategy})
    config = SimConfig(
        drivers=drivers, minutes=minutes, seed=seed, demand_per_min=demand, strategy=strategy
    )
    if as_json:
        report = run_embedded(config, settings)
        print(json.dumps(report.as_dict() | {"data_dir": str(target)}, indent=2))
    else:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("simulating", total=minutes * 60)
            report = run_embedded(config, settings, lambda s: bar.advance(task, s))
        table = Table(title="simulation report", show_header=False)
        for key, value in report.rows():
            table.add_row(key, value)
        console.print(table)
        for violation in report.violations[:20]:
            console.print(f"[red]violation[/red] {violation}")
        console.print(f"event log: {target}")
    if report.violations:
        raise typer.Exit(code=1)
