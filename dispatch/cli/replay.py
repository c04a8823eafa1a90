"""``dispatch replay``: rebuild, inspect, time-travel, verify, audit and export the event log,
and explain a ride's fare.

Every subcommand only reads the log (``adopt`` writes the manifest of an old data dir).
Embedded, a data dir that is missing, lacks its manifest or has a shard file missing or
damaged ends the command with one line naming the file and exit code 2."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from dispatch.adapters.sqlite import datadir
from dispatch.adapters.sqlite.viewstore import SqliteViewStore
from dispatch.api.settings import OpsPageSettings
from dispatch.bootstrap import (
    build_log_source,
    build_reading_personal,
    build_view_history,
    build_view_stores,
    log_name,
    serving_projections,
)
from dispatch.cli.common import DataDir, Kafka, iso_time, settings_from
from dispatch.cli.errors import fail, report
from dispatch.domain.geo import latlng_problem
from dispatch.domain.ids import shard_of
from dispatch.log import LogEvent, LogSource
from dispatch.replay import operations as op
from dispatch.replay.past import ops_state_at
from dispatch.shard.personal import Sealer
from projections.ops_picture import Limits

app = typer.Typer(
    help="Rebuild, inspect, time-travel, verify and export the event log.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)

Shard = Annotated[int | None, typer.Option("--shard", min=0, help="Only this shard.")]


def _source(data_dir: Path | None, kafka: str | None, shard: int | None = None) -> LogSource:
    """The log to read, or a clear error (and exit code 2) when there is none, it is
    damaged or it has no such ``shard``. A missing or damaged embedded log is reported as
    every command reports it (``dispatch.cli.errors``), with a hint when the folder does
    not exist."""
    settings = settings_from(data_dir, kafka)
    try:
        source = build_log_source(settings)
        shards = source.shards()  # reach the log now, so a bad address fails here, clearly
    except datadir.LogIntegrityError as error:
        if not settings.data_dir.exists():
            error.add_note("pass --data-dir or set DISPATCH_DATA_DIR")
        raise
    except Exception as error:  # kafka-python raises its own errors for an unreachable broker
        report(error, f"read the log at {settings.kafka_bootstrap or settings.data_dir}")
    if not shards and not settings.embedded:  # read as empty, it would replay nothing, silently
        from dispatch.adapters.kafka.topics import Topics

        events = Topics(settings.topic_prefix).events
        fail(f"cannot read the log at {settings.kafka_bootstrap}: it has no topic '{events}' "
             "(check --kafka and DISPATCH_TOPIC_PREFIX)")  # fmt: skip
    if shard is not None and shard not in shards:
        raise typer.BadParameter(f"the log has shards {shards}, not {shard}", param_hint="--shard")
    return source


@app.command()
def verify(shard: Shard = None, data_dir: DataDir = None, kafka: Kafka = None) -> None:
    """Check every invariant over the whole log; exit 1 if any is violated.

    Per-aggregate versions gapless and unique, only legal transitions, no driver in two
    active rides, no ride with two drivers, every offer resolved, one outcome per command."""
    source = _source(data_dir, kafka, shard)
    personal = build_reading_personal(settings_from(data_dir, kafka))
    started = time.perf_counter()
    road = op.RoadFigures()
    events, violations = op.verify(source, shard, personal.open, road)
    elapsed = time.perf_counter() - started
    for v in violations:
        console.print(f"[red]violation[/red] {v}")
    if road.waits_over_bound or road.rides_over_bound:  # counted, not violations
        console.print(
            f"shared rides on the road: {road.waits_over_bound} picked up after their latest "
            f"pickup, {road.rides_over_bound} longer in the vehicle than their bound"
        )
    console.print(
        f"{events} events checked in {elapsed:.2f} s "
        f"({events / elapsed if elapsed else 0:,.0f} events/s): "
        f"{len(violations)} violation(s)"
    )
    if violations:
        raise typer.Exit(code=1)


@app.command()
def rebuild(
    views: Annotated[
        list[str] | None,
        typer.Argument(help="Views to rebuild: rides, drivers, locations, heatmap."),
    ] = None,
    all_views: Annotated[bool, typer.Option("--all", help="Rebuild every view.")] = False,
    since: Annotated[
        str | None,
        typer.Option(help="Fold only the events from this ISO 8601 time on (UTC if no zone)."),
    ] = None,
    data_dir: DataDir = None,
    kafka: Kafka = None,
) -> None:
    """Rebuild views from the start of the log (or from --since) into a fresh store, then
    switch over: the next `dispatch serve` starts from them (views.sqlite under the data
    dir, on Kafka too; a running one replaces them with its own at its next save).

    An interrupted rebuild resumes where its last checkpoint left it. Ended rides leave
    the rides view DISPATCH_ENDED_RIDE_RETENTION_S after they ended, into
    ended-rides.sqlite, as in a serving process."""
    if not views and not all_views:
        raise typer.BadParameter("name a view or pass --all", param_hint="VIEWS")
    settings = settings_from(data_dir, kafka)
    personal = build_reading_personal(settings)
    try:
        projections = op.select_views(
            None if all_views else views,
            settings.h3_resolution,
            settings.ping_ttl_s,
            settings.ended_ride_retention_s,
            personal.open,
            settings.queued_places,
        )
    except op.UnknownViews as error:
        raise typer.BadParameter(str(error), param_hint="VIEWS") from None
    source = _source(data_dir, kafka)
    target, archive = build_view_stores(settings)
    work = SqliteViewStore(settings.data_dir / "views.rebuild.sqlite")
    started = time.perf_counter()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("rebuilding", total=None)
        try:
            result = op.rebuild(
                source,
                op.RebuildStores(work, target, archive),
                projections,
                log_name(settings),
                progress=lambda n: bar.update(task, completed=n),
                since=iso_time(since, "--since"),
            )
        finally:
            archive.close()
            personal.keys.close()
    elapsed = time.perf_counter() - started
    if result.resumed_from:
        console.print(f"resumed from {result.resumed_from}")
    console.print(
        f"{result.events} events folded in {elapsed:.2f} s "
        f"({result.events / elapsed if elapsed else 0:,.0f} events/s); "
        f"views switched over to {result.target}"
    )


@app.command()
def history(
    kind: Annotated[str, typer.Argument(help="ride, driver or rider")],
    aggregate_id: Annotated[str, typer.Argument(help="The aggregate's id.")],
    data_dir: DataDir = None,
    kafka: Kafka = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """An aggregate's events in order with their times, and its state after each."""
    from uuid import UUID

    from dispatch.replay.aggregates import replay_states

    if kind not in ("ride", "driver", "rider"):
        raise typer.BadParameter("choose ride, driver or rider", param_hint="KIND")
    try:
        agg = UUID(aggregate_id)
    except ValueError:
        raise typer.BadParameter(f"not a UUID: {aggregate_id!r}", param_hint="ID") from None
    source = _source(data_dir, kafka)
    stored = source.stored_events(shard_of(agg), agg)
    if not stored:
        fail(f"no events for {kind} {agg} in shard {shard_of(agg)}", code=1)
    expected = f"dispatch.{kind.capitalize()}."  # the dot: a Rider is not a Ride
    sealer = Sealer(build_reading_personal(settings_from(data_dir, kafka)))
    for event, state in replay_states(stored, sealer):
        topic = type(event).TOPIC
        if not topic.startswith(expected):
            fail(f"{agg} is not a {kind} (its events are {topic})", code=1)
        if as_json:
            sys.stdout.write(
                orjson.dumps(
                    {
                        "version": event.originator_version,
                        "type": topic,
                        "at": event.timestamp.isoformat(),
                        "state": state,
                    }
                ).decode()
                + "\n"
            )
        else:
            console.print(
                f"[bold]v{event.originator_version}[/bold] {event.timestamp.isoformat()} {topic}"
            )
            console.print(f"    {state}")


