"""JSON log lines (``dispatch.logs``): one JSON object a line, with the log context's
fields; the setting that chooses them refuses what it does not know, clearly."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from dispatch import logs
from dispatch.cli import app
from dispatch.settings import Settings

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
PARENT = f"00-{TRACE}-{SPAN}-01"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    logger = logging.getLogger("test.json_logs")
    handler = logs.json_handler(stream)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_has_time_level_logger_message_and_the_context_fields(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    with logs.bound(command_id="c-1", shard=3, batch=12), logs.bound(**logs.trace_fields(PARENT)):
        logger.info("applied %s", "go_online")
    [line] = lines(stream)
    assert line["level"] == "INFO"
    assert line["logger"] == "test.json_logs"
    assert line["message"] == "applied go_online"
    assert line["thread"] == threading.current_thread().name
    assert isinstance(line["timestamp"], str) and line["timestamp"].startswith("20")
    assert line["command_id"] == "c-1"
    assert line["shard"] == 3 and line["batch"] == 12
    assert line["trace_id"] == TRACE and line["span_id"] == SPAN
    assert "traceparent" not in line  # the ids say it


def test_a_line_outside_every_context_has_none_of_its_fields(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    with logs.bound(command_id="c-1"):
        pass
    logger.warning("idle")
    [line] = lines(stream)
    assert not {"command_id", "shard", "batch", "trace_id", "span_id"} & line.keys()


def test_an_inner_context_adds_to_the_outer_one_and_goes_with_its_block() -> None:
    with logs.bound(shard=1, batch=2):
        with logs.bound(command_id="c", batch=None):
            assert logs.context() == {"shard": 1, "batch": 2, "command_id": "c"}
        assert logs.context() == {"shard": 1, "batch": 2}
    assert logs.context() == {}
    assert logs.traceparent() is None


def test_a_malformed_traceparent_gives_no_trace_fields() -> None:
    assert logs.trace_fields("00-short-id-01") == {}
    assert logs.trace_fields(PARENT)["trace_id"] == TRACE


def test_the_log_format_is_text_unless_json_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DISPATCH_LOG_FORMAT", raising=False)
    assert Settings().log_format == "text" and not Settings().tracing
    monkeypatch.setenv("DISPATCH_LOG_FORMAT", "json")
    assert Settings().log_format == "json" and Settings().tracing


def test_a_bad_log_format_is_refused_naming_the_setting_and_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISPATCH_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError) as raised:
        Settings()
    text = str(raised.value)
    assert "log_format" in text and "'text'" in text and "'json'" in text


def test_the_worker_command_refuses_a_bad_log_format_before_starting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DISPATCH_LOG_FORMAT", raising=False)
    result = CliRunner().invoke(
        app, ["worker", "--kafka", "127.0.0.1:1", "--log-format", "yaml"], catch_exceptions=False
    )
    assert result.exit_code == 2
    assert "log_format" in result.output and "'json'" in result.output


def test_the_serve_command_refuses_a_bad_log_format_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISPATCH_LOG_FORMAT", "JSON lines")
    result = CliRunner().invoke(app, ["serve"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "log_format" in result.output and "'text'" in result.output


def test_the_log_level_of_the_projects_loggers_is_a_setting_in_either_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DISPATCH_LOG_LEVEL", raising=False)
    assert Settings().log_level == "info"
    monkeypatch.setenv("DISPATCH_LOG_LEVEL", "DEBUG")
    assert Settings().log_level == "debug"
    monkeypatch.setenv("DISPATCH_LOG_LEVEL", "verbose")
    with pytest.raises(ValidationError, match="log_level"):
        Settings()


def test_configure_sets_the_projects_loggers_to_the_level_and_leaves_the_libraries_at_info(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, ours = logging.getLogger(), logging.getLogger("dispatch")
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(ours, "level", ours.level)
    logs.configure("json", "%(message)s", "debug")
    try:
        assert ours.level == logging.DEBUG and root.level == logging.INFO
        [handler] = root.handlers
        assert any(isinstance(f, logs.ContextFilter) for f in handler.filters)
    finally:
        root.handlers = []
