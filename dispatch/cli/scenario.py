"""The options that describe a simulated city and its demand, shared by ``simulate`` and
``experiment``, and their checks: a meaningless combination is a usage error naming it."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from dispatch.settings import Settings
from dispatch.simulator.city import DEFAULT_CITY_KM, MAX_CITY_KM, MIN_CITY_KM
from dispatch.simulator.results import Request

MAX_DRIVERS = 100_000
MAX_MINUTES = 7 * 24 * 60.0
MAX_DEMAND = 10_000.0  # ride requests a simulated minute

Drivers = Annotated[int, typer.Option(min=1, max=MAX_DRIVERS, help="Number of simulated drivers.")]
Minutes = Annotated[float, typer.Option(help=f"Simulated minutes, 0.1 to {MAX_MINUTES:g}.")]
Demand = Annotated[
    float | None,
    typer.Option(
        help=f"Ride requests per simulated minute, more than 0 and at most {MAX_DEMAND:g} "
        "(default: 4% of the drivers, a balanced market: docs/SIMULATION.md).",
    ),
]
Warmup = Annotated[
    float | None,
    typer.Option(
        help="Simulated minutes left out of every figure at the start (default: two thirds "
        "of the run, at most 60).",
    ),
]
CityKm = Annotated[
    float | None,
    typer.Option(
        help=f"The side of the synthetic city's square in km, {MIN_CITY_KM:g} to "
        f"{MAX_CITY_KM:g} (default {DEFAULT_CITY_KM:g}): the same demand in a smaller city is "
        "denser (hot spots spread less; a drop-off beyond the square is drawn again, so trips "
        "are shorter: docs/SIMULATION.md). Not with --demand-trace or --road-network, which "
        "bring their city.",
    ),
]
ExactTimes = Annotated[
    bool,
    typer.Option(
        "--exact-times",
        help="Drivers take exactly the estimate the matcher's ETA is made of (no pace, luck "
        "or congestion): what is left of the ETA error comes from drivers moving while they "
        "answer an offer.",
    ),
]
DemandTrace = Annotated[
    Path | None,
    typer.Option(
        help="Requests from a recorded trace, CSV or Parquet (docs/DEMAND_TRACES.md) "
        "instead of the synthetic city's.",
    ),
]
Zones = Annotated[
    Path | None,
    typer.Option(help="With --demand-trace: a zone table for traces that give zones."),
]
TimeScale = Annotated[
    float | None,
    typer.Option(help="With --demand-trace: play the trace this many times faster (> 0)."),
]
CityShards = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=64,
        help="Split the simulated city over this many shards (regions of one market "
        "covering it; rides are offered drivers across region borders); default: the "
        "configured markets.",
    ),
]
TraceWindow = Annotated[
    str | None,
    typer.Option(
        help="With --demand-trace: START:END in minutes from the trace's first request; "
        "only requests in [START, END) are played.",
    ),
]
SkipBadRows = Annotated[
    bool,
    typer.Option(
        "--skip-bad-rows",
        help="With --demand-trace: skip and count bad rows instead of stopping at the first.",
    ),
]
WriteDemand = Annotated[
    Path | None,
    typer.Option(help="Save the requests of the run (CSV or Parquet) for --demand-trace."),
]
ReportDir = Annotated[
    Path | None,
    typer.Option(
        "--report",
        help="Write an HTML report with plots, its data as CSV and the JSON summary in this "
        "folder (made if need be).",
    ),
]

ScheduledShare = Annotated[
    float,
    typer.Option(
        help="The share of the requests booked ahead instead of requested at their time, "
        "0 to 1 (default 0): booked their lead time before it (log-normal, median 2 h, "
        "between DISPATCH_SCHEDULED_MIN_LEAD_S plus a minute and 24 h), or at the start of "
        "the run when that is earlier; the report adds their on-time share and lateness "
        '(docs/SIMULATION.md, "Scheduled rides").'
    ),
]
SharedShare = Annotated[
    float,
    typer.Option(
        help="The share of the immediate requests that ask to share the car, 0 to 1 "
        "(default 0), a fifth of them for two seats; pooling is turned on for the run "
        "(DISPATCH_POOL); the report adds the riders per occupied vehicle, vehicle-km per "
        "passenger-km, and served, waits and detour by kind of ride "
        '(docs/SIMULATION.md, "Shared rides").'
    ),
]


@dataclass(frozen=True)
class Scenario:
    """What the options chose: the SimConfig fields and the demand, when it is a trace."""

    config: dict[str, object]
    trace: list[Request] | None
    trace_note: str | None


def check_city(city_km: float | None, trace: Path | None, network: Path | None) -> None:
    """``--city-km`` is for the synthetic square only, and within its range."""
    if city_km is None:
        return
    if not MIN_CITY_KM <= city_km <= MAX_CITY_KM:  # NaN too
        raise typer.BadParameter(
            f"must be {MIN_CITY_KM:g} to {MAX_CITY_KM:g} km, not {city_km:g}",
            param_hint="--city-km",
        )
    roads = "--road-network (or DISPATCH_ROAD_NETWORK)"
    for name, given in (("--demand-trace", trace), (roads, network)):
        if given is not None:
            raise typer.BadParameter(
                f"not with {name}: its city is the square around what it covers",
                param_hint="--city-km",
            )


def check_basics(minutes: float, demand: float | None, warmup: float | None) -> None:
    if not 0.1 <= minutes <= MAX_MINUTES:  # NaN too
        raise typer.BadParameter(
            f"must be 0.1 to {MAX_MINUTES:g} minutes, not {minutes:g}", param_hint="--minutes"
        )
    if demand is not None and not 0 < demand <= MAX_DEMAND:
        raise typer.BadParameter(
            f"must be more than 0 and at most {MAX_DEMAND:g}, not {demand:g}",
            param_hint="--demand",
        )
    if warmup is not None and not 0 <= warmup < minutes:
        raise typer.BadParameter(
            f"must be at least 0 and less than --minutes ({minutes:g}), not {warmup:g}",
            param_hint="--warmup",
        )


def scheduled_options(share: float, settings: Settings) -> dict[str, float]:
    """The SimConfig fields of scheduled demand: ``share`` checked (0 to 1), with the
    engine's least lead time and horizon from ``settings``."""
    from dispatch.simulator.scheduled import BOOKING_SLACK_S

    if not (math.isfinite(share) and 0 <= share <= 1):
        raise typer.BadParameter(
            f"a share from 0 to 1, not {share:g}", param_hint="--scheduled-share"
        )
    least, horizon = settings.scheduled_min_lead_s, settings.scheduled_horizon_s
    if share > 0 and least + BOOKING_SLACK_S > horizon:
        raise typer.BadParameter(
            f"no lead time fits: DISPATCH_SCHEDULED_MIN_LEAD_S ({least:g}) plus "
            f"{BOOKING_SLACK_S:g} s is beyond DISPATCH_SCHEDULED_HORIZON_S ({horizon:g})",
            param_hint="--scheduled-share",
        )
    return {"scheduled_share": share, "scheduled_min_lead_s": least,
            "scheduled_horizon_s": horizon}  # fmt: skip


