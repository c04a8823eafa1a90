"""The ``dispatch`` command line. Thin: parse arguments, call the composition root."""

from __future__ import annotations

import os

import typer
from rich.console import Console

from dispatch.cli import ops, replay, simulate

app = typer.Typer(
    help="Event-sourced ride-hailing dispatch engine. No Kafka settings means embedded mode "
    "(SQLite under DISPATCH_DATA_DIR); set DISPATCH_KAFKA_BOOTSTRAP or pass --kafka for Kafka.",
    no_args_is_help=True,
)
app.command()(simulate.simulate)
app.add_typer(replay.app, name="replay")
app.add_typer(ops.topics_app, name="topics")
app.command()(ops.serve)
app.command()(ops.worker)
app.command(name="operator-token")(ops.operator_token)


def main() -> None:
    """Run the CLI. An error no command handled (a damaged log, an unwritable output file)
    ends it with one line and exit code 2; DISPATCH_DEBUG=1 shows the traceback instead."""
    try:
        app()
    except Exception as error:
        if os.environ.get("DISPATCH_DEBUG"):
            raise
        message = f"error: {type(error).__name__}: {error} (DISPATCH_DEBUG=1 shows where)"
        Console(stderr=True).print(
            message, style="red", markup=False, highlight=False, soft_wrap=True
        )
        raise SystemExit(2) from None
