"""Schemathesis against the app's own OpenAPI, in process (ASGI), with a token of each role.

Property: whatever the input and whoever calls (driver, rider or operator), no 5xx; every
response matches the status codes, content types, headers and schemas the OpenAPI document
declares; invalid input is refused; schema-valid input is never refused by validation; an
operation that declares auth enforces it. A second pass, with rate limits low enough to
trip, holds the 429s (and their Retry-After) to the same document. The event streams are
left out (they run until a ride ends). ``POST /auth/revoke`` is fuzzed apart, each valid
call with a token of its own: revoking your own revokes the token it was sent with.

Checks that apply only to schemathesis' coverage phase (missing_required_header,
unsupported_method) or to its stateful and multi-identity modes (use_after_free,
ensure_resource_availability, object_level_authorization) do not run here: the
authorization matrix (tests/unit/api/test_authorization.py) pins who may see what.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
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
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.openapi.checks import IgnoredAuth
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dispatch.api import AuthSettings, create_app, mint_operator_token
from dispatch.api.auth import issue_operator_tokens
from dispatch.api.context import ApiOptions
from dispatch.api.deps import get_principal
from dispatch.api.settings import ApiLimits
from dispatch.bootstrap import build_runtime
from dispatch.settings import Settings

SECRET = "4XyTBlOvPOr5Gh_qx7w3keER5W4lnAHW_3Ik_I0Ky_oXTbIS"  # random: production refuses weak ones
HOME = {"lat": 37.7749, "lng": -122.4194}
MAX_EXAMPLES = 25
ROLES = ("driver", "rider", "operator")
OPEN = ApiLimits.model_validate(
    {"rate_limit_registrations_per_min": 0, "rate_limit_requests_per_s": 0}
)
THROTTLED = ApiLimits.model_validate(
    {"rate_limit_registrations_per_min": 1, "rate_limit_requests_per_s": 1}
)


@schemathesis.check
def valid_data_is_not_refused_by_validation(ctx: Any, response: Any, case: Any) -> bool | None:
    """``positive_data_acceptance``, except for a 422 the API gives a schema-valid request
    that breaks a business rule (a pickup outside the rider's market, a consistency token
    of a shard that does not exist): those carry no validation ``details``."""
    if response.status_code == 422 and "details" not in response.json():
        return None
    return positive_data_acceptance(ctx, response, case)  # type: ignore[no-any-return]


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    valid_data_is_not_refused_by_validation,
    ignored_auth,
]
# ignored_auth runs in positive mode only. In negative mode the role's real token travels
# inside the generated case (see ``fuzz``), so ignored_auth cannot tell it from one the
# fuzzer made up: a 2xx to a negative case whose mutation the API may accept (a query of
# only undeclared keys: negative_data_rejection excuses it) was flagged "API accepts
# invalid authentication (generated auth likely invalid)" (AuthScenario.GENERATED_AUTH) for
# GET /heatmap, though its probes without a token and with a forged one both got 401.
# Positive mode covers every operation and role with the token added at call time, where
# ignored_auth knows it is real and probes without it and with a forged one; and
# test_the_auth_check_still_catches_an_operation_that_ignores_its_token shows it fails
# there on an API that ignores the token.
NEGATIVE_CHECKS = [check for check in CHECKS if check is not ignored_auth]
World = tuple[FastAPI, FastAPI, dict[str, str], dict[str, str]]  # open, throttled, tokens, ids


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Two apps over one real embedded runtime (one without rate limits, one throttled), a
    token per role and the ids of a driver and a ride."""
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    runtime = build_runtime(Settings(data_dir=data_dir, shards=2), clock=time.time)
    auth = AuthSettings(secret=SecretStr(SECRET), environment="production")
    options = ApiOptions(command_timeout_s=1.0, read_wait_s=0.2, heartbeat_s=0.1)
    host = create_app(runtime, auth, options, OPEN)  # its lifespan starts and stops the runtime
    # Schemathesis runs an app's lifespan itself: the fuzzed apps leave the runtime alone.
    guest = ApiOptions(command_timeout_s=1.0, read_wait_s=0.2, manage_runtime=False)
    app = create_app(runtime, auth, guest, OPEN)
    throttled = create_app(runtime, auth, guest, THROTTLED)
    with TestClient(host) as client:
        driver = client.post("/drivers", json={"name": "Fuzz", "home": HOME}).json()
        rider = client.post("/riders", json={"name": "Fuzz"}).json()
        tokens = {
            "driver": driver["token"]["access_token"],
            "rider": rider["token"]["access_token"],
            "operator": mint_operator_token(auth, "ops", "admin"),
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
        yield app, throttled, tokens, ids


REVOKE = "/auth/revoke"


def operations(app: FastAPI) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(tag="streams")
    found = [result.ok() for result in schema.exclude(path=REVOKE).get_all_operations()]
    assert len(found) >= 20, "every endpoint but the streams (and revocation) is fuzzed"
    return found


def fuzz(
    operation: Any,
    mode: GenerationMode,
    headers: dict[str, str],
    ids: dict[str, str],
    examples: int = MAX_EXAMPLES,
    seen: list[int] | None = None,
    fresh: Callable[[], dict[str, str]] | None = None,
) -> None:
    """Up to ``examples`` generated calls of one operation, each validated by CHECKS. Valid
    calls name the world's driver and ride (random ids would only ever meet a 403/404) and
    carry a fresh Idempotency-Key (a key reused for another body is a 422 by design);
    with ``fresh``, each call is made with the headers it gives (a new token), in either
    mode (``ignored_auth`` probes the missing and forged tokens of the valid calls)."""
    names = {p.name for p in operation.path_parameters}
    fixed = {k: v for k, v in ids.items() if k in names} if mode.is_positive else None

    # Negative cases carry the token in the strategy: a call-time header would stand in for
    # an Authorization the mutation removed. Positive ones get it at call time, so that
    # ignored_auth knows the token is real and probes without it and with a forged one.
    in_case = None if mode.is_positive or fresh is not None else headers
    at_call = headers if mode.is_positive else None

    @given(case=operation.as_strategy(mode, path_parameters=fixed or None, headers=in_case))
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        if mode.is_positive and case.headers and "Idempotency-Key" in case.headers:
            case.headers["Idempotency-Key"] = str(uuid.uuid4())
        call = fresh() if fresh is not None else at_call
        checks = CHECKS if mode.is_positive else NEGATIVE_CHECKS
        try:
            response = case.call_and_validate(headers=call, checks=checks)
        except Exception:  # the failing input, for the next occurrence of a rare failure
            print(f"failing case ({mode.name}): {case.as_curl_command()}")
            raise
        if seen is not None:
            seen.append(response.status_code)

    try:
        check()
    except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
        assert mode is GenerationMode.NEGATIVE, operation.label


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_from_any_role_gets_a_5xx_and_every_answer_matches_the_schema(
    fuzzed: World, mode: GenerationMode, role: str
) -> None:
    app, _, tokens, ids = fuzzed
    for operation in operations(app):
        fuzz(operation, mode, {"Authorization": f"Bearer {tokens[role]}"}, ids)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_revocations_from_any_role_match_the_schema(
    fuzzed: World, mode: GenerationMode, role: str
) -> None:
    app, _, _, _ = fuzzed
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(path=REVOKE)
    (operation,) = [result.ok() for result in schema.get_all_operations()]
    client = TestClient(app)
    auth = AuthSettings(secret=SecretStr(SECRET), environment="production")

    latest: dict[str, str] = {}

    def fresh() -> dict[str, str]:
        if role == "operator":
            name = f"op-{uuid.uuid4().hex[:8]}"
            pair = issue_operator_tokens(auth, name, "admin").model_dump(mode="json")
        else:
            body: dict[str, Any] = {"name": "Fuzz", "home": HOME}
            pair = client.post(f"/{role}s", json=body).json()["token"]
        latest["refresh_token"] = pair["refresh_token"]
        return {"Authorization": f"Bearer {pair['access_token']}"}

    seen: list[int] = []
    fuzz_revocations(operation, mode, fresh, latest, seen)
    if mode.is_positive:
        # and one valid call written out, whatever the examples drawn (they change with
        # the rest of the schema): a revocation that takes effect, its answer checked
        call = fresh()
        body = {"refresh_token": latest["refresh_token"], "reason": "a lost phone"}
        case = operation.Case(body=body, headers={"Idempotency-Key": str(uuid.uuid4())},
                              media_type="application/json")  # fmt: skip
        seen.append(case.call_and_validate(headers=call, checks=CHECKS).status_code)
        assert 200 in seen, f"a revocation took effect and its answer was checked: {seen}"


def fuzz_revocations(
    operation: Any,
    mode: GenerationMode,
    fresh: Callable[[], dict[str, str]],
    latest: dict[str, str],
    seen: list[int],
) -> None:
    """``fuzz`` for ``POST /auth/revoke``, each call with a new token (``fresh``): a valid
    call revoking its own sends that token's refresh token (``latest``), which proves
    possession. (Apart from ``fuzz``, whose examples would change with its source.)"""

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        if mode.is_positive and case.headers and "Idempotency-Key" in case.headers:
            case.headers["Idempotency-Key"] = str(uuid.uuid4())
        call = fresh()
        named = {"driver_id", "rider_id", "operator"}
        body = case.body
        if mode.is_positive and isinstance(body, dict) and not named & set(body):
            body["refresh_token"] = latest["refresh_token"]
        checks = CHECKS if mode.is_positive else NEGATIVE_CHECKS
        response = case.call_and_validate(headers=call, checks=checks)
        seen.append(response.status_code)

    check()


def test_the_auth_check_still_catches_an_operation_that_ignores_its_token(
    fuzzed: World,
) -> None:
    """The fuzzed app with its authentication bypassed (every request is the operator,
    whatever its token): positive-mode fuzzing of GET /heatmap, which declares bearer auth,
    fails with ignored_auth's "API accepts requests without authentication"."""
    app, _, tokens, ids = fuzzed
    operator = app.state.ctx.tokens.principal(tokens["operator"], time.time())
    app.dependency_overrides[get_principal] = lambda: operator
    try:
        (heatmap,) = [op for op in operations(app) if op.label == "GET /heatmap"]
        headers = {"Authorization": f"Bearer {tokens['operator']}"}
        with pytest.raises(FailureGroup) as caught:
            fuzz(heatmap, GenerationMode.POSITIVE, headers, ids, examples=3)
        assert [type(e) for e in caught.value.exceptions] == [IgnoredAuth], caught.value
    finally:
        app.dependency_overrides.clear()


def test_rate_limited_answers_match_the_schema_too(fuzzed: World) -> None:
    _, throttled, tokens, ids = fuzzed
    seen: list[int] = []
    for operation in operations(throttled):
        for role in ROLES:
            headers = {"Authorization": f"Bearer {tokens[role]}"}
            fuzz(operation, GenerationMode.POSITIVE, headers, ids, examples=4, seen=seen)
    assert seen.count(429) > len(seen) // 2, "the limits tripped: the 429s were checked"
