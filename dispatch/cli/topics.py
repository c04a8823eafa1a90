"""``dispatch topics create|check``: the Kafka topics, their shape and their durability."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from dispatch.cli.common import Kafka, settings_from
from dispatch.cli.errors import reported
from dispatch.settings import Settings

console = Console()
app = typer.Typer(help="Create and check the Kafka topics.", no_args_is_help=True)

Partitions = Annotated[
    int | None, typer.Option(min=1, help="Shards (default DISPATCH_SHARDS for create).")
]
ReplicationFactor = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Replicas per partition (default: 3, or the broker count when fewer).",
    ),
]
MinInsync = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Replicas in sync for a write to be taken (default: 2 with 3 replicas, else 1).",
    ),
]


@app.command("create")
def create(
    kafka: Kafka = None,
    partitions: Partitions = None,
    replication_factor: ReplicationFactor = None,
    min_insync_replicas: MinInsync = None,
    raise_replication: Annotated[
        bool,
        typer.Option(
            "--raise-replication",
            help="Add replicas to existing topics that have fewer (the brokers copy the data).",
        ),
    ] = False,
) -> None:
    """Create every topic with its partitions, retention, cleanup policy and durability
    (idempotent: existing topics are strengthened, never weakened)."""
    from dispatch.adapters.kafka.topics import check_topics, create_topics

    settings = _kafka_settings(kafka)
    assert settings.kafka_bootstrap is not None
    count = partitions or settings.shards
    with reported("create the topics"):
        create_topics(
            settings.kafka_bootstrap,
            settings.topic_prefix,
            count,
            replication_factor=replication_factor,
            min_insync_replicas=min_insync_replicas,
            raise_replication=raise_replication,
            report=lambda change: console.print(f"changed {change}"),
        )
        problems = check_topics(
            settings.kafka_bootstrap,
            settings.topic_prefix,
            count,
            replication_factor=replication_factor,
            min_insync_replicas=min_insync_replicas,
        )
    _summary(settings, replication_factor, min_insync_replicas)
    _exit_on(problems)
    console.print(f"topics of prefix {settings.topic_prefix!r} ready ({count} partitions)")


@app.command("check")
def check(
    kafka: Kafka = None,
    partitions: Annotated[int | None, typer.Option(min=1)] = None,
    replication_factor: ReplicationFactor = None,
    min_insync_replicas: MinInsync = None,
) -> None:
    """Check every topic exists with the right shape and is not weaker than the durability
    for the cluster's size (or the figures given); exit 1 and list the problems if not."""
    from dispatch.adapters.kafka.topics import check_topics

    settings = _kafka_settings(kafka)
    assert settings.kafka_bootstrap is not None
    with reported("check the topics"):
        problems = check_topics(
            settings.kafka_bootstrap,
            settings.topic_prefix,
            partitions,
            replication_factor=replication_factor,
            min_insync_replicas=min_insync_replicas,
        )
    _summary(settings, replication_factor, min_insync_replicas)
    _exit_on(problems)
    console.print("topics ok")


def _summary(settings: Settings, replication_factor: int | None, insync: int | None) -> None:
    """Say what the topics are held to, on what cluster, over what connection."""
    from dispatch.adapters.kafka.config import new_admin
    from dispatch.adapters.kafka.durability import live_brokers
    from dispatch.adapters.kafka.topics import cluster_durability

    assert settings.kafka_bootstrap is not None
    with reported("describe the cluster"):
        admin = new_admin(settings.kafka_bootstrap)
        try:
            brokers = live_brokers(admin)
            want = cluster_durability(admin, replication_factor, insync)
        finally:
            admin.close()
    console.print(f"cluster: {len(brokers)} broker(s) {brokers}")
    console.print(f"durability: {want.describe()}")
    console.print(
        "connection: PLAINTEXT, no authentication, no ACLs (any client that reaches a broker "
        "can read and write every topic: docs/SECURITY.md)"
    )


def _exit_on(problems: list[str]) -> None:
    for problem in problems:
        console.print(f"[red]problem[/red] {problem}")
    if problems:
        raise typer.Exit(code=1)


def _kafka_settings(kafka: str | None) -> Settings:
    settings = settings_from(None, kafka)
    if settings.embedded:
        raise typer.BadParameter(
            "pass --kafka or set DISPATCH_KAFKA_BOOTSTRAP", param_hint="--kafka"
        )
    return settings
