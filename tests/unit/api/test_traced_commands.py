"""A command traced through the embedded API: the API's log line for the answer and the
shard worker's for applying it are JSON lines with one trace id and the command id (the
worker's with its shard and batch, in a span of its own, the child of the API's)."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_world import PICKUP, SECRET
from fastapi.testclient import TestClient
from json_log_lines import captured
from pydantic import SecretStr

from dispatch import logs
from dispatch.api import AuthSettings, create_app
from dispatch.api.context import ApiOptions
from dispatch.bootstrap import build_runtime
from dispatch.settings import Settings

LOGGERS = ("dispatch.api.writes", "dispatch.shard.worker")


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the API and the shard workers log (DEBUG up), as JSON lines."""
    with captured(*LOGGERS) as stream:
        yield stream


def serve(settings: Settings) -> TestClient:
    runtime = build_runtime(settings, clock=time.time)
    auth = AuthSettings(secret=SecretStr(SECRET), environment="production")
    return TestClient(create_app(runtime, auth, ApiOptions(command_timeout_s=5.0)))


def test_a_post_logs_one_trace_id_and_its_command_id_in_the_api_and_in_the_shard_worker(
    tmp_path: Path, json_lines: io.StringIO
) -> None:
    key = str(uuid.uuid4())
    with serve(Settings(data_dir=tmp_path, shards=2, log_format="json")) as client:
        r = client.post(
            "/drivers", json={"name": "Dee", "home": PICKUP}, headers={"Idempotency-Key": key}
        )
    assert r.status_code == 201, r.text
    # a registration's command id holds its Idempotency-Key, a secret: logged as a digest
    command_id = logs.loggable_command_id(r.json()["command_id"])
    assert key in r.json()["command_id"] and key not in command_id
    assert key not in json_lines.getvalue(), "the registration key reached a log line"
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    ours = [line for line in lines if line.get("command_id") == command_id]
    [api] = [line for line in ours if line["logger"] == "dispatch.api.writes"]
    [shard] = [line for line in ours if line["logger"] == "dispatch.shard.worker"]
    assert "answered" in api["message"] and api["level"] == "DEBUG"
    assert "applying register_driver" in shard["message"]
    assert len(api["trace_id"]) == 32 and shard["trace_id"] == api["trace_id"]
    assert shard["span_id"] != api["span_id"]  # the worker's own span, the API's child
    assert isinstance(shard["shard"], int) and isinstance(shard["batch"], int)
    assert shard["batch"] >= 1 and "shard" not in api


def test_with_text_logs_and_no_exporter_nothing_is_traced(
    tmp_path: Path, json_lines: io.StringIO
) -> None:
    with serve(Settings(data_dir=tmp_path, shards=1)) as client:
        runtime = client.app.state.ctx.runtime  # type: ignore[attr-defined]
        assert runtime.tracer is None
        assert all(w.tracer is None for w in runtime.engine.workers.values())
        r = client.post("/riders", json={"name": "Ray"})
    assert r.status_code == 201, r.text
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    assert lines and not any("trace_id" in line for line in lines)
    # the worker's line for each command is there at debug, untraced too
    assert any("applying register_rider" in line["message"] for line in lines)
