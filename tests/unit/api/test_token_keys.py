"""Key ids and rotation: any key of the ring verifies the tokens it signed, so a new signing
key signs nobody out; a removed key's tokens are refused with the reason; only HS256."""

from __future__ import annotations

import jwt
import pytest
from pydantic import SecretStr

from dispatch.api.auth import AuthSettings, TokenError, tokens_for
from dispatch.tokens import AUDIENCE, ISSUER, mint

OLD = "q7VbN2mXe9LwR4tYc8KpJ3sHd6FgZ1uA5oI0vBnMxQe"
NEW = "Rvws1xOlNeuv5LSUiBy5daVgsDYCEDhQ6VZcK2Jt9wLp"
RIDER = "00000000-0000-4000-8000-000000000002"
NOW = 1_800_000_000.0


def ring(signing: str, **keys: str) -> AuthSettings:
    secrets = {kid: SecretStr(value) for kid, value in keys.items()}
    return AuthSettings(keys=secrets, signing_key=signing, environment="production")  # type: ignore[arg-type]


def claims() -> dict[str, object]:
    return mint(RIDER, "rider", "access", NOW, 600).as_json()


def test_every_token_names_the_key_that_signed_it() -> None:
    token, _ = tokens_for(ring("k2", k1=OLD, k2=NEW)).access_token(RIDER, "rider", NOW)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "kid": "k2", "typ": "JWT"}


def test_a_single_secret_signs_as_the_default_key() -> None:
    s = AuthSettings(secret=SecretStr(OLD))
    token, _ = tokens_for(s).access_token(RIDER, "rider", NOW)
    assert jwt.get_unverified_header(token)["kid"] == "default"
    # so a ring that keeps the secret as "default" still takes the tokens it signed
    assert tokens_for(ring("k2", default=OLD, k2=NEW)).principal(token, NOW).sub == RIDER


def test_a_token_signed_by_the_old_key_still_works_after_the_signer_changed() -> None:
    before = tokens_for(ring("k1", k1=OLD))
    token, _ = before.access_token(RIDER, "rider", NOW)

    after = tokens_for(ring("k2", k1=OLD, k2=NEW))  # the new key signs, the old one verifies

    assert after.principal(token, NOW + 60).sub == RIDER
    fresh, _ = after.access_token(RIDER, "rider", NOW + 60)
    assert jwt.get_unverified_header(fresh)["kid"] == "k2"
    assert after.principal(fresh, NOW + 60).sub == RIDER


def test_a_token_stops_working_once_its_key_is_removed_with_the_reason() -> None:
    token, _ = tokens_for(ring("k1", k1=OLD)).access_token(RIDER, "rider", NOW)
    removed = tokens_for(ring("k2", k2=NEW))
    with pytest.raises(TokenError, match="unknown key id 'k1'"):
        removed.principal(token, NOW + 60)


def test_a_token_with_an_unknown_key_id_is_refused() -> None:
    token = jwt.encode(claims(), NEW.encode(), algorithm="HS256", headers={"kid": "elsewhere"})
    with pytest.raises(TokenError, match="unknown key id 'elsewhere'"):
        tokens_for(ring("k1", k1=OLD)).principal(token, NOW)


def test_a_token_without_a_key_id_is_refused() -> None:
    token = jwt.encode(claims(), OLD.encode(), algorithm="HS256")
    with pytest.raises(TokenError, match="no key id"):
        tokens_for(ring("k1", k1=OLD)).principal(token, NOW)


def test_a_token_naming_a_key_it_was_not_signed_with_is_refused() -> None:
    token = jwt.encode(claims(), NEW.encode(), algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(TokenError, match="bad signature"):
        tokens_for(ring("k1", k1=OLD, k2=NEW)).principal(token, NOW)


def test_an_unsigned_token_alg_none_is_refused() -> None:
    token = jwt.encode(claims(), None, algorithm=None, headers={"kid": "k1"})
    assert jwt.get_unverified_header(token)["alg"] == "none"
    with pytest.raises(TokenError, match="algorithm 'none' is not accepted"):
        tokens_for(ring("k1", k1=OLD)).principal(token, NOW)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the test's own
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_a_token_signed_with_the_right_key_but_another_algorithm_is_refused(
    algorithm: str,
) -> None:
    token = jwt.encode(claims(), OLD.encode(), algorithm=algorithm, headers={"kid": "k1"})
    with pytest.raises(TokenError, match=f"algorithm '{algorithm}' is not accepted"):
        tokens_for(ring("k1", k1=OLD)).principal(token, NOW)


def test_the_issuer_and_audience_are_this_engines() -> None:
    token, _ = tokens_for(ring("k1", k1=OLD)).access_token(RIDER, "rider", NOW)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert (payload["iss"], payload["aud"]) == (ISSUER, AUDIENCE)
