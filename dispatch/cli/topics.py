"""``dispatch topics create|check``: the Kafka topics, their shape and their durability."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from dispatch.cli.common import Kafka, settings_from
from dispatch.cli.errors import reported
from dispatch.settings import Settings

if TYPE_CHECKING:
    from dispatch.adapters.kafka.acls import Grant
    from dispatch.adapters.kafka.eventstore.connection import Connection

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

    settings, connection = _kafka(kafka)
    count = partitions or settings.shards
    with reported("create the topics"):
        create_topics(
            connection,
            settings.topic_prefix,
            count,
            replication_factor=replication_factor,
            min_insync_replicas=min_insync_replicas,
            raise_replication=raise_replication,
            report=lambda change: console.print(f"changed {change}"),
        )
        problems = check_topics(
            connection,
            settings.topic_prefix,
            count,
            replication_factor=replication_factor,
            min_insync_replicas=min_insync_replicas,
        )
    _summary(connection, replication_factor, min_insync_replicas)
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

    settings, connection = _kafka(kafka)
    with reported("check the topics"):
        problems = check_topics(
            connection,
            settings.topic_prefix,
            partitions,
            replication_factor=replication_factor,
            min_insync_replicas=min_insync_replicas,
        )
    _summary(connection, replication_factor, min_insync_replicas)
    _exit_on(problems)
    console.print("topics ok")


Principals = Annotated[
    list[str] | None,
    typer.Option(
        "--principal",
        help="ROLE=USER: the SASL user of a role (api, worker, simulator, operator; "
        "default dispatch-ROLE). Repeat for several.",
    ),
]


@app.command("acls")
def acls(
    kafka: Kafka = None,
    principal: Principals = None,
    apply: Annotated[
        bool,
        typer.Option("--apply", help="Create the ACLs the brokers lack (as their super user)."),
    ] = False,
) -> None:
    """Print who may do what on the topics (docs/SECURITY.md); with --apply, create the
    ACLs the brokers do not hold yet. Exit 1 when some are missing and not applied."""
    from dispatch.adapters.kafka.acls import apply_grants, missing_grants
    from dispatch.adapters.kafka.config import new_admin

    settings, connection = _kafka(kafka)
    wanted = _grants(settings.topic_prefix, principal)
    for grant in wanted:
        target = grant.resource + ("*" if grant.prefixed else "")
        console.print(
            f"{grant.role:<10} User:{grant.principal:<22} {grant.operation:<17} "
            f"{grant.resource_type} {target}"
        )
    with reported("read the ACLs"):
        admin = new_admin(connection)
        try:
            if apply:
                made = apply_grants(admin, wanted)
                console.print(f"created {len(made)} ACL(s); {len(wanted) - len(made)} were held")
                return
            missing = missing_grants(admin, wanted)
        finally:
            admin.close()
    _exit_on(
        [f"missing ACL: {g.role} {g.operation} {g.resource_type} {g.resource}" for g in missing]
    )
    console.print(f"all {len(wanted)} ACL(s) held")


def _grants(prefix: str, principal: list[str] | None) -> list[Grant]:
    """The table's grants for ``prefix`` with the users ``--principal`` names."""
    from dispatch.adapters.kafka.acls import grants

    names: dict[str, str] = {}
    for item in principal or []:
        role, sep, user = item.partition("=")
        if not sep or not role or not user:
            raise typer.BadParameter(f"expected ROLE=USER, got {item!r}", param_hint="--principal")
        names[role] = user
    try:
        return grants(prefix, names)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--principal") from error


def _summary(connection: Connection, replication_factor: int | None, insync: int | None) -> None:
    """Say what the topics are held to, on what cluster, over what connection."""
    from dispatch.adapters.kafka.config import new_admin
    from dispatch.adapters.kafka.durability import live_brokers, registered_brokers
    from dispatch.adapters.kafka.eventstore.connection import describe_connection
    from dispatch.adapters.kafka.topics import cluster_durability

    with reported("describe the cluster"):
        admin = new_admin(connection)
        try:
            brokers = registered_brokers(admin)
            fenced = sorted(set(brokers) - set(live_brokers(admin)))
            want = cluster_durability(admin, replication_factor, insync)
        finally:
            admin.close()
    down = f", fenced (down): {fenced}" if fenced else ""
    console.print(f"cluster: {len(brokers)} broker(s) {brokers}{down}")
    console.print(f"durability: {want.describe()}")
    console.print(f"connection: {describe_connection(connection)}")


def _exit_on(problems: list[str]) -> None:
    for problem in problems:
        console.print(f"[red]problem[/red] {problem}")
    if problems:
        raise typer.Exit(code=1)


def _kafka(kafka: str | None) -> tuple[Settings, Connection]:
    """The settings and the connection to the brokers (a bad security setting, such as a
    missing password file, ends the command with its reason)."""
    from dispatch.adapters.kafka.config import connection_of

    settings = settings_from(None, kafka)
    if settings.embedded:
        raise typer.BadParameter(
            "pass --kafka or set DISPATCH_KAFKA_BOOTSTRAP", param_hint="--kafka"
        )
    with reported("connect to Kafka"):
        return settings, connection_of(settings)
