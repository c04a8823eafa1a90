"""``dispatch simulate``: the main job, a simulated city against the engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from dispatch.adapters.sqlite.datadir import MAX_SHARDS
from dispatch.cli.common import Kafka, settings_from
from dispatch.cli.roadnet import (
    RoadNetwork,
    graph_city,
    on_roads,
    parse_etas,
    road_network,
    with_eta,
)
from dispatch.cli.scenario import (
    MAX_DRIVERS,
    MAX_MINUTES,
    CityKm,
    CityShards,
    Demand,
    DemandTrace,
    ExactTimes,
    ReportDir,
    ScheduledShare,
    SharedShare,
    SkipBadRows,
    TimeScale,
    TraceWindow,
    Warmup,
    WriteDemand,
    Zones,
    check_city,
    check_outputs,
    scenario,
    scheduled_options,
    shared_options,
)
from dispatch.cli.simulate_api import (
    API_MINUTES,
    MAX_API_MINUTES,
    AllowRemote,
    Api,
    Cleanup,
    Connections,
    Credentials,
    Drain,
    OpenLoop,
    Profile,
    SpeedKmh,
    refuse,
    simulate_api,
)

if TYPE_CHECKING:
    from dispatch.simulator.runner import Simulation

console = Console()


SimDrivers = Annotated[
    int | None,
    typer.Option(
        min=1, max=MAX_DRIVERS, help="Number of simulated drivers (default 2000; with --api 50)."
    ),
]
SimMinutes = Annotated[
    float | None,
    typer.Option(
        help=f"Simulated minutes, 0.1 to {MAX_MINUTES:g} (default 60); with --api real "
        f"minutes, 0.1 to {MAX_API_MINUTES:g} (default {API_MINUTES:g})."
    ),
]


def simulate(
    drivers: SimDrivers = None,
    minutes: SimMinutes = None,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (same seed, same run).")] = 7,
    strategy: Annotated[
        str | None,
        typer.Option(help="greedy or batch (default greedy; with --api the deployment's)."),
    ] = None,
    demand: Demand = None,
    warmup: Warmup = None,
    exact_times: ExactTimes = False,
    demand_trace: DemandTrace = None,
    zones: Zones = None,
    trace_time_scale: TimeScale = None,
    trace_window: TraceWindow = None,
    skip_bad_rows: SkipBadRows = False,
    write_demand: WriteDemand = None,
    report_dir: ReportDir = None,
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
    city_shards: CityShards = None,
    road_network_path: RoadNetwork = None,
    eta: Annotated[
        str | None,
        typer.Option(
            "--eta",
            help="What the matcher ranks drivers by: road (routed over --road-network, the "
            "default with one) or straight (the straight-line estimate; drivers still drive "
            "the roads).",
        ),
    ] = None,
    vehicle_mix: Annotated[
        str | None,
        typer.Option(
            help="The products the drivers' vehicles are registered for, as shares of the "
            "catalog's products (DISPATCH_PRODUCTS): a standard car of 4 seats, an xl of 6, "
            "an accessible van of 4, another product's fewest seats and the access it needs "
            '(docs/MARKETPLACE.md, "The product lever"). Default: '
            "standard=0.60,xl=0.25,accessible=0.15, less those the catalog lacks."
        ),
    ] = None,
    product_mix: Annotated[
        str | None,
        typer.Option(
            help="The products the riders ask for, as shares. Default: "
            "standard=0.80,xl=0.15,accessible=0.05, less those the catalog lacks."
        ),
    ] = None,
    place_demand: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help='With places that keep a queue (DISPATCH_MARKETS "places"): the share of '
            "the synthetic requests picked up inside them, and of idle drivers' cruises that "
            "head for one; a driver idle inside such a place waits in its queue "
            '(docs/MARKETPLACE.md, "Places: geofences and queues"). 0 to 1.',
        ),
    ] = 0.1,
    hints: Annotated[
        str,
        typer.Option(
            help="Repositioning hints: off (the engine sends none), ignore (the engine sends "
            "them, drivers carry on) or follow (an idle driver heads for the hinted cell). "
            "On, at DISPATCH_HINT_EVERY_S, or every 30 s when that is 0 "
            '(docs/MARKETPLACE.md, "Places: repositioning hints").',
        ),
    ] = "off",
    scheduled_share: ScheduledShare = 0.0,
    shared_share: SharedShare = 0.0,
    city_km: CityKm = None,
    api: Api = None,
    allow_remote: AllowRemote = False,
    profile: Profile = None,
    open_loop: OpenLoop = False,
    credentials: Credentials = None,
    cleanup: Cleanup = True,
    speed_kmh: SpeedKmh = None,
    drain: Drain = None,
    connections: Connections = None,
) -> None:
    """Run the engine against a simulated city and print a report; with --api, drive a
    running deployment through its public API instead."""
    in_process_only = {
        "--strategy": strategy is not None, "--warmup": warmup is not None,
        "--exact-times": exact_times, "--demand-trace": demand_trace is not None,
        "--zones": zones is not None, "--trace-time-scale": trace_time_scale is not None,
        "--trace-window": trace_window is not None, "--skip-bad-rows": skip_bad_rows,
        "--write-demand": write_demand is not None,
        "--data-dir": data_dir is not None, "--kafka": kafka is not None,
        "--workers": workers is not None, "--shards": shards is not None,
        "--city-shards": city_shards is not None, "--road-network": road_network_path is not None,
        "--eta": eta is not None, "--vehicle-mix": vehicle_mix is not None,
        "--product-mix": product_mix is not None, "--place-demand": place_demand != 0.1,
        "--hints": hints != "off", "--scheduled-share": scheduled_share != 0.0,
        "--shared-share": shared_share != 0.0,
    }  # fmt: skip
    if api is not None:
        for name, given in in_process_only.items():
            if given:
                refuse(name)
        return simulate_api(
            api, allow_remote=allow_remote, drivers=drivers, minutes=minutes, seed=seed,
            demand=demand, profile=profile, open_loop=open_loop, city_km=city_km,
            speed_kmh=speed_kmh, drain=drain, connections=connections,
            credentials=credentials, cleanup=cleanup,
            report_dir=report_dir, as_json=as_json,
        )  # fmt: skip
    api_only = {
        "--allow-remote": allow_remote, "--profile": profile is not None,
        "--open-loop": open_loop, "--credentials": credentials is not None,
        "--no-cleanup": not cleanup, "--speed-kmh": speed_kmh is not None,
        "--drain": drain is not None, "--connections": connections is not None,
    }  # fmt: skip
    for name, given in api_only.items():
        if given:
            raise typer.BadParameter(
                "only with --api (a run against a deployment)", param_hint=name
            )
    drivers = 2_000 if drivers is None else drivers
    minutes = 60.0 if minutes is None else minutes
    strategy = strategy or "greedy"
    from dispatch.simulator.city import City
    from dispatch.simulator.cityshards import split_city
    from dispatch.simulator.experiment import HINTS, with_hints
    from dispatch.simulator.products import parse_mix
    from dispatch.simulator.runner import SimConfig

    if strategy not in ("greedy", "batch"):
        raise typer.BadParameter("choose 'greedy' or 'batch'", param_hint="--strategy")
    if hints not in HINTS:
        raise typer.BadParameter(f"choose {', '.join(HINTS)}, not {hints!r}", param_hint="--hints")
    check_outputs(write_demand, report_dir, demand_trace)
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
    base = settings_from(None, kafka, **({"shards": shards} if shards else {}))
    scheduled = scheduled_options(scheduled_share, base)
    shared = shared_options(shared_share)
    mixes = {}  # given ones must name the catalog's products; defaults are fitted to it
    for name, text in (("vehicle_mix", vehicle_mix), ("product_mix", product_mix)):
        if text is None:
            continue
        try:
            mixes[name] = parse_mix(text, "--" + name.replace("_", "-"), base.catalog)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--" + name.replace("_", "-")) from None
    if eta is not None and eta not in ("road", "straight"):
        raise typer.BadParameter(f"choose 'road' or 'straight', not {eta!r}", param_hint="--eta")
    network = road_network(road_network_path, base)
    check_city(city_km, None, network)
    (chosen_eta,) = parse_etas(eta, network, "--eta")
    base = on_roads(base, network, city_shards)
    if city_shards is not None:
        if shards is not None and shards < city_shards:
            raise typer.BadParameter(
                f"{city_shards} city shards need --shards {city_shards} or more, not {shards}",
                param_hint="--city-shards",
            )
        points = [r.pickup for r in chosen.trace] if chosen.trace else None
        city = graph_city(network) if network is not None and not points else None
        if city is None and not points and city_km is not None:
            city = City.sized(city_km)
        base = split_city(base, city_shards, points, city)
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
    settings = with_eta(
        base.model_copy(update={"data_dir": target, "strategy": strategy}), network, chosen_eta
    )
    settings, hints = with_hints(settings, hints)
    if shared["pooling"]:  # the requests asking to share are pooled
        settings = settings.model_copy(update={"pool": True})
    options = {"seed": seed, "strategy": strategy, "city_shards": city_shards or 1,
               "road_network": network, "eta": chosen_eta, "place_demand": place_demand,
               "hints": hints, **mixes, **scheduled, **shared}  # fmt: skip
    config = SimConfig(**options, **chosen.config)  # type: ignore[arg-type]
    where = str(target) if settings.embedded else f"topic {settings.topic_prefix}.events"

    def run(progress: Callable[[float], None] | None) -> Simulation:
        if settings.embedded:
            from dispatch.simulator.embedded import simulate_embedded

            return simulate_embedded(config, settings, progress, chosen.trace)
        from dispatch.simulator.kafka import run_on_kafka

        processes = 1 if workers is None else workers
        return run_on_kafka(
            config, settings, processes, target / "logs", progress, demand=chosen.trace
        )

    if as_json:
        sim = run(None)
    else:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("simulating", total=minutes * 60)
            sim = run(lambda s: bar.advance(task, s))
    report = sim.finished
    notes = [n for n in (chosen.trace_note,) if n]
    if write_demand is not None:
        save_demand(write_demand, sim)
    if report_dir is not None:
        write_run_report(report_dir, sim, notes)
    if as_json:
        print(json.dumps(report.as_dict() | {"log": where}, indent=2, allow_nan=False))
    else:
        table = Table(title="simulation report", show_header=False)
        for key, value in report.rows():
            table.add_row(key, value)
        console.print(table)
        for note in notes:
            console.print(note)
        for violation in report.violations[:20]:
            console.print(f"[red]violation[/red] {violation}")
        console.print(f"event log: {where}")
        if report_dir is not None:
            console.print(f"report: {report_dir / 'report.html'}")
    if report.violations:
        raise typer.Exit(code=1)


def save_demand(path: Path, sim: Simulation) -> None:
    from dispatch.simulator.trace import write_demand

    write_demand(path, sim.demand_sent, datetime.fromtimestamp(sim.started_at, UTC))


def write_run_report(directory: Path, sim: Simulation, notes: list[str]) -> None:
    from dispatch.simulator.html_report import RunData, write_report

    report = sim.finished
    run = RunData(report.strategy, report.seed, report.as_dict(), sim.records(), sim.samples)
    title = f"Simulation: {report.strategy}, seed {report.seed}, {report.drivers} drivers"
    write_report(directory, [run], title=title, warmup_s=report.warmup_s, notes=notes)
