"""Spans of commands' traces with the OpenTelemetry SDK, and W3C trace context in and out.

Each process makes its own tracer provider (not the global one): with no exporter its
spans go nowhere but their ids still do, into the log context and the records' headers;
``console`` prints each span on standard output, ``otlp`` sends them with the OTLP
exporter (opentelemetry-exporter-otlp, configured by its own ``OTEL_EXPORTER_OTLP_*``
variables).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dispatch import logs

Exporter = Literal["console", "otlp"]
_PROPAGATOR = TraceContextTextMapPropagator()


class ExporterMissing(RuntimeError):
    """The exporter asked for is not installed."""


class OtelTracer:
    """A ``dispatch.ports.Tracer`` on the OpenTelemetry SDK."""

    def __init__(self, service: str, exporter: Exporter | None = None) -> None:
        self._provider = TracerProvider(resource=Resource.create({"service.name": service}))
        if exporter is not None:
            self._provider.add_span_processor(BatchSpanProcessor(_exporter(exporter)))
        self._tracer = self._provider.get_tracer("dispatch")

    @contextmanager
    def span(self, name: str, parent: str | None = None, **attributes: str | int) -> Iterator[str]:
        context = _PROPAGATOR.extract({logs.TRACEPARENT: parent}) if parent else None
        with self._tracer.start_as_current_span(name, context=context, attributes=attributes):
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
            own = carrier.get(logs.TRACEPARENT, "")
            with logs.bound(**logs.trace_fields(own)):
                yield own

    def close(self) -> None:
        """Export what is still buffered and stop."""
        self._provider.shutdown()


def _exporter(name: Exporter) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter(out=sys.stdout)  # the standard output of now
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ExporterMissing(
            "DISPATCH_OTEL_EXPORTER=otlp needs the OTLP exporter: "
            "pip install 'dispatch-engine[otlp]' (opentelemetry-exporter-otlp)"
        ) from None
    exporter: SpanExporter = OTLPSpanExporter()
    return exporter
