"""Process commands: serve (the API), worker, topics."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from dispatch.cli.common import DataDir, Kafka, settings_from
from dispatch.cli.errors import reported
from dispatch.settings import Settings

console = Console()


def serve(
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    data_dir: DataDir = None,
    kafka: Kafka = None,
) -> None:
    """Run the driver/rider HTTP API (embedded: also the shard workers and projections)."""
    from dispatch.api.serve import serve as run

    with reported("start the API"):
        run(settings_from(data_dir, kafka), host=host, port=port)


def worker(
    kafka: Kafka = None,
    clock: Annotated[
        str,
        typer.Option(
            help="wall (real time) or stream (time carried by the input, for simulations)"
        ),
    ] = "wall",
    member: Annotated[str | None, typer.Option(help="A name for this member (logs).")] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this long.")] = None,
) -> None:
    """Run a shard worker on Kafka: owns the shards the consumer group gives it."""
    import logging
    import signal
    import time

    from dispatch.bootstrap import build_kafka_worker

    settings = settings_from(None, kafka)
    if settings.embedded:
        raise typer.BadParameter(
            "a worker runs on Kafka: pass --kafka or set DISPATCH_KAFKA_BOOTSTRAP",
            param_hint="--kafka",
        )
    if clock not in ("wall", "stream"):
        raise typer.BadParameter("choose wall or stream", param_hint="--clock")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with reported("start the worker"):
        process = build_kafka_worker(settings, clock_mode=clock, member=member)
    signal.signal(signal.SIGTERM, lambda *_: process.stop())
    deadline = time.monotonic() + max_seconds if max_seconds else None
    try:
        process.run(until=(lambda: time.monotonic() > deadline) if deadline else None)
    except KeyboardInterrupt:
        pass
    finally:
        process.close()
    console.print(f"worker stopped: {process.stats}")


topics_app = typer.Typer(help="Create and check the Kafka topics.", no_args_is_help=True)


@topics_app.command("create")
def topics_create(
    kafka: Kafka = None,
    partitions: Annotated[
        int | None, typer.Option(min=1, help="Shards (default DISPATCH_SHARDS).")
    ] = None,
) -> None:
    """Create every topic with its partitions, retention and cleanup policy (idempotent)."""
    from dispatch.adapters.kafka.topics import check_topics, create_topics

    settings = _kafka_settings(kafka)
    assert settings.kafka_bootstrap is not None
    count = partitions or settings.shards
    with reported("create the topics"):
        create_topics(settings.kafka_bootstrap, settings.topic_prefix, count)
        problems = check_topics(settings.kafka_bootstrap, settings.topic_prefix, count)
    for problem in problems:
        console.print(f"[red]problem[/red] {problem}")
    if problems:
        raise typer.Exit(code=1)
    console.print(f"topics of prefix {settings.topic_prefix!r} ready ({count} partitions)")


@topics_app.command("check")
def topics_check(
    kafka: Kafka = None,
    partitions: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Check every topic exists with the right shape; exit 1 and list the problems if not."""
    from dispatch.adapters.kafka.topics import check_topics

    settings = _kafka_settings(kafka)
    assert settings.kafka_bootstrap is not None
    with reported("check the topics"):
        problems = check_topics(settings.kafka_bootstrap, settings.topic_prefix, partitions)
    for problem in problems:
        console.print(f"[red]problem[/red] {problem}")
    if problems:
        raise typer.Exit(code=1)
    console.print("topics ok")


def _kafka_settings(kafka: str | None) -> Settings:
    settings = settings_from(None, kafka)
    if settings.embedded:
        raise typer.BadParameter(
            "pass --kafka or set DISPATCH_KAFKA_BOOTSTRAP", param_hint="--kafka"
        )
    return settings


def operator_token() -> None:
    """Print an operator bearer token (for operator-only endpoints such as /heatmap),
    signed with DISPATCH_AUTH_SECRET."""
    from dispatch.api.auth import AuthSettings, mint_operator_token

    with reported("mint an operator token"):
        token = mint_operator_token(AuthSettings())
    print(token)
