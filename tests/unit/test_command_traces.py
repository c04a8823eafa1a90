"""Commands' trace context (``adapters.otel``, ``dispatch.logs``): a span, the SDK's or an
ids-only one, continues the trace it is given; the embedded transport carries the sender's
context to the shard, whose worker applies the command in a child span and sends its
context back with the outcome; with text logs and no exporter nothing is traced and the
context only passes through."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from dispatch import logs
from dispatch.adapters.embedded.transport import EmbeddedTransport
from dispatch.adapters.kafka import wire
from dispatch.adapters.otel.ids import IdsTracer
from dispatch.adapters.otel.tracer import ExporterMissing, OtelTracer
from dispatch.bootstrap import build_embedded_engine, build_tracer
from dispatch.domain.ids import new_id
from dispatch.ports import Tracer
from dispatch.settings import Settings
from schemas import commands as c

T0 = 1_767_600_000.0
TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = f"00-{TRACE}-b7ad6b7169203331-01"


def register(driver_id: UUID, command_id: str) -> c.CommandEnvelope:
    return c.CommandEnvelope(
        command_id=command_id,
        issued_at=datetime.fromtimestamp(T0, UTC),
        command=c.RegisterDriver(driver_id=driver_id, name="Dee"),
    )


def ids(parent: str) -> tuple[str, str]:
    fields = logs.trace_fields(parent)
    return fields["trace_id"], fields["span_id"]


TRACERS = [pytest.param(lambda: OtelTracer("test"), id="sdk"), pytest.param(IdsTracer, id="ids")]


@pytest.mark.parametrize("make", TRACERS)
def test_a_span_given_a_traceparent_continues_its_trace_with_a_span_of_its_own(
    make: Callable[[], Tracer],
) -> None:
    tracer = make()
    with tracer.span("child", PARENT) as own:
        assert ids(own)[0] == TRACE and ids(own)[1] != ids(PARENT)[1]
        assert logs.traceparent() == own
        assert logs.context()["trace_id"] == TRACE
        with tracer.span("grandchild") as inner:  # the current span is its parent
            assert ids(inner)[0] == TRACE and inner != own
    assert logs.traceparent() is None


@pytest.mark.parametrize("make", TRACERS)
def test_a_span_with_no_parent_begins_a_new_trace(make: Callable[[], Tracer]) -> None:
    tracer = make()
    with tracer.span("a") as first, tracer.span("b", None) as nested:
        assert ids(first)[0] == ids(nested)[0]
    with tracer.span("c") as other:
        assert ids(other)[0] != ids(first)[0]


def test_the_console_exporter_prints_the_spans_at_close(capsys: pytest.CaptureFixture[str]) -> None:
    tracer = OtelTracer("test-console", "console")
    with tracer.span("dispatch.command", PARENT, command="go_online"):
        pass
    tracer.close()
    out = capsys.readouterr().out
    assert '"name": "dispatch.command"' in out and TRACE in out


@pytest.mark.skipif(
    importlib.util.find_spec("opentelemetry.exporter") is not None,
    reason="the OTLP exporter is installed here",
)
def test_an_otlp_exporter_not_installed_is_a_clear_error_at_start() -> None:
    with pytest.raises(ExporterMissing, match=r"opentelemetry-exporter-otlp"):
        build_tracer(Settings(otel_exporter="otlp"), "dispatch-worker")


def test_commands_are_traced_only_with_json_logs_or_an_exporter(tmp_path: Path) -> None:
    assert build_tracer(Settings(data_dir=tmp_path), "dispatch") is None
    assert build_tracer(Settings(data_dir=tmp_path, otel_exporter=""), "dispatch") is None
    # JSON logs alone need the ids only; spans are made for an exporter
    assert isinstance(build_tracer(Settings(data_dir=tmp_path, log_format="json"), "d"), IdsTracer)
    exported = build_tracer(Settings(data_dir=tmp_path, otel_exporter="console"), "d")
    assert isinstance(exported, OtelTracer)
    exported.close()


def test_an_sdk_span_continues_the_trace_of_an_ids_span_and_the_other_way_round() -> None:
    sdk, ids_only = OtelTracer("test"), IdsTracer()
    with ids_only.span("api") as api, sdk.span("worker", api) as worker:
        assert ids(worker)[0] == ids(api)[0]
    with sdk.span("api") as api, ids_only.span("worker", api) as worker:
        assert ids(worker)[0] == ids(api)[0] and worker.endswith(api[-2:])


def test_a_record_header_carries_a_traceparent_and_nothing_else_is_read_as_one() -> None:
    assert wire.traceparent_of(wire.trace_headers(PARENT)) == PARENT
    assert wire.trace_headers(None) is None and wire.traceparent_of(None) is None
    assert wire.traceparent_of([("other", b"x"), ("traceparent", b"\xff")]) is None


def test_the_embedded_transport_carries_the_senders_trace_context_to_the_shard() -> None:
    transport = EmbeddedTransport()
    traced, untraced = register(new_id(0), "traced"), register(new_id(0), "untraced")
    with logs.bound(**logs.trace_fields(PARENT)):
        transport.send_command(traced)
    transport.send_command(untraced)
    inbound = transport.poll(0, 10, 0)
    assert [e.command_id for e in inbound.commands] == ["traced", "untraced"]
    assert inbound.traces == {"traced": PARENT}


def test_a_traced_worker_applies_a_command_in_a_child_span_and_answers_in_its_context(
    tmp_path: Path,
) -> None:
    engine = build_embedded_engine(Settings(data_dir=tmp_path, shards=1), lambda: T0)
    worker = engine.workers[0]
    worker.tracer = IdsTracer()
    inbound = engine.transport.poll(0, 10, 0)
    inbound.commands.append(register(new_id(0), "c-1"))
    inbound.traces["c-1"] = PARENT
    batch = worker.process(inbound)
    assert [o.command_id for o in batch.outcomes] == ["c-1"] and batch.outcomes[0].accepted
    trace, span = ids(batch.traces["c-1"])
    assert trace == TRACE and span != ids(PARENT)[1]


def test_an_untraced_worker_passes_the_context_through_to_the_outcome(tmp_path: Path) -> None:
    engine = build_embedded_engine(Settings(data_dir=tmp_path, shards=1), lambda: T0)
    worker = engine.workers[0]
    assert worker.tracer is None
    inbound = engine.transport.poll(0, 10, 0)
    inbound.commands.append(register(new_id(0), "c-1"))
    inbound.traces["c-1"] = PARENT
    assert worker.process(inbound).traces == {"c-1": PARENT}


def test_each_batch_a_worker_begins_has_the_next_number(tmp_path: Path) -> None:
    engine = build_embedded_engine(Settings(data_dir=tmp_path, shards=1), lambda: T0)
    worker = engine.workers[0]
    first = worker.batches
    engine.run_once()
    engine.run_once()
    assert worker.batches == first + 2


@pytest.mark.parametrize(
    "value",
    [
        b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01" + b"x" * 1_000_000,  # oversized
        b"00-" + b"Z" * 32 + b"-" + b"b" * 16 + b"-01",  # not hex
        b"00-" + b"0" * 32 + b"-" + b"b" * 16 + b"-01",  # an all-zero trace id
        b"00-" + b"a" * 32 + b"-" + b"0" * 16 + b"-01",  # an all-zero span id
        b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01\n}",  # trailing junk
        b"\xff\xfe",
    ],
)
def test_a_malformed_traceparent_header_is_dropped_not_echoed(value: bytes) -> None:
    """A hostile header on a command record is none: the command is applied untraced, and
    nothing of the header goes back on the outcome (an oversized one would make the outcome
    record too large to send, and its batch would abort and retry for ever)."""
    assert wire.traceparent_of([("traceparent", value)]) is None
    assert logs.trace_fields(value.decode("latin-1")) == {}


def test_a_well_formed_traceparent_header_is_read() -> None:
    good = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    assert wire.traceparent_of([("traceparent", good.encode())]) == good
    assert logs.trace_fields(good)["trace_id"] == "a" * 32
