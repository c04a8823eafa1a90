"""W3C trace context without spans: what carries a command's trace ids into the logs and
the records' headers when no exporter would take the spans (JSON logs alone).

A span here is only a new span id under the trace it continues (the ``parent`` given, else
the current one in the log context, else a new random trace id): nothing of the
OpenTelemetry SDK is imported or made, so a traced command costs microseconds. Its
traceparents are the SDK's format (``00-<trace>-<span>-<flags>``), so a process that does
export spans continues these traces, and the other way round.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from dispatch import logs

SAMPLED = "01"


class IdsTracer:
    """A ``dispatch.ports.Tracer`` that makes trace and span ids only."""

    @contextmanager
    def span(self, name: str, parent: str | None = None, **attributes: str | int) -> Iterator[str]:
        outer = logs.trace_fields(parent or logs.traceparent() or "")
        trace = outer.get("trace_id") or os.urandom(16).hex()
        flags = outer[logs.TRACEPARENT][-2:] if outer else SAMPLED
        own = f"00-{trace}-{os.urandom(8).hex()}-{flags}"
        with logs.bound(**logs.trace_fields(own)):
            yield own

    def close(self) -> None:
        """Nothing is buffered."""
