"""Bearer tokens: bound to a subject and role, expiring; their settings and weak keys refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from dispatch.api.auth import (
    AuthSettings,
    Principal,
    TokenError,
    decode,
    mint_access_token,
)
from dispatch.tokens import LEEWAY_S

STRONG = "q7VbN2mXe9LwR4tYc8KpJ3sHd6FgZ1uA5oI0vBnMxQe"
OTHER = "Rvws1xOlNeuv5LSUiBy5daVgsDYCEDhQ6VZcK2Jt9wLp"
DRIVER = "00000000-0000-4000-8000-000000000001"
RIDER = "00000000-0000-4000-8000-000000000002"


def settings(**kw: object) -> AuthSettings:
    return AuthSettings(**{"secret": SecretStr(STRONG), "token_ttl_s": 600, **kw})  # type: ignore[arg-type]


def test_a_token_decodes_to_the_principal_it_was_minted_for() -> None:
    s = settings()
    token = mint_access_token(s, DRIVER, "driver", now=1_000.0)
    assert decode(s, token, now=1_500.0) == Principal(DRIVER, "driver", 1_600)


def test_a_token_is_refused_once_expired_past_the_leeway() -> None:
    s = settings()
    token = mint_access_token(s, RIDER, "rider", now=1_000.0)
    assert decode(s, token, now=1_600.0 + LEEWAY_S - 1).sub == RIDER
    with pytest.raises(TokenError, match="expired"):
        decode(s, token, now=1_600.0 + LEEWAY_S)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # forged signature
        lambda t: t.split(".")[0] + ".x" + t.split(".")[1] + "." + t.split(".")[2],  # payload
        lambda t: t.rsplit(".", 1)[0],  # no signature at all
        lambda t: "x" + t,  # a damaged header
    ],
)
def test_a_tampered_token_is_refused(tamper: object) -> None:
    s = settings()
    token = mint_access_token(s, RIDER, "rider")
    with pytest.raises(TokenError):
        decode(s, tamper(token))  # type: ignore[operator]


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = mint_access_token(settings(secret=SecretStr(OTHER)), DRIVER, "driver")
    with pytest.raises(TokenError, match="bad signature"):
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


def test_production_refuses_a_weak_key_of_the_ring_naming_its_id_not_the_key() -> None:
    weak = "Password1234567890Password1234567890!!"
    with pytest.raises(ValidationError, match="key 'old' is too weak") as error:
        AuthSettings(
            keys={"old": SecretStr(weak), "new": SecretStr(STRONG)},  # type: ignore[dict-item]
            signing_key="new",
            environment="production",
        )
    assert weak not in str(error.value) and STRONG not in str(error.value)


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
    result = CliRunner().invoke(app, ["operator-token", "--name", "alice", "--role", "admin"])
    assert result.exit_code == 2
    assert "too weak" in result.output
    assert "aaaaaaaa" not in result.output


def test_development_accepts_the_placeholder_secret() -> None:
    assert AuthSettings(environment="development").weak_secret


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_AUTH_SECRET", STRONG)
    monkeypatch.setenv("DISPATCH_AUTH_ENVIRONMENT", "production")
    monkeypatch.setenv("DISPATCH_AUTH_TOKEN_TTL_S", "120")
    monkeypatch.setenv("DISPATCH_AUTH_REFRESH_TOKEN_TTL_S", "3600")
    s = AuthSettings()
    assert (s.environment, s.token_ttl_s, s.refresh_token_ttl_s, s.weak_secret) == (
        "production",
        120,
        3600,
        False,
    )


def test_access_tokens_live_15_minutes_and_refresh_tokens_30_days_by_default() -> None:
    s = AuthSettings(secret=SecretStr(STRONG))
    assert (s.token_ttl_s, s.refresh_token_ttl_s) == (900, 30 * 86_400)


def test_a_refresh_token_shorter_lived_than_the_access_token_is_refused() -> None:
    with pytest.raises(ValidationError, match="REFRESH_TOKEN_TTL_S must be at least"):
        settings(token_ttl_s=3_600, refresh_token_ttl_s=600)


def test_a_key_ring_is_read_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_AUTH_KEYS", json.dumps({"2026-11": STRONG, "2026-12": OTHER}))
    monkeypatch.setenv("DISPATCH_AUTH_SIGNING_KEY", "2026-12")
    monkeypatch.setenv("DISPATCH_AUTH_ENVIRONMENT", "production")
    ring = AuthSettings().key_ring()
    assert (set(ring.keys), ring.signing_kid) == ({"2026-11", "2026-12"}, "2026-12")
    assert STRONG not in repr(ring) and STRONG not in repr(AuthSettings())


def test_a_key_ring_is_read_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"a": STRONG}))
    monkeypatch.setenv("DISPATCH_AUTH_KEYS_FILE", str(path))
    ring = AuthSettings().key_ring()
    assert (dict(ring.keys), ring.signing_kid) == ({"a": STRONG}, "a")


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"DISPATCH_AUTH_KEYS": json.dumps({"a": STRONG, "b": OTHER})}, "must name the key"),
        (
            {"DISPATCH_AUTH_KEYS": json.dumps({"a": STRONG}), "DISPATCH_AUTH_SIGNING_KEY": "b"},
            "'b' names no key of the ring",
        ),
        (
            {"DISPATCH_AUTH_KEYS": json.dumps({"a": STRONG}), "DISPATCH_AUTH_SECRET": OTHER},
            "not both",
        ),
        ({"DISPATCH_AUTH_KEYS": json.dumps({"a b": STRONG})}, "is not 1 to 32 letters"),
        ({"DISPATCH_AUTH_KEYS": json.dumps({"a\n": STRONG})}, "is not 1 to 32 letters"),
        ({"DISPATCH_AUTH_KEYS": json.dumps({"k" * 33: STRONG})}, "'kkkkkk...' is not 1 to 32"),
        (
            {
                "DISPATCH_AUTH_KEYS": json.dumps({"a": STRONG, "b": OTHER}),
                "DISPATCH_AUTH_SIGNING_KEY": "",
            },
            "must name the key that signs: one of 'a', 'b'",
        ),
        ({"DISPATCH_AUTH_KEYS": json.dumps({"a": STRONG, "b": ""})}, "key 'b' is empty"),
        ({"DISPATCH_AUTH_SECRET": ""}, "DISPATCH_AUTH_SECRET is empty"),
        ({"DISPATCH_AUTH_KEYS_FILE": "/nonexistent/keys.json"}, "No such file"),
        ({"DISPATCH_AUTH_SECRET": STRONG, "DISPATCH_AUTH_SIGNING_KEY": "2027"}, "names no key"),
    ],
)
def test_a_key_ring_that_cannot_sign_is_refused_with_the_reason(
    env: dict[str, str], reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=reason) as error:
        AuthSettings()
    assert STRONG not in str(error.value) and OTHER not in str(error.value)


def test_an_empty_signing_key_with_one_key_is_that_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_AUTH_KEYS", json.dumps({"a": STRONG}))
    monkeypatch.setenv("DISPATCH_AUTH_SIGNING_KEY", "")
    assert AuthSettings().key_ring().signing_kid == "a"


def test_a_ring_written_the_wrong_way_round_does_not_show_its_keys() -> None:
    """``{"<key>": "<kid>"}``: the keys are where the ids belong, and an error named them."""
    with pytest.raises(ValidationError, match="wrong way round") as error:
        AuthSettings(keys={STRONG: SecretStr("2027-01")})  # type: ignore[dict-item]
    assert STRONG[:7] not in str(error.value)
    key32 = STRONG[:32]  # as long as a key id may be: it passes as one, its "key" is weak
    with pytest.raises(ValidationError, match="is too weak") as error:
        AuthSettings(keys={key32: SecretStr("2027-01")}, environment="production")  # type: ignore[dict-item]
    assert f"key '{key32[:6]}...' is too weak" in str(error.value)
    assert key32[:7] not in str(error.value)


def test_an_empty_key_is_refused_in_development_too() -> None:
    """It signed nothing: every registration failed with a 500."""
    with pytest.raises(ValidationError, match="key 'b' is empty"):
        AuthSettings(keys={"a": SecretStr(STRONG), "b": SecretStr("")}, signing_key="b")  # type: ignore[dict-item]


def test_the_refresh_lifetime_is_by_default_at_least_the_access_lifetime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Up to 90 days of access token were allowed: a deployment that had set over 30 days
    failed to start against a 30-day refresh default."""
    monkeypatch.setenv("DISPATCH_AUTH_TOKEN_TTL_S", str(60 * 86_400))
    assert AuthSettings().refresh_token_ttl_s == 60 * 86_400
    monkeypatch.setenv("DISPATCH_AUTH_REFRESH_TOKEN_TTL_S", "")  # empty is unset
    assert AuthSettings().refresh_token_ttl_s == 60 * 86_400
    monkeypatch.setenv("DISPATCH_AUTH_TOKEN_TTL_S", "3600")
    assert AuthSettings().refresh_token_ttl_s == 30 * 86_400
    monkeypatch.setenv("DISPATCH_AUTH_REFRESH_TOKEN_TTL_S", "7200")
    assert AuthSettings().refresh_token_ttl_s == 7_200


def test_a_key_file_that_is_not_a_json_object_is_refused_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(STRONG)
    monkeypatch.setenv("DISPATCH_AUTH_KEYS_FILE", str(path))
    with pytest.raises(ValidationError, match="not a JSON object") as error:
        AuthSettings()
    assert STRONG not in str(error.value)


def test_a_token_with_non_ascii_characters_is_malformed_not_a_crash() -> None:
    with pytest.raises(TokenError, match="not ASCII"):
        decode(settings(), "abc.é")
