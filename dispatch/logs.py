"""Log setup (text or JSON lines) and the log context its JSON lines carry.

Not the event log: that is ``dispatch.log``. The log context is a ``contextvars`` mapping
that code binds fields into for the length of a block (``bound``): the command id, the
shard and batch a worker is deciding, the trace and span ids of the current span, and the
W3C ``traceparent`` a transport carries in a command's record headers (``traceparent``).
A JSON line has ``timestamp``, ``level``, ``logger``, ``thread`` (which client a Kafka
library line is of: its IO thread is named after it) and ``message``, then the context's
fields (all but ``traceparent``, which the ids say) and any ``extra`` of the call. Text
lines stay as they were: no context in them.

Pure Python until JSON is chosen: python-json-logger is imported by ``configure`` then.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import IO, Literal

LogFormat = Literal["text", "json"]
TRACEPARENT = "traceparent"  # the W3C header, and its key in the log context

_EMPTY: Mapping[str, object] = MappingProxyType({})
_context: ContextVar[Mapping[str, object]] = ContextVar("dispatch_log_context", default=_EMPTY)


@contextmanager
def bound(**fields: object) -> Iterator[None]:
    """``fields`` added to the log context inside the block (a ``None`` one is left out)."""
    token = _context.set(
        MappingProxyType({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    )
    try:
        yield
    finally:
        _context.reset(token)


def context() -> Mapping[str, object]:
    """The log context's fields now."""
    return _context.get()


def traceparent() -> str | None:
    """The W3C traceparent of the current span, as bound in the log context, or None."""
    found = _context.get().get(TRACEPARENT)
    return found if isinstance(found, str) else None


def trace_fields(parent: str) -> dict[str, str]:
    """The trace and span ids of a W3C traceparent (``00-<trace>-<span>-<flags>``) as log
    context fields, with the traceparent itself; nothing for a malformed one."""
    parts = parent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return {}
    return {"trace_id": parts[1], "span_id": parts[2], TRACEPARENT: parent}


class ContextFilter(logging.Filter):
    """Copies the log context's fields onto each record (for the JSON formatter)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if key != TRACEPARENT and not hasattr(record, key):
                setattr(record, key, value)
        return True


def json_handler(stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing JSON lines (to ``stream``, else standard error) with the log
    context's fields."""
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter(
            "{levelname}{name}{threadName}{message}",
            style="{",
            timestamp=True,
            rename_fields={"levelname": "level", "name": "logger", "threadName": "thread"},
        )
    )
    handler.addFilter(ContextFilter())
    return handler


def configure(fmt: LogFormat, text_format: str, level: str = "info") -> None:
    """The root logger's one handler: JSON lines, or ``text_format`` lines, on standard
    error (``logging.basicConfig``: a root that has a handler already is left alone), at
    INFO; the project's own loggers (``dispatch.*``) at ``level`` (``debug`` shows a line
    for each command: the API's answer, the worker's applying it)."""
    if fmt == "json":
        logging.basicConfig(level=logging.INFO, handlers=[json_handler()])
    else:
        logging.basicConfig(level=logging.INFO, format=text_format)
    logging.getLogger("dispatch").setLevel(level.upper())