def shared_options(share: float) -> dict[str, float | bool]:
    """The SimConfig fields of shared demand: ``share`` checked (0 to 1); pooling on when
    any request asks to share."""
    if not (math.isfinite(share) and 0 <= share <= 1):
        raise typer.BadParameter(f"a share from 0 to 1, not {share:g}", param_hint="--shared-share")
    return {"shared_share": share, "pooling": share > 0}


def check_outputs(write_demand: Path | None, report: Path | None, trace: Path | None) -> None:
    """Refuse, before anything runs, output paths the run could not write at its end."""
    if write_demand is not None:
        from dispatch.simulator.trace import CSV_SUFFIXES, PARQUET_SUFFIXES

        name = write_demand.name.lower()
        if not name.endswith(CSV_SUFFIXES + PARQUET_SUFFIXES):
            kinds = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
            raise typer.BadParameter(
                f"{write_demand}: name the file {kinds}", param_hint="--write-demand"
            )
        _writable_file(write_demand, "--write-demand")
        if trace is not None and write_demand.resolve() == trace.resolve():
            raise typer.BadParameter(
                "would overwrite the --demand-trace it reads", param_hint="--write-demand"
            )
    if report is not None:
        if report.exists() and not report.is_dir():
            raise typer.BadParameter(f"not a folder: {report}", param_hint="--report")
        parent = report if report.exists() else _existing_parent(report)
        if not parent.is_dir():
            raise typer.BadParameter(f"{parent} is a file: no folder can be made in it",
                                     param_hint="--report")  # fmt: skip
        if not os.access(parent, os.W_OK):
            raise typer.BadParameter(f"cannot write in {parent}", param_hint="--report")


