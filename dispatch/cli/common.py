"""Options every subcommand shares: where the log is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
    base = Settings()
    update: dict[str, object] = dict(extra)
    if data_dir is not None:
        update["data_dir"] = data_dir
    if kafka is not None:
        update["kafka_bootstrap"] = kafka
    return base.model_copy(update=update) if update else base
