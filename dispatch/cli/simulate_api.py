"""``dispatch simulate --api URL``: the simulated city as app clients of a running
deployment (docs/SIMULATION.md, "Against a deployment")."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from dispatch.cli.common import settings_from
from dispatch.cli.scenario import check_outputs
from dispatch.simulator.city import MAX_CITY_KM, MIN_CITY_KM

if TYPE_CHECKING:
    from dispatch.simulator.apps.config import ApiRunConfig
    from dispatch.simulator.apps.report import ApiReport

console = Console()
errors = Console(stderr=True)

API_DRIVERS, API_MINUTES = 50, 5.0  # the defaults with --api (real time: a short run)
MAX_API_DRIVERS, MAX_API_MINUTES = 20_000, 240.0
MAX_API_DEMAND = 6_000.0  # requests a minute

Api = Annotated[
    str | None,
    typer.Option(
        "--api",
        help="Drive a running deployment through its public API instead (a URL such as "
        "http://127.0.0.1:8000): drivers and riders become app clients, in real time "
        '(docs/SIMULATION.md, "Against a deployment"). Loopback only, unless --allow-remote.',
    ),
]
AllowRemote = Annotated[
    bool, typer.Option(help="With --api: allow a target that is not a loopback address.")
]
Profile = Annotated[
    str | None,
    typer.Option(help="With --api: the load's shape over the run: flat, ramp or rush."),
]
OpenLoop = Annotated[
    bool,
    typer.Option(
        help="With --api: every send goes at its planned time even while earlier ones wait, "
        "so a slow deployment shows as latency, not as fewer requests."
    ),
]
Credentials = Annotated[
    Path | None,
    typer.Option(
        help="With --api: a file of the accounts to reuse, written back at the end (mode "
        "0600: it holds refresh tokens); new accounts are registered for the rest."
    ),
]
Cleanup = Annotated[
    bool,
    typer.Option(
        help="With --api: at the end, cancel the rides not started, end the trips in "
        "progress and take every driver offline (--no-cleanup leaves them as they are)."
    ),
]
SpeedKmh = Annotated[
    float | None,
    typer.Option(
        help="With --api: the simulated vehicles' pace in km/h, 5 to 300 (default 25). A "
        "short test run may raise it so that its trips end within the run."
    ),
]
Connections = Annotated[
    int | None,
    typer.Option(
        help="With --api: the client's pool of connections for calls (streams have their "
        "own), 1 to 10000 (default 256). The report's pool wait says when it was short."
    ),
]
Drain = Annotated[
    float | None,
    typer.Option(
        help="With --api: seconds after the run's minutes for the rides in flight to end, "
        "0 to 3600 (default 120)."
    ),
]


def refuse(name: str, why: str = "it does not apply to a run against a deployment") -> None:
    raise typer.BadParameter(f"not with --api: {why}", param_hint=name)


def simulate_api(
    url: str,
    *,
    allow_remote: bool,
    drivers: int | None,
    minutes: float | None,
    seed: int,
    demand: float | None,
    profile: str | None,
    open_loop: bool,
    city_km: float | None,
    speed_kmh: float | None,
    drain: float | None,
    connections: int | None,
    credentials: Path | None,
    cleanup: bool,
    report_dir: Path | None,
    as_json: bool,
) -> None:
    from dispatch.simulator.apps.config import PROFILES, ApiRunConfig, TargetRefused, check_target

    try:
        target = check_target(url, allow_remote)
    except TargetRefused as error:
        raise typer.BadParameter(str(error), param_hint="--api") from None
    checks: list[tuple[str, float | None, float, float]] = [
        ("--drivers", drivers, 1, MAX_API_DRIVERS),
        ("--minutes", minutes, 0.1, MAX_API_MINUTES),
        ("--demand", demand, 0.01, MAX_API_DEMAND),
        ("--city-km", city_km, MIN_CITY_KM, MAX_CITY_KM),
        ("--speed-kmh", speed_kmh, 5, 300),
        ("--drain", drain, 0, 3_600),
        ("--connections", connections, 1, 10_000),
    ]
    for name, value, low, high in checks:
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            raise typer.BadParameter(f"must be {low:g} to {high:g}, not {value:g}", param_hint=name)
    if profile is not None and profile not in PROFILES:
        raise typer.BadParameter(
            f"choose {', '.join(PROFILES)}, not {profile!r}", param_hint="--profile"
        )
    if credentials is not None and credentials.exists() and not credentials.is_file():
        raise typer.BadParameter(f"not a file: {credentials}", param_hint="--credentials")
    if credentials is not None and not credentials.parent.is_dir():
        raise typer.BadParameter(
            f"no folder {credentials.parent} to write it in", param_hint="--credentials"
        )
    check_outputs(None, report_dir, None)
    settings = settings_from(None, None)
    market = settings.markets[0] if settings.markets else None
    options: dict[str, object] = {
        "url": target,
        "drivers": drivers or API_DRIVERS,
        "minutes": minutes if minutes is not None else API_MINUTES,
        "seed": seed,
        "demand_per_min": demand,
        "profile": profile or "flat",
        "open_loop": open_loop,
        "cleanup": cleanup,
        "credentials": credentials,
    }
    for name, value in (("city_km", city_km), ("speed_kmh", speed_kmh), ("drain_s", drain),
                        ("connections", connections)):  # fmt: skip
        if value is not None:
            options[name] = value
    if market is not None:
        options["centre"] = (market.lat, market.lng)
    config = ApiRunConfig(**options)  # type: ignore[arg-type]
    report = _run(config, None if as_json else _printer())
    if as_json:
        print(json.dumps(report.as_dict(), indent=2, allow_nan=False))
    else:
        table = Table(title="run against a deployment", show_header=False)
        for name, text in report.rows():
            table.add_row(name, text)
        console.print(table)
    code = 0
    if report_dir is not None:  # after the report is out: a failed write loses nothing else
        from dispatch.simulator.apps.html import write_api_report

        try:
            written = write_api_report(report_dir, report.as_dict(), report.calls)
        except OSError as error:
            errors.print(f"[red]the report was not written[/red]: {error}", highlight=False)
            code = 1
        else:
            if not as_json:
                console.print(f"report: {written}")
    if report.unfinished and config.cleanup:
        errors.print(f"[red]{report.unfinished} ride(s) not seen to end[/red]", highlight=False)
        code = 1
    if report.doc.get("stopped_early"):
        left = report.doc["drivers_left_online"]
        errors.print(f"stopped early by SIGTERM; {left} driver(s) left online", highlight=False)
        code = 143
    if code:
        raise typer.Exit(code=code)


def _run(config: ApiRunConfig, progress: Callable[[str, float], None] | None) -> ApiReport:
    from dispatch.simulator.apps.accounts import AccountError
    from dispatch.simulator.apps.run import Stopped, run_against

    try:
        return asyncio.run(run_against(config, progress))
    except AccountError as error:
        errors.print(f"[red]error[/red] {error}", highlight=False)
        raise typer.Exit(code=2) from None
    except Stopped as stopped:
        errors.print(f"{stopped}: the run's apps stopped; no report", highlight=False)
        raise typer.Exit(code=143) from None


def _printer() -> Callable[[str, float], None]:
    last: dict[str, int] = {}

    def show(stage: str, seconds: float) -> None:
        tens = int(seconds // 10)
        if last.get(stage) != tens:
            last[stage] = tens
            errors.print(f"{stage}: {seconds:.0f} s", highlight=False)

    return show
