"""Options every subcommand shares (where the log is) and what they parse into: the
settings, times."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from dispatch.settings import Settings

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
