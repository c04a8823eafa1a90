"""Process commands: serve (the API), worker, topics."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from dispatch.cli.common import DataDir, Kafka, settings_from

console = Console()


def serve(
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    data_dir: DataDir = None,
    kafka: Kafka = None,
) -> None:
    """Run the driver/rider HTTP API (embedded: also the shard workers and projections)."""
    from dispatch.api.serve import serve as run

    run(settings_from(data_dir, kafka), host=host, port=port)


COMMANDS = [serve]
