"""The ``dispatch`` command line. Thin: parse arguments, call the composition root."""

from __future__ import annotations

import typer

from dispatch.cli import experiment, fares, keys, markets, ops, replay, roads, simulate, topics
from dispatch.cli.errors import ReportingGroup

app = typer.Typer(
    cls=ReportingGroup,
    help="Event-sourced ride-hailing dispatch engine. No Kafka settings means embedded mode "
    "(SQLite under DISPATCH_DATA_DIR); set DISPATCH_KAFKA_BOOTSTRAP or pass --kafka for Kafka.",
    no_args_is_help=True,
)
app.command()(simulate.simulate)
app.command()(experiment.experiment)
app.add_typer(replay.app, name="replay")
app.add_typer(topics.app, name="topics")
app.add_typer(markets.app, name="markets")
app.add_typer(fares.app, name="fares")
app.add_typer(roads.app, name="roads")
app.add_typer(keys.app, name="keys")
app.command()(ops.serve)
app.command()(ops.worker)
app.command(name="operator-token")(ops.operator_token)


def main() -> None:
    """Run the CLI. An error no command reported (a damaged log, an unwritable output file)
    ends it with one line and exit code 2 (``dispatch.cli.errors``); DISPATCH_DEBUG=1 shows
    the traceback instead."""
    app()
