"""Process commands: serve (the API), worker, operator-token."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from dispatch.cli.common import DataDir, Kafka, settings_from
from dispatch.cli.errors import reported

console = Console()


LogFormatOption = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        help="text, or json: JSON lines with the command id, shard, batch and trace id "
        "(default DISPATCH_LOG_FORMAT, else text). docs/OPERATIONS.md.",
    ),
]


def _logged(log_format: str | None) -> dict[str, object]:
    """The settings the --log-format option sets, if given."""
    return {"log_format": log_format} if log_format is not None else {}


def serve(
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    data_dir: DataDir = None,
    kafka: Kafka = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run the driver/rider HTTP API (embedded: also the shard workers and projections)."""
    from dispatch.api.serve import serve as run

    settings = settings_from(data_dir, kafka, **_logged(log_format))
    with reported("start the API"):
        run(settings, host=host, port=port)


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
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve /metrics (Prometheus), /livez and /readyz on this port (0: any "
            "free port, logged; default DISPATCH_WORKER_METRICS_PORT, else none). "
            "docs/OPERATIONS.md.",
        ),
    ] = None,
    metrics_host: Annotated[
        str | None,
        typer.Option(
            help="The address the metrics listen on (default DISPATCH_WORKER_METRICS_HOST, "
            "else 127.0.0.1).",
        ),
    ] = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run a shard worker on Kafka: owns the shards the consumer group gives it."""
    import logging
    import signal
    import time

    from dispatch import logs
    from dispatch.bootstrap import build_kafka_worker

    settings = settings_from(None, kafka, **_logged(log_format))
    if settings.embedded:
        raise typer.BadParameter(
            "a worker runs on Kafka: pass --kafka or set DISPATCH_KAFKA_BOOTSTRAP",
            param_hint="--kafka",
        )
    if clock not in ("wall", "stream"):
        raise typer.BadParameter("choose wall or stream", param_hint="--clock")
    # The thread's name says which client a kafka-python line is of (its IO threads are named
    # after their client ids: a shard producer's is its transactional id).
    logs.configure(
        settings.log_format,
        "%(asctime)s [%(threadName)s] %(name)s %(message)s",
        settings.log_level,
    )
    server = None
    metrics_port = settings.worker_metrics_port if metrics_port is None else metrics_port
    metrics_host = metrics_host or settings.worker_metrics_host
    if metrics_port is not None:  # listening first: a port in use fails before the worker
        from dispatch.cli.worker_metrics import MetricsServer

        try:
            server = MetricsServer(metrics_host, metrics_port)
        except OSError as e:
            raise typer.BadParameter(
                f"cannot listen on {metrics_host}:{metrics_port}: {e.strerror or e}",
                param_hint="--metrics-port",
            ) from None
        logging.getLogger("dispatch.worker").info(
            "metrics and health on http://%s:%d (/metrics, /livez, /readyz)",
            metrics_host,
            server.port,
        )
    try:
        with reported("start the worker"):
            process = build_kafka_worker(settings, clock_mode=clock, member=member)
    except BaseException:
        if server is not None:
            server.close()
        raise
    if server is not None:
        server.start(process)
    signal.signal(signal.SIGTERM, lambda *_: process.stop())
    deadline = time.monotonic() + max_seconds if max_seconds else None
    try:
        process.run(until=(lambda: time.monotonic() > deadline) if deadline else None)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.close()
        process.close()
    console.print(f"worker stopped: {process.stats}")


def operator_token(
    name: Annotated[
        str,
        typer.Option(
            help="The operator's name (1 to 32 lowercase letters, digits, '.', '_' or '-', "
            "from a letter): the same name is the same operator, whose actions the audit "
            "trail names."
        ),
    ],
    role: Annotated[
        str, typer.Option(help="viewer (reads), dispatcher (also acts on rides) or admin.")
    ],
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the access token, a refresh token and their expiries as JSON.",
        ),
    ] = False,
    token_version: Annotated[
        int,
        typer.Option(
            min=0,
            max=2**31 - 1,
            help="The operator's current token version (0 until their tokens are first "
            "revoked; a revocation's answer, a refused token's 401 and `dispatch replay "
            "audit` say it). Only a token of the current version is taken: a lower one is "
            "refused as revoked, a higher one as not recorded (a 503 for its first "
            "DISPATCH_AUTH_REVOCATION_BOUND_S, then a 401).",
        ),
    ] = 0,
) -> None:
    """Print an access token for the operator NAME with ROLE (for operator endpoints such
    as /heatmap), signed with the key DISPATCH_AUTH_SIGNING_KEY names (or
    DISPATCH_AUTH_SECRET) and valid DISPATCH_AUTH_TOKEN_TTL_S, of the token version
    --token-version (after a revocation, the operator's new version). With --json, also a
    refresh token: revoking your own tokens (POST /auth/revoke) needs it."""
    from dispatch.api.auth import AuthSettings, issue_operator_tokens, mint_operator_token
    from dispatch.domain.operators import OPERATOR_ROLES, operator_name_error

    problem = operator_name_error(name)
    if problem is not None:
        raise typer.BadParameter(problem, param_hint="--name")
    if role not in OPERATOR_ROLES:
        raise typer.BadParameter(f"choose {', '.join(OPERATOR_ROLES)}", param_hint="--role")
    with reported("mint an operator token"):
        settings = AuthSettings()
        if json_out:
            issued = issue_operator_tokens(settings, name, role, token_version=token_version)
            print(issued.model_dump_json())
        else:
            print(mint_operator_token(settings, name, role, token_version=token_version))