@app.command()
def fare(
    ride_id: Annotated[str, typer.Argument(help="The ride's id.")],
    data_dir: DataDir = None,
    kafka: Kafka = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Explain a ride's fare from its events: the rules version and rule, the quote, the
    surge and the surge event it came from, the trip driven, the arithmetic, and which
    total the rider pays and why. Exit 1 when the fare priced again differs from the one
    the ride recorded, or the surge event does not bear its surge out."""
    from uuid import UUID

    from dispatch.replay.aggregates import replay_states
    from dispatch.replay.fares import explain_fare

    try:
        ride = UUID(ride_id)
    except ValueError:
        raise typer.BadParameter(f"not a UUID: {ride_id!r}", param_hint="RIDE_ID") from None
    source = _source(data_dir, kafka)
    stored = source.stored_events(shard_of(ride), ride)
    sealer = Sealer(build_reading_personal(settings_from(data_dir, kafka)))
    events = [event for event, _ in replay_states(stored, sealer)]
    if not events or not type(events[0]).TOPIC.startswith("dispatch.Ride."):
        fail(f"no ride {ride} in shard {shard_of(ride)}", code=1)
    explained = explain_fare(events, _surge_event_of(events[0], source))
    if as_json:
        sys.stdout.write(orjson.dumps(explained.facts).decode() + "\n")
    else:
        for line in explained.lines:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    if explained.agrees is False:
        raise typer.Exit(code=1)


def _surge_event_of(requested: Any, source: LogSource) -> LogEvent | None:
    """The surge event a ride's requested event's terms name, read from the log."""
    from dispatch.domain.ride_fare import SurgeSource
    from dispatch.replay.surge_sources import surge_events

    found = (getattr(requested, "fare", None) or {}).get("surge_from")
    if not found or not found.get("event"):
        return None
    try:
        where = SurgeSource.from_data(found)
    except (KeyError, TypeError, ValueError):
        return None  # not a source the log could have: explained as naming nothing there
    assert where.shard is not None and where.position is not None
    place = (where.shard, where.position)
    return surge_events(source, {place}).get(place)


@app.command()
def state(
    at: Annotated[str, typer.Option("--at", help="ISO 8601 time (UTC if no zone).")],
    shard: Shard = None,
    aggregate_id: Annotated[str | None, typer.Option("--id", help="Only this ride/driver.")] = None,
    data_dir: DataDir = None,
    kafka: Kafka = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    lat: Annotated[float | None, typer.Option(help="With --lng: the surge of this place.")] = None,
    lng: Annotated[float | None, typer.Option(help="With --lat: the surge of this place.")] = None,
    ops: Annotated[
        bool,
        typer.Option(
            "--ops",
            help="The /ops page's picture as of --at (JSON), folded from the latest view "
            "history point at or before it plus the log's tail (docs/OPERATIONS.md).",
        ),
    ] = False,
) -> None:
    """The state of the shards (or of one aggregate, or the surge of one place) as of a
    moment, replayed up to it: rides and drivers by status, the surge multiplier of every
    cell above 1.00, and each geofenced place someone is inside, with its queue (the places
    DISPATCH_MARKETS gives a queue; with no places there, every place has one)."""
    moment = iso_time(at, "--at")
    assert moment is not None
    if ops:
        if aggregate_id is not None or lat is not None or lng is not None or shard is not None:
            raise typer.BadParameter(
                "--ops draws the whole city: not with --id, --lat/--lng or --shard",
                param_hint="--ops",
            )
        print(orjson.dumps(_ops_state(data_dir, kafka, moment)).decode())
        return
    if (lat is None) != (lng is None):
        raise typer.BadParameter("give both --lat and --lng, or neither", param_hint="--lat")
    if lat is not None and lng is not None:
        problem = latlng_problem(lat, lng)
        if problem is not None:
            raise typer.BadParameter(problem, param_hint="--lat/--lng")
    settings = settings_from(data_dir, kafka)
    # the queues of the places the settings give a queue; settings with no places (not the
    # log's deployment's): every place someone was inside, with a queue
    has_places = any(m.places for m in settings.markets)
    queued = settings.queued_places if has_places else None
    personal = build_reading_personal(settings)
    try:
        views = op.state_at(_source(data_dir, kafka, shard), moment, shard, queued, personal.open)
    finally:
        personal.keys.close()
    if lat is not None and lng is not None:
        surge = views.surge
        payload: object = {"lat": lat, "lng": lng, "cell": surge.cell_of(lat, lng),
                           "multiplier": surge.multiplier(lat, lng)}  # fmt: skip
    elif aggregate_id is not None:
        row = views.rides.get(aggregate_id) or views.drivers.rows.get(aggregate_id)
        if row is None:
            fail(f"no ride or driver {aggregate_id} existed at {at}", code=1)
        payload = {k: getattr(row, k) for k in row.__slots__ if k != "timeline"}
    else:
        payload = op.summarize(views)
    if as_json:
        print(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
    else:
        console.print(payload)


def _ops_state(data_dir: Path | None, kafka: str | None, moment: float) -> dict[str, object]:
    settings = settings_from(data_dir, kafka)
    personal = build_reading_personal(settings)

    def pickup_of(value: object) -> list[float] | None:
        opened = personal.open(value, "pickup")
        return [opened[0], opened[1]] if isinstance(opened, list) else None  # None: erased

    page = OpsPageSettings()
    return ops_state_at(
        _source(data_dir, kafka),
        moment,
        serving_projections(settings, personal.open),
        build_view_history(settings),
        log_name(settings),
        pickup_of,
        Limits(page.max_drivers, page.max_rides),
    )


@app.command()
def export(
    fmt: Annotated[str, typer.Option("--format", help="jsonl or parquet")] = "jsonl",
    since: Annotated[str | None, typer.Option(help="ISO 8601 time, inclusive")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 time, inclusive")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: stdout for jsonl)")
    ] = None,
    data_dir: DataDir = None,
    kafka: Kafka = None,
) -> None:
    """Events as documented JSON (see docs/EVENTS.md), for analysis.

    The output file is written beside itself under a temporary name and renamed into place
    at the end: a failed export leaves no partial file and an existing file as it was."""
    if fmt not in ("jsonl", "parquet"):
        raise typer.BadParameter("choose jsonl or parquet", param_hint="--format")
    lo, hi = iso_time(since, "--since"), iso_time(until, "--until")
    events = (
        e.as_json()
        for e in op.read_all(_source(data_dir, kafka))
        if (lo is None or e.at >= lo) and (hi is None or e.at <= hi)
    )
    if fmt == "parquet" and output is None:
        raise typer.BadParameter("parquet needs --output", param_hint="--output")
    try:
        if fmt == "parquet":
            assert output is not None
            count = op.export_parquet(events, output)
        else:
            count = op.export_jsonl(events, output)
    except RuntimeError as error:
        fail(str(error))
    except OSError as error:  # the output's folder is missing or not writable, disk full
        fail(f"cannot write {output}: {error.strerror or error}")
    err.print(f"{count} events exported" + (f" to {output}" if output is not None else ""))


@app.command()
def stats(
    data_dir: DataDir = None,
    kafka: Kafka = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Events per type, per shard and per hour; aggregate counts; log size."""
    settings = settings_from(data_dir, kafka)
    result = op.stats(_source(data_dir, kafka), settings.data_dir if settings.embedded else None)
    if as_json:
        print(
            orjson.dumps(
                {
                    "events": result.events,
                    "by_type": result.by_type,
                    "by_shard": {str(k): v for k, v in result.by_shard.items()},
                    "by_hour": result.by_hour,
                    "aggregates": result.aggregates,
                    "log_bytes": result.log_bytes,
                },
                option=orjson.OPT_INDENT_2,
            ).decode()
        )
        return
    for title, counter in (
        ("events per type", result.by_type),
        ("events per shard", result.by_shard),
        ("events per hour", result.by_hour),
        ("aggregates", result.aggregates),
    ):
        table = Table(title=title)
        table.add_column("key")
        table.add_column("count", justify="right")
        for key, value in sorted(counter.items()):
            table.add_row(str(key), f"{value:,}")
        console.print(table)
    console.print(f"{result.events:,} events; log size {result.log_bytes / 1e6:.1f} MB")


@app.command()
def audit(
    operator: Annotated[
        str | None,
        typer.Option(
            help="Only this operator's actions: a name, or an id (canonical: dashed, lowercase)."
        ),
    ] = None,
    shard: Shard = None,
    data_dir: DataDir = None,
    kafka: Kafka = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    reads: Annotated[
        bool,
        typer.Option(
            "--reads",
            help="Also every operator read the API recorded (type OperatorRead), by time.",
        ),
    ] = False,
) -> None:
    """The audit trail: every operator action in the log, oldest first, naming who acted;
    with --reads, what operators read too."""
    from datetime import UTC, datetime

    from dispatch.bootstrap import read_audit_records
    from dispatch.replay.audit import audit_trail, operator_filter, with_reads

    try:
        wanted = operator_filter(operator) if operator is not None else None
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--operator") from None
    if reads and shard is not None:
        raise typer.BadParameter(
            "operator reads belong to no shard: list them without --shard", param_hint="--shard"
        )
    trail = audit_trail(_source(data_dir, kafka, shard), wanted, shard)
    if reads:
        settings = settings_from(data_dir, kafka)
        try:
            recorded = read_audit_records(settings)
        except Exception as error:  # a damaged file, or kafka-python's own errors
            where = settings.kafka_bootstrap or settings.data_dir
            report(error, f"read the operators' reads at {where}")
        trail = with_reads(trail, recorded, wanted)
    for record in trail:
        if as_json:
            sys.stdout.write(orjson.dumps(record.as_json()).decode() + "\n")
            continue
        when = datetime.fromtimestamp(record.at, UTC).isoformat()
        console.print(
            f"{when} {record.where or '-'} {record.kind} {record.aggregate_id or '-'} by "
            f"{record.operator_name} ({record.operator_role}, {record.operator_id}): "
            f"{record.details}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def adopt(
    shards: Annotated[
        int,
        typer.Option(
            "--shards",
            min=1,
            max=datadir.MAX_SHARDS,
            help="How many shards the log has: shard-0000.sqlite up to shard-(N-1).",
        ),
    ],
    data_dir: DataDir = None,
) -> None:
    """Adopt a data dir written before the manifest existed: check it holds exactly --shards
    sound shard files, then write its log.json (`dispatch serve` does this by itself with
    DISPATCH_SHARDS)."""
    target = settings_from(data_dir, None).data_dir
    manifest = datadir.adopt(target, shards)
    console.print(f"{datadir.manifest_path(target)}: a log of {manifest.shards} shard(s)")
