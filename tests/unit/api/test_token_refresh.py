"""Over HTTP: registrations answer an access and a refresh token; ``POST /auth/refresh``
trades a refresh token for a new pair, refuses everything else with a 401 and its reason
(a malformed body is a 422); a key rotation signs nobody out."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from api_world import PICKUP, SECRET, bearer
from fastapi.testclient import TestClient
from pydantic import SecretStr

from dispatch.api import AuthSettings, create_app
from dispatch.api.context import ApiOptions
from dispatch.api.settings import ApiLimits
from dispatch.bootstrap import build_runtime
from dispatch.runtime import Runtime
from dispatch.settings import Settings
from dispatch.tokens import LEEWAY_S

NEW_KEY = "Rvws1xOlNeuv5LSUiBy5daVgsDYCEDhQ6VZcK2Jt9wLp"
AUTH = AuthSettings(secret=SecretStr(SECRET), environment="production")
OPTIONS = ApiOptions(command_timeout_s=5.0)


class Api:
    def __init__(self, client: TestClient, runtime: Runtime, now: list[float]) -> None:
        self.client, self.runtime, self.now = client, runtime, now

    def driver(self) -> tuple[str, dict[str, Any]]:
        r = self.client.post("/drivers", json={"name": "Dee", "home": PICKUP})
        assert r.status_code == 201, r.text
        return r.json()["driver_id"], r.json()["token"]

    def refresh(self, token: Any, client: TestClient | None = None) -> Any:
        return (client or self.client).post("/auth/refresh", json={"refresh_token": token})


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    now = [time.time()]
    data_dir: Path = tmp_path_factory.mktemp("refresh")
    runtime = build_runtime(Settings(data_dir=data_dir, shards=1), clock=lambda: now[0])
    unlimited = ApiLimits.model_construct(rate_limit_registrations_per_min=0)  # many sign up
    with TestClient(create_app(runtime, AUTH, OPTIONS, unlimited)) as client:
        yield Api(client, runtime, now)


def seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def ping(client: TestClient, driver: str, access_token: str) -> int:
    """The status of a location ping (202 whenever the token is good: it may be repeated)."""
    r = client.post(f"/drivers/{driver}/location", headers=bearer(access_token), json=PICKUP)
    return r.status_code


def test_a_registration_answers_an_access_and_a_refresh_token(api: Api) -> None:
    for path, body in (("/drivers", {"name": "D", "home": PICKUP}), ("/riders", {"name": "R"})):
        r = api.client.post(path, json=body)
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        assert set(token) == {
            "access_token", "token_type", "expires_at", "refresh_token", "refresh_expires_at"
        }  # fmt: skip
        assert token["token_type"] == "bearer"
        assert seconds(token["expires_at"]) == int(api.now[0]) + AUTH.token_ttl_s
        assert seconds(token["refresh_expires_at"]) == int(api.now[0]) + AUTH.refresh_token_ttl_s


def test_a_refresh_token_gets_a_new_working_pair(api: Api) -> None:
    driver, first = api.driver()
    r = api.refresh(first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert ping(api.client, driver, second["access_token"]) == 202
    assert api.refresh(second["refresh_token"]).status_code == 200, "the new one refreshes too"


def test_an_expired_access_token_is_401_and_its_refresh_token_gets_a_new_one(api: Api) -> None:
    driver, first = api.driver()
    api.now[0] += AUTH.token_ttl_s + LEEWAY_S
    try:
        r = api.client.post(f"/drivers/{driver}/online", headers=bearer(first["access_token"]))
        assert (r.status_code, r.json()["reason"]) == (401, "token expired")
        again = api.refresh(first["refresh_token"])
        assert again.status_code == 200, again.text
        assert ping(api.client, driver, again.json()["access_token"]) == 202
    finally:
        api.now[0] -= AUTH.token_ttl_s + LEEWAY_S


def test_an_expired_refresh_token_is_401(api: Api) -> None:
    _, token = api.driver()
    api.now[0] += AUTH.refresh_token_ttl_s + LEEWAY_S
    try:
        r = api.refresh(token["refresh_token"])
    finally:
        api.now[0] -= AUTH.refresh_token_ttl_s + LEEWAY_S
    assert (r.status_code, r.json()["reason"]) == (401, "token expired")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda t: t["access_token"], "an access token cannot refresh"),
        (lambda t: t["refresh_token"][:-3] + "AAA", "bad signature"),
        (lambda t: "not-a-token", "malformed token"),
        (lambda t: "é" * 10, "not ASCII"),
    ],
)
def test_anything_but_a_valid_refresh_token_is_401_with_the_reason(
    api: Api, make: Any, reason: str
) -> None:
    _, token = api.driver()
    r = api.refresh(make(token))
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized" and reason in r.json()["reason"]
    assert r.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def unsigned(header: dict[str, Any]) -> str:
    """A token anyone can write: this header, a driver's claims, a made-up signature."""
    claims = {"sub": "00000000-0000-4000-8000-000000000001", "role": "driver", "typ": "access"}
    part = [
        base64.urlsafe_b64encode(json.dumps(x).encode()).rstrip(b"=").decode()
        for x in (header, claims)
    ]
    return f"{part[0]}.{part[1]}.AAAA"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"alg": "HS256", "kid": "日本"}, "unknown key id '??'"),
        ({"alg": "HS256", "kid": 'a"b\\c\r\nSet-Cookie: x'}, "unknown key id 'a?b?c??Set-Cookie?"),
        ({"alg": "日本", "kid": "default"}, "algorithm '??' is not accepted"),
        ({"alg": "HS256", "kid": "default", "crit": ["日本"]}, "critical extension: ??"),
    ],
)
@pytest.mark.parametrize("where", ["bearer", "refresh"])
def test_a_header_of_any_characters_is_a_401_with_an_ascii_reason_not_a_500(
    api: Api, header: dict[str, Any], reason: str, where: str
) -> None:
    """The reason reaches the WWW-Authenticate header, which is latin-1: a non-Latin key id,
    algorithm or crit extension made the response itself fail (a 500)."""
    driver, _ = api.driver()
    token = unsigned(header)
    if where == "bearer":
        r = api.client.post(f"/drivers/{driver}/online", headers=bearer(token))
    else:
        r = api.refresh(token)
    assert r.status_code == 401, r.text
    assert reason in r.json()["reason"]
    challenge = r.headers["WWW-Authenticate"]
    description = challenge.split('error_description="', 1)[1]
    assert description.endswith('"') and '"' not in description[:-1] and "\\" not in description
    assert all(" " <= c <= "~" for c in challenge), challenge


