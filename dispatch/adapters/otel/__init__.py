"""OpenTelemetry: the spans of a command's trace and their exporter (``tracer``)."""
