"""Commands' traces: OpenTelemetry SDK spans and their exporter (``tracer``), or, with no
exporter, W3C trace and span ids alone (``ids``)."""
