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

import hashlib
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import IO, Literal

LogFormat = Literal["text", "json"]
TRACEPARENT = "traceparent"  # the W3C header, and its key in the log context

# A W3C traceparent, version 00 as its grammar has it (lower-case hex, 55 characters); one
# of another shape, length or an all-zero id is none: dropped, never echoed or logged.
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
# A command id made of a client's registration key (SECURITY.md: the key is a password)
_SECRET_IDS = ("register-driver:", "register-rider:")

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


def valid_traceparent(parent: object) -> str | None:
    """``parent`` if it is a well-formed W3C traceparent (version 00), else None."""
    if isinstance(parent, str) and _TRACEPARENT.fullmatch(parent):
        return parent
    return None


def trace_fields(parent: str) -> dict[str, str]:
    """The trace and span ids of a W3C traceparent (``00-<trace>-<span>-<flags>``) as log
    context fields, with the traceparent itself; nothing for a malformed one."""
    if valid_traceparent(parent) is None:
        return {}
    parts = parent.split("-")
    return {"trace_id": parts[1], "span_id": parts[2], TRACEPARENT: parent}


def loggable_command_id(command_id: str) -> str:
    """A command id as log lines may carry it: a registration's, made of the client's
    Idempotency-Key (a secret: whoever has it and the body gets the account's token), as a
    digest of the key; every other as it is."""
    for prefix in _SECRET_IDS:
        if command_id.startswith(prefix):
            digest = hashlib.sha256(command_id.encode("utf-8")).hexdigest()[:16]
            return f"{prefix}sha256:{digest}"
    return command_id


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
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter(
            "{levelname}{name}{threadName}{message}",
            style="{",
            timestamp=True,
            rename_fields={"levelname": "level", "name": "logger", "threadName": "thread"},
            # uvicorn's coloured copy of its message (ANSI escapes): the message says it
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
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
        logging.captureWarnings(True)  # a library's warning is a JSON line too
    else:
        logging.basicConfig(level=logging.INFO, format=text_format)
    logging.getLogger("dispatch").setLevel(level.upper())
