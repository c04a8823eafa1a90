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

STRONG = "q7VbN2mXe9LwR4tYc8KpJ3sHd6FgZ1uA5oI0vBnMxQe"
DRIVER = "00000000-0000-4000-8000-000000000001"
RIDER = "00000000-0000-4000-8000-000000000002"


def settings(**kw: object) -> AuthSettings:
    return AuthSettings(**{"secret": SecretStr(STRONG), "token_ttl_s": 600, **kw})  # type: ignore[arg-type]


def test_a_token_decodes_to_the_principal_it_was_minted_for() -> None:
    s = settings()
    principal = mint_token(s, DRIVER, "driver", now=1_000.0)
    assert decode(s, encode(s, principal), now=1_500.0) == Principal(DRIVER, "driver", 1_600)


def test_an_expired_token_is_refused() -> None:
    s = settings()
    token = encode(s, mint_token(s, RIDER, "rider", now=1_000.0))
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
    token = encode(s, mint_token(s, RIDER, "rider"))
    with pytest.raises(TokenError):
        decode(s, tamper(token))  # type: ignore[operator]


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = mint_operator_token(settings(secret=SecretStr(STRONG[::-1])))
    with pytest.raises(TokenError, match="signature"):
        decode(settings(), token)


@pytest.mark.parametrize(
    "secret",
    [
        "change-me",
        "short-but-not-a-placeholder",
        " " * 40,
        "a" * 40,
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",  # a sequence
        "Password1234567890Password1234567890!!",  # words, sequences and a repeat
        "test-secret-0123456789-0123456789-0123456789",
    ],
)
def test_production_refuses_a_placeholder_short_or_low_entropy_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="DISPATCH_AUTH_SECRET is too weak") as error:
        settings(secret=SecretStr(secret), environment="production")
    assert secret.strip() == "" or secret not in str(error.value), "the secret is never shown"


@pytest.mark.parametrize(
    "secret", [STRONG, "6bcbfe2cfcc6c5844c437fdec2566275", "Rvws1xOlNeuv5LSUiBy5daVgsDYCEDhQ6VZ"]
)
def test_production_accepts_a_random_secret(secret: str) -> None:
    assert not settings(secret=SecretStr(secret), environment="production").weak_secret


def test_the_operator_token_command_refuses_a_weak_secret_without_printing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from dispatch.cli import app

    weak = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    monkeypatch.setenv("DISPATCH_AUTH_SECRET", weak)
    monkeypatch.setenv("DISPATCH_AUTH_ENVIRONMENT", "production")
    result = CliRunner().invoke(app, ["operator-token"])
    assert result.exit_code == 2
    assert "too weak" in result.output
    assert "aaaaaaaa" not in result.output


@pytest.mark.parametrize(
    ("sub", "role"),
    [("not-a-uuid", "driver"), ("rider-1", "rider"), (DRIVER, "operator"), ("", "driver")],
)
def test_a_signed_token_whose_subject_is_not_an_id_of_its_role_is_malformed(
    sub: str, role: str
) -> None:
    s = settings()
    token = encode(s, Principal(sub, role, 2_000_000_000))  # type: ignore[arg-type]
    with pytest.raises(TokenError, match="malformed token payload"):
        decode(s, token, now=1_000.0)


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
