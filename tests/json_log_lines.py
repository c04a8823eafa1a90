"""JSON log lines of some loggers, captured at debug level for a test (the traced-command
tests, embedded and on Kafka)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from dispatch import logs


@contextmanager
def captured(*loggers: str) -> Iterator[io.StringIO]:
    """The lines ``loggers`` write while the block runs (their levels and handlers are as
    they were afterwards)."""
    stream = io.StringIO()
    handler = logs.json_handler(stream)
    levels = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger(name).addHandler(handler)
    try:
        yield stream
    finally:
        for name in loggers:
            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).setLevel(levels[name])