def _existing_parent(path: Path) -> Path:
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    return Path("/")


def _writable_file(path: Path, option: str) -> None:
    if path.is_dir():
        raise typer.BadParameter(f"a folder, not a file: {path}", param_hint=option)
    if not path.parent.is_dir():
        raise typer.BadParameter(f"no such folder: {path.parent}", param_hint=option)
    if not os.access(path.parent, os.W_OK):
        raise typer.BadParameter(f"cannot write in {path.parent}", param_hint=option)


def parse_window(value: str) -> tuple[float, float]:
    """``START:END`` minutes as seconds."""
    try:
        start, end = (float(part) * 60 for part in value.split(":"))
    except ValueError:
        raise typer.BadParameter(
            f"expected START:END in minutes, e.g. 0:60, not {value!r}", param_hint="--trace-window"
        ) from None
    if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
        raise typer.BadParameter(
            f"needs 0 <= START < END, not {value!r}", param_hint="--trace-window"
        )
    return start, end


def scenario(
    *,
    drivers: int,
    minutes: float,
    demand: float | None,
    warmup: float | None,
    exact_times: bool,
    demand_trace: Path | None,
    zones: Path | None,
    time_scale: float | None,
    window: str | None,
    skip_bad_rows: bool,
    city_km: float | None = None,
) -> Scenario:
    """Check the options together and read the trace (its errors name the row)."""
    check_basics(minutes, demand, warmup)
    check_city(city_km, demand_trace, None)
    config: dict[str, object] = {
        "drivers": drivers,
        "minutes": minutes,
        "demand_per_min": demand,
        "warmup_minutes": warmup,
    }
    if city_km is not None:
        config["city_km"] = city_km
    if exact_times:
        config |= {"driver_pace_sd": 0.0, "leg_sd": 0.0, "congestion_peak": 0.0}
    if demand_trace is None:
        for name, given in (
            ("--zones", zones is not None),
            ("--trace-time-scale", time_scale is not None),
            ("--trace-window", window is not None),
            ("--skip-bad-rows", skip_bad_rows),
        ):
            if given:
                raise typer.BadParameter("only with --demand-trace", param_hint=name)
        return Scenario(config, None, None)
    if demand is not None:
        raise typer.BadParameter(
            "a trace brings its own demand: give --demand or --demand-trace", param_hint="--demand"
        )
    if time_scale is not None and not (math.isfinite(time_scale) and time_scale > 0):
        raise typer.BadParameter(
            f"must be more than 0, not {time_scale:g}", param_hint="--trace-time-scale"
        )
    return _read(config, demand_trace, zones, time_scale, window, skip_bad_rows, minutes)


def _read(
    config: dict[str, object],
    path: Path,
    zones: Path | None,
    time_scale: float | None,
    window: str | None,
    skip_bad_rows: bool,
    minutes: float,
) -> Scenario:
    from dispatch.simulator.runner import SimConfig
    from dispatch.simulator.trace import TraceError, read_trace

    try:
        trace = read_trace(
            path,
            zones=zones,
            time_scale=time_scale or 1.0,
            window=parse_window(window) if window else None,
            skip_bad_rows=skip_bad_rows,
        )
    except TraceError as error:
        raise typer.BadParameter(str(error), param_hint="--demand-trace") from None
    played = [r for r in trace.requests if r.at_s < minutes * 60]
    if not played:
        raise typer.BadParameter(
            f"no request of the trace falls in the first {minutes:g} simulated minutes",
            param_hint="--demand-trace",
        )
    warmup_s = SimConfig(**config).warmup_s  # type: ignore[arg-type]
    if not any(r.at_s >= warmup_s for r in played):
        last = max(r.at_s for r in played) / 60
        raise typer.BadParameter(
            f"every request of the trace (the last at minute {last:.1f}) comes during the "
            f"warm-up (the first {warmup_s / 60:g} minutes): nothing would be measured; "
            "give a shorter --warmup or a longer trace",
            param_hint="--demand-trace",
        )
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(trace.skipped_reasons.items()))
    note = (
        f"demand: {path.name}, {len(played)} of {len(trace.requests)} requests played "
        f"({trace.rows} rows, {trace.skipped} skipped{': ' + skipped if skipped else ''})"
    )
    return Scenario(config, played, note)
