"""``dispatch roads``: a city's road network, built once from its OpenStreetMap extract."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from dispatch.cli.errors import fail

app = typer.Typer(help="Road networks for routed pickup ETAs.", no_args_is_help=True)
console = Console(stderr=True)


@app.command("build")
def build(
    extract: Annotated[Path, typer.Argument(help="The city's OpenStreetMap extract (.osm.pbf).")],
    out: Annotated[
        Path | None,
        typer.Option(help="Where to keep the graph (default: beside the extract, .roads.npz)."),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Build it even if a graph of this extract is kept already.")
    ] = False,
) -> None:
    """Build the drivable road graph of an extract and keep it, so that the engine
    (DISPATCH_ROAD_NETWORK) starts without reading the extract again. A kept graph of the
    same extract and speed table is reused unless --force."""
    from dispatch.bootstrap import keep_road_graph
    from dispatch.roads.cache import graph_path
    from dispatch.roads.graph import RoadGraphError

    target = out or graph_path(extract)
    if target.suffix != ".npz":
        raise typer.BadParameter("a road graph is kept as a .npz file", param_hint="--out")
    started = time.monotonic()
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(f"{extract.name}: hashing", total=100)

            def step(what: str) -> None:
                bar.update(task, description=f"{extract.name}: {what}", completed=_done(what))

            graph, built = keep_road_graph(extract, target, step, force)
    except RoadGraphError as error:
        fail(f"error: {error}")
    if not built:
        console.print(f"{target}: already built from this extract (--force builds it again)",
                      highlight=False)  # fmt: skip
        return
    console.print(
        f"{target}: {graph.nodes:,} nodes, {graph.edges:,} directed edges, built in "
        f"{time.monotonic() - started:.1f} s",
        highlight=False,
    )


# Where each stage of a build stands on the bar (reading the ways is most of the work).
_STAGES = {"checking the file": 0, "hashing the file": 2, "reading ways": 5,
           "setting speeds": 85, "directing edges": 90,
           "keeping the largest strongly connected part": 95, "writing the graph": 98}  # fmt: skip


def _done(stage: str) -> float:
    """Per cent of the build done at ``stage`` ("reading ways 40%" moves within its span)."""
    if stage.startswith("reading ways ") and stage.endswith("%"):
        return 5 + 0.8 * float(stage.removeprefix("reading ways ").removesuffix("%"))
    return float(_STAGES.get(stage, 0))
