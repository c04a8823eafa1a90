"""Upgrading signs nobody out: a token of the format before JWTs (``{sub, role, exp}``
signed with DISPATCH_AUTH_SECRET) is a bearer token until it expires, while the secret is
the only key; it never refreshes, a forged or expired one is a 401 with the reason, and a
key ring (or DISPATCH_AUTH_ACCEPT_LEGACY_TOKENS=false) refuses it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_world import PICKUP, SECRET, bearer
from fastapi.testclient import TestClient
from pydantic import SecretStr

from dispatch.api import AuthSettings, create_app
from dispatch.api.auth import Principal, TokenError, tokens_for
from dispatch.api.context import ApiOptions
from dispatch.api.settings import ApiLimits
from dispatch.bootstrap import build_runtime
from dispatch.settings import Settings
from dispatch.tokens import LEEWAY_S

OTHER = "Rvws1xOlNeuv5LSUiBy5daVgsDYCEDhQ6VZcK2Jt9wLp"
DRIVER = "00000000-0000-4000-8000-000000000001"
NOW = 1_800_000_000.0
AUTH = AuthSettings(secret=SecretStr(SECRET), environment="production")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def legacy(sub: str, role: str, exp: int, secret: str = SECRET) -> str:
    """A token as the previous version made it (``git show main:dispatch/api/auth.py``)."""
    payload = _b64(
        json.dumps({"sub": sub, "role": role, "exp": exp}, separators=(",", ":")).encode()
    )
    signature = _b64(hmac.new(secret.encode(), payload.encode("ascii"), hashlib.sha256).digest())
    return f"{payload}.{signature}"


def test_a_legacy_token_stands_for_its_subject_until_it_expires() -> None:
    token = legacy(DRIVER, "driver", int(NOW) + 86_400)
    tokens = tokens_for(AUTH)
    assert tokens.principal(token, NOW) == Principal(DRIVER, "driver", int(NOW) + 86_400)
    assert tokens.read(token, "access", NOW).legacy
    with pytest.raises(TokenError, match="token expired"):
        tokens.principal(token, NOW + 86_400 + LEEWAY_S)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (legacy(DRIVER, "driver", int(NOW) + 600, secret=OTHER), "bad signature"),
        (legacy(DRIVER, "driver", int(NOW) + 600)[:-2] + "AA", "bad signature"),
        (legacy("operator", "operator", int(NOW) + 600), "must name its operator"),
        (legacy("someone", "driver", int(NOW) + 600), "no driver is called 'someone'"),
        (legacy(DRIVER, "admin", int(NOW) + 600), "unknown role 'admin'"),
        (legacy(DRIVER, "driver", int(NOW) - LEEWAY_S), "token expired"),
        # the previous format's lifetime was at most a day by default (or the TTL set)
        (legacy(DRIVER, "driver", int(NOW) + 86_400 + LEEWAY_S + 1), "only for its last 86400 s"),
        ("payload.", "malformed token"),
    ],
)
def test_a_forged_expired_or_odd_legacy_token_is_refused_with_the_reason(
    token: str, reason: str
) -> None:
    with pytest.raises(TokenError, match=reason):
        tokens_for(AUTH).principal(token, NOW)


def test_a_legacy_token_never_refreshes() -> None:
    with pytest.raises(TokenError, match="previous format cannot refresh"):
        tokens_for(AUTH).read(legacy(DRIVER, "driver", int(NOW) + 600), "refresh", NOW)


def test_the_engine_never_makes_a_legacy_token() -> None:
    issued = tokens_for(AUTH).issue(DRIVER, "driver", NOW)
    assert issued.access_token.count(".") == issued.refresh_token.count(".") == 2


@pytest.mark.parametrize(
    "settings",
    [
        AuthSettings(keys={"default": SecretStr(SECRET)}, environment="production"),  # type: ignore[dict-item]
        AuthSettings(
            keys={"default": SecretStr(SECRET), "2027": SecretStr(OTHER)},  # type: ignore[dict-item]
            signing_key="2027",
        ),
        AuthSettings(secret=SecretStr(SECRET), accept_legacy_tokens=False),
    ],
    ids=["one-key-ring", "two-key-ring", "turned-off"],
)
def test_a_key_ring_or_the_setting_refuses_legacy_tokens(settings: AuthSettings) -> None:
    with pytest.raises(
        TokenError, match=r"not a JWT \(a token of the previous format is not taken"
    ):
        tokens_for(settings).principal(legacy(DRIVER, "driver", int(NOW) + 600), NOW)


def test_legacy_tokens_are_turned_off_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_AUTH_SECRET", SECRET)
    assert AuthSettings().legacy_secret == SECRET
    monkeypatch.setenv("DISPATCH_AUTH_ACCEPT_LEGACY_TOKENS", "false")
    assert AuthSettings().legacy_secret is None


def test_the_legacy_lifetime_is_the_access_lifetime_if_longer_than_a_day() -> None:
    long_lived = AuthSettings(secret=SecretStr(SECRET), token_ttl_s=60 * 86_400)
    token = legacy(DRIVER, "driver", int(NOW) + 60 * 86_400)
    assert tokens_for(long_lived).principal(token, NOW).sub == DRIVER


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("legacy")
    runtime = build_runtime(Settings(data_dir=data_dir, shards=1), clock=time.time)
    limits = ApiLimits.model_construct(rate_limit_registrations_per_min=0)
    with TestClient(create_app(runtime, AUTH, ApiOptions(command_timeout_s=5.0), limits)) as c:
        yield c


def test_a_legacy_token_works_as_a_bearer_token_over_http(client: TestClient) -> None:
    r = client.post("/drivers", json={"name": "Dee", "home": PICKUP})
    driver = r.json()["driver_id"]
    token = legacy(driver, "driver", int(time.time()) + 3_600)
    online = client.post(f"/drivers/{driver}/online", headers=bearer(token))
    assert online.status_code == 200, online.text


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: legacy(d, "driver", int(time.time()) - LEEWAY_S - 1), "token expired"),
        (lambda d: legacy(d, "driver", int(time.time()) + 600, secret=OTHER), "bad signature"),
    ],
)
def test_an_expired_or_forged_legacy_token_is_401_with_the_reason(
    client: TestClient, make: object, reason: str
) -> None:
    driver = client.post("/drivers", json={"name": "Dee", "home": PICKUP}).json()["driver_id"]
    r = client.post(f"/drivers/{driver}/online", headers=bearer(make(driver)))  # type: ignore[operator]
    assert r.status_code == 401
    assert reason in r.json()["reason"]
    assert r.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_a_legacy_token_is_refused_at_refresh(client: TestClient) -> None:
    driver = client.post("/drivers", json={"name": "Dee", "home": PICKUP}).json()["driver_id"]
    token = legacy(driver, "driver", int(time.time()) + 3_600)
    r = client.post("/auth/refresh", json={"refresh_token": token})
    assert r.status_code == 401
    assert "previous format cannot refresh" in r.json()["reason"]