def test_a_challenge_carries_printable_ascii_without_quotes_or_backslashes() -> None:
    from dispatch.api.errors import challenge_text

    assert challenge_text('kid "日本" \\ é\tok') == "kid '??' / ??ok"


def test_a_refresh_token_is_not_a_bearer_token(api: Api) -> None:
    driver, token = api.driver()
    r = api.client.post(f"/drivers/{driver}/online", headers=bearer(token["refresh_token"]))
    assert r.status_code == 401
    assert "a refresh token is not a bearer token" in r.json()["reason"]


@pytest.mark.parametrize(
    "body",
    [{}, {"refresh_token": 5}, {"refresh_token": ""}, {"refresh_token": "x" * 4_097},
     {"refresh_token": "a.b.c", "more": 1}, [], "a.b.c"],
)  # fmt: skip
def test_a_malformed_refresh_body_is_422(api: Api, body: Any) -> None:
    r = api.client.post("/auth/refresh", content=json.dumps(body))
    assert (r.status_code, r.json()["error"]) == (422, "invalid_request")


def test_a_key_rotation_signs_nobody_out_until_the_old_key_is_removed(api: Api) -> None:
    driver, old = api.driver()  # signed by the one key there was ("default")
    ring = {"default": SecretStr(SECRET), "2027": SecretStr(NEW_KEY)}
    rotated = AuthSettings(keys=ring, signing_key="2027", environment="production")  # type: ignore[arg-type]
    removed = AuthSettings(keys={"2027": SecretStr(NEW_KEY)}, environment="production")  # type: ignore[dict-item]
    no_lifespan = ApiOptions(manage_runtime=False, command_timeout_s=5.0)
    after = TestClient(create_app(api.runtime, rotated, no_lifespan))
    later = TestClient(create_app(api.runtime, removed, no_lifespan))

    assert ping(after, driver, old["access_token"]) == 202  # the old key still verifies
    fresh = api.refresh(old["refresh_token"], client=after)
    assert fresh.status_code == 200, fresh.text
    assert jwt.get_unverified_header(fresh.json()["access_token"])["kid"] == "2027"

    # once the old key is removed, its tokens stop working, with the reason; new ones work
    r = later.post(f"/drivers/{driver}/online", headers=bearer(old["access_token"]))
    assert (r.status_code, r.json()["reason"].split(":")[0]) == (401, "unknown key id 'default'")
    assert api.refresh(old["refresh_token"], client=later).status_code == 401
    assert ping(later, driver, fresh.json()["access_token"]) == 202
    assert api.refresh(fresh.json()["refresh_token"], client=later).status_code == 200


