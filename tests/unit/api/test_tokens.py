"""Bearer tokens: signed, bound to a subject and role, expiring; weak secrets refused."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from dispatch.api.auth import (
    AuthSettings,
    Principal,
    TokenError,
    decode,
    encode,
    mint_operator_token,
    mint_token,
)

STRONG = "s3cr3t-" + "x" * 40


def settings(**kw: object) -> AuthSettings:
    return AuthSettings(**{"secret": SecretStr(STRONG), "token_ttl_s": 600, **kw})  # type: ignore[arg-type]


def test_a_token_decodes_to_the_principal_it_was_minted_for() -> None:
    s = settings()
    principal = mint_token(s, "driver-1", "driver", now=1_000.0)
    assert decode(s, encode(s, principal), now=1_500.0) == Principal("driver-1", "driver", 1_600)


def test_an_expired_token_is_refused() -> None:
    s = settings()
    token = encode(s, mint_token(s, "rider-1", "rider", now=1_000.0))
    with pytest.raises(TokenError, match="expired"):
        decode(s, token, now=1_600.0)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # forged signature
        lambda t: "x" + t,  # changed payload
        lambda t: t.replace(".", ""),  # no signature at all
        lambda t: "é." + t.split(".")[1],  # not ASCII
    ],
)
def test_a_tampered_token_is_refused(tamper: object) -> None:
    s = settings()
    token = encode(s, mint_token(s, "rider-1", "rider"))
    with pytest.raises(TokenError):
        decode(s, tamper(token))  # type: ignore[operator]


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = mint_operator_token(settings(secret=SecretStr("another-" + "y" * 40)))
    with pytest.raises(TokenError, match="signature"):
        decode(settings(), token)


@pytest.mark.parametrize("secret", ["change-me", "short-but-not-a-placeholder"])
def test_production_refuses_a_placeholder_or_short_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="DISPATCH_AUTH_SECRET"):
        settings(secret=SecretStr(secret), environment="production")


def test_development_accepts_the_placeholder_secret() -> None:
    assert AuthSettings(environment="development").weak_secret


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_AUTH_SECRET", STRONG)
    monkeypatch.setenv("DISPATCH_AUTH_ENVIRONMENT", "production")
    monkeypatch.setenv("DISPATCH_AUTH_TOKEN_TTL_S", "120")
    s = AuthSettings()
    assert (s.environment, s.token_ttl_s, s.weak_secret) == ("production", 120, False)


def test_a_token_with_non_ascii_characters_is_malformed_not_a_crash() -> None:
    with pytest.raises(TokenError, match="not ASCII"):
        decode(settings(), "abc.é")
