"""Schemathesis against the app's own OpenAPI, in process (ASGI), with valid tokens.

Property: whatever the input (valid or not), no 5xx, and every response matches the
status codes, content types, headers and schemas the OpenAPI document declares. The event
streams are left out (they run until a ride ends).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dispatch.api import AuthSettings, create_app, mint_operator_token
from dispatch.api.context import ApiOptions
from dispatch.bootstrap import build_runtime
from dispatch.settings import Settings

SECRET = "4XyTBlOvPOr5Gh_qx7w3keER5W4lnAHW_3Ik_I0Ky_oXTbIS"  # random: production refuses weak ones
HOME = {"lat": 37.7749, "lng": -122.4194}
MAX_EXAMPLES = 25
World = tuple[FastAPI, dict[str, str], dict[str, str]]  # app, token per role, ids
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The app over a real embedded runtime, and a token per role."""
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    runtime = build_runtime(Settings(data_dir=data_dir, shards=2), clock=time.time)
    auth = AuthSettings(secret=SecretStr(SECRET), environment="production")
    options = ApiOptions(command_timeout_s=1.0, read_wait_s=0.2, heartbeat_s=0.1)
    app = create_app(runtime, auth, options)
    with TestClient(app) as client:
        driver = client.post("/drivers", json={"name": "Fuzz", "home": HOME}).json()
        rider = client.post("/riders", json={"name": "Fuzz"}).json()
        tokens = {
            "driver": driver["token"]["access_token"],
            "rider": rider["token"]["access_token"],
            "operator": mint_operator_token(auth),
        }
        auth_driver = {"Authorization": f"Bearer {tokens['driver']}"}
        client.post(f"/drivers/{driver['driver_id']}/online", headers=auth_driver)
        client.post(f"/drivers/{driver['driver_id']}/location", headers=auth_driver, json=HOME)
        ride = client.post(
            "/rides",
            headers={"Authorization": f"Bearer {tokens['rider']}"},
            json={"pickup": HOME, "dropoff": HOME},
        ).json()
        ids = {"driver_id": driver["driver_id"], "ride_id": ride["ride_id"]}
        yield app, tokens, ids


@pytest.fixture(scope="module")
def api_schema(fuzzed: World) -> Any:
    app, _, _ = fuzzed
    return schemathesis.openapi.from_asgi("/openapi.json", app).exclude(tag="streams")


def role_for(method: str, path: str) -> str:
    """The role whose token an operation expects (so the fuzzing gets past 401/403)."""
    if path == "/heatmap" or (method == "GET" and path in OPERATOR_READS):
        return "operator"
    if path == "/drivers/nearby":
        return "rider"
    if path.startswith("/drivers/") or (
        path.startswith("/rides/{") and not path.endswith("/cancel")
    ):
        return "driver"
    return "rider"


OPERATOR_READS = ("/rides/{ride_id}", "/drivers/{driver_id}")


def fuzz(
    operation: Any, mode: GenerationMode, headers: dict[str, str], ids: dict[str, str]
) -> None:
    """Up to MAX_EXAMPLES generated calls of one operation, each validated by CHECKS. Valid
    calls name the world's driver and ride (random ids would only ever meet a 403/404)."""
    names = {p.name for p in operation.path_parameters}
    fixed = {k: v for k, v in ids.items() if k in names} if mode.is_positive else None

    @given(case=operation.as_strategy(mode, path_parameters=fixed or None, headers=headers))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        case.call_and_validate(checks=CHECKS)

    try:
        check()
    except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
        assert mode is GenerationMode.NEGATIVE, operation.label


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_gets_a_5xx_and_every_answer_matches_the_schema(
    api_schema: Any, fuzzed: World, mode: GenerationMode
) -> None:
    _, tokens, ids = fuzzed
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20, "every endpoint but the streams is fuzzed"
    for operation in operations:
        token = tokens[role_for(operation.method.upper(), operation.path)]
        fuzz(operation, mode, {"Authorization": f"Bearer {token}"}, ids)