def test_refreshes_count_against_the_callers_rate_limit(tmp_path: Path) -> None:
    runtime = build_runtime(Settings(data_dir=tmp_path, shards=1), clock=time.time)
    limits = ApiLimits.model_construct(rate_limit_requests_per_s=2)
    with TestClient(create_app(runtime, AUTH, OPTIONS, limits)) as client:
        r = client.post("/riders", json={"name": "R"})
        refresh = {"refresh_token": r.json()["token"]["refresh_token"]}
        codes = [client.post("/auth/refresh", json=refresh).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_refresh_attempts_are_limited_per_client_address_forged_ones_too(
    tmp_path: Path,
) -> None:
    """The caller's limit counts only valid refresh tokens: forged ones went unlimited."""
    runtime = build_runtime(Settings(data_dir=tmp_path, shards=1), clock=time.time)
    limits = ApiLimits.model_construct(rate_limit_registrations_per_min=2)
    with TestClient(create_app(runtime, AUTH, OPTIONS, limits)) as client:
        good = client.post("/riders", json={"name": "R"}).json()["token"]["refresh_token"]
        forged = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
        codes = [client.post("/auth/refresh", json={"refresh_token": t}).status_code
                 for t in (forged, forged, forged, good)]  # fmt: skip
        refused = client.post("/auth/refresh", json={"refresh_token": good})
        registration = client.post("/riders", json={"name": "S"})  # a count of its own
    assert codes == [401, 401, 429, 429]
    assert refused.json()["reason"].startswith("more than 2 refresh attempts a minute")
    assert int(refused.headers["Retry-After"]) >= 1
    assert registration.status_code == 201, registration.text


def test_answers_that_carry_tokens_may_not_be_cached(api: Api) -> None:
    """RFC 6749, 5.1: a token answer says Cache-Control: no-store and Pragma: no-cache."""
    keyed = api.client.post(
        "/riders", json={"name": "K"}, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    answers = [
        api.client.post("/riders", json={"name": "R"}),
        keyed,
        api.client.post("/drivers", json={"name": "D", "home": PICKUP}),
        api.refresh(keyed.json()["token"]["refresh_token"]),
    ]
    for r in answers:
        assert r.is_success and "refresh_token" in r.text, r.text
        assert (r.headers["Cache-Control"], r.headers["Pragma"]) == ("no-store", "no-cache")
    driver, token = api.driver()
    other = api.client.post(f"/drivers/{driver}/online", headers=bearer(token["access_token"]))
    assert "Cache-Control" not in other.headers  # only answers with tokens


def test_the_openapi_document_describes_refresh_and_the_new_token_fields(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    refresh = document["paths"]["/auth/refresh"]["post"]
    body = refresh["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    answer = refresh["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert (body, answer) == (
        "#/components/schemas/RefreshTokens",
        "#/components/schemas/TokenIssued",
    )
    assert {"401", "422", "429"} <= set(refresh["responses"])
    issued = document["components"]["schemas"]["TokenIssued"]
    assert {"access_token", "expires_at", "refresh_token", "refresh_expires_at"} <= set(
        issued["required"]
    )
