"""Options every subcommand shares (where the log is) and how a command fails."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from dispatch.adapters.sqlite.datadir import LogIntegrityError
from dispatch.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Embedded mode: the folder with shard-NNNN.sqlite files "
        "(default DISPATCH_DATA_DIR or .dispatch-data).",
    ),
]
Kafka = Annotated[
    str | None,
    typer.Option(
        "--kafka",
        help="Kafka mode: bootstrap servers, e.g. 127.0.0.1:9092 "
        "(default DISPATCH_KAFKA_BOOTSTRAP).",
    ),
]


def settings_from(data_dir: Path | None, kafka: str | None, **extra: object) -> Settings:
    """The environment's settings with the command's options on top, validated together: a
    bad value (option or DISPATCH_* variable) is a usage error that names it."""
    update: dict[str, object] = dict(extra)
    if data_dir is not None:
        update["data_dir"] = data_dir
    if kafka is not None:
        update["kafka_bootstrap"] = kafka
    try:
        return Settings(**update)  # type: ignore[arg-type]
    except ValidationError as error:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in error.errors()[:5]
        )
        raise typer.BadParameter(reasons) from None


def fail(message: str, code: int = 2) -> NoReturn:
    """End the command with ``message`` as one line on stderr (never wrapped) and ``code``."""
    Console(stderr=True).print(message, style="red", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code=code)


def log_error_line(error: LogIntegrityError) -> str:
    """The line that reports ``error``; when a library error lies beneath (SQLite's, say),
    where it was raised is one variable away."""
    where = " (DISPATCH_DEBUG=1 shows where)" if error.__cause__ is not None else ""
    return f"error: {error}{where}"


def reports_log_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A missing or damaged event log ends ``command`` with one line naming the file and
    exit code 2 (the log checks raise ``LogIntegrityError``, see
    ``dispatch.adapters.sqlite.datadir``).
    DISPATCH_DEBUG=1 shows the traceback instead."""

    @functools.wraps(command)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except LogIntegrityError as error:
            if os.environ.get("DISPATCH_DEBUG"):
                raise
            fail(log_error_line(error))

    return checked


def iso_time(value: str | None, name: str) -> float | None:
    """``value`` (ISO 8601, UTC when it has no zone) as epoch seconds; a bad one is a
    usage error naming the option ``name``."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint=name) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
