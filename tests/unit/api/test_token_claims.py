"""Every claim of a token is checked: issuer, audience, subject against role, token type,
times (with the stated leeway) and id; a token lacking any claim is refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from dispatch.adapters.jwt.codec import PyJwtCodec
from dispatch.api.auth import AuthSettings, TokenError, Tokens, tokens_for
from dispatch.tokens import LEEWAY_S, REQUIRED_CLAIMS, KeyRing, mint

KEY = "q7VbN2mXe9LwR4tYc8KpJ3sHd6FgZ1uA5oI0vBnMxQe"
DRIVER = "0f0e0d0c-0000-4000-8000-00000000abcd"
NOW = 1_800_000_000.0
SIGNER = PyJwtCodec(KeyRing({"default": KEY}, "default"))


@pytest.fixture
def tokens() -> Tokens:
    return tokens_for(AuthSettings(secret=SecretStr(KEY), environment="production"))


def signed(**changes: Any) -> str:
    """A token signed with the right key whose claims differ from a valid access token's."""
    claims = mint(DRIVER, "driver", "access", NOW, 600).as_json() | changes
    return SIGNER.sign({k: v for k, v in claims.items() if v is not None})


def test_a_valid_token_is_taken(tokens: Tokens) -> None:
    assert tokens.principal(signed(), NOW).sub == DRIVER  # the baseline the others change


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "another-api"}, "not for this API"),
        ({"aud": ["dispatch-api", "another-api"]}, "not for this API"),
        ({"iss": "someone-else"}, "not issued by 'dispatch'"),
        ({"sub": "not-a-uuid"}, "no driver is called 'not-a-uuid'"),
        ({"sub": DRIVER.upper()}, "no driver is called"),
        ({"sub": 42}, "malformed token"),
        ({"role": "operator"}, "an operator token must name its operator"),
        ({"role": "admin"}, "unknown role 'admin'"),
        ({"role": ["driver"]}, "unknown role"),
        ({"typ": "id"}, "unknown token type 'id'"),
        ({"typ": {"access": 1}}, "unknown token type"),
        ({"typ": "refresh"}, "a refresh token is not a bearer token"),
        ({"jti": ""}, "token id"),
        ({"jti": 7}, "malformed token"),
        ({"exp": "1800000600"}, "exp is not a whole number"),
        ({"iat": 1.5e9}, "iat is not a whole number"),
        ({"exp": int(NOW) - LEEWAY_S}, "token expired"),
        ({"nbf": int(NOW) + LEEWAY_S + 1}, "not valid yet"),
        ({"iat": int(NOW) + LEEWAY_S + 1}, "issued in the future"),
        ({"exp": int(NOW) + 900 + LEEWAY_S + 1}, "lives 931 s, longer than the 900 s"),
        ({"ver": -1}, "ver is not a whole number from 0"),
        ({"ver": "2"}, "ver is not a whole number"),
        ({"ver": 1.0}, "ver is not a whole number"),
        ({"ver": True}, "ver is not a whole number"),
        ({"ver": 2**31}, "ver is not a whole number from 0 to 2147483647"),
    ],
)
def test_a_token_with_a_bad_claim_is_refused_with_the_reason(
    tokens: Tokens, changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(TokenError, match=reason):
        tokens.principal(signed(**changes), NOW)


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_a_token_lacking_a_claim_is_refused(tokens: Tokens, claim: str) -> None:
    with pytest.raises(TokenError, match=f"no {claim} claim|not for this API"):
        tokens.principal(signed(**{claim: None}), NOW)


def test_clocks_may_disagree_by_the_leeway(tokens: Tokens) -> None:
    early = signed(iat=int(NOW) + LEEWAY_S, nbf=int(NOW) + LEEWAY_S)
    late = signed(exp=int(NOW) - LEEWAY_S + 1)
    assert tokens.principal(early, NOW).sub == tokens.principal(late, NOW).sub == DRIVER


def test_every_token_has_its_own_id(tokens: Tokens) -> None:
    ids = {tokens.read(tokens.access_token(DRIVER, "driver", NOW)[0], "access", NOW).jti
           for _ in range(20)}  # fmt: skip
    assert len(ids) == 20


def test_an_access_token_cannot_refresh(tokens: Tokens) -> None:
    access = tokens.issue(DRIVER, "driver", NOW).access_token
    with pytest.raises(TokenError, match="an access token cannot refresh"):
        tokens.read(access, "refresh", NOW)


def test_a_shortened_lifetime_holds_for_the_tokens_issued_before() -> None:
    """Tokens carry their own exp: shortening DISPATCH_AUTH_TOKEN_TTL_S (or the refresh
    one) left every token issued before valid for its whole old lifetime."""
    long_lived = AuthSettings(secret=SecretStr(KEY), token_ttl_s=86_400)
    issued = tokens_for(long_lived).issue(DRIVER, "driver", NOW)
    assert tokens_for(long_lived).principal(issued.access_token, NOW + 3_600).sub == DRIVER

    shortened = tokens_for(
        AuthSettings(secret=SecretStr(KEY), token_ttl_s=900, refresh_token_ttl_s=7 * 86_400)
    )
    with pytest.raises(TokenError, match="lives 86400 s, longer than the 900 s"):
        shortened.principal(issued.access_token, NOW + 60)
    with pytest.raises(TokenError, match=r"longer than the 604800 s this engine gives refresh"):
        shortened.read(issued.refresh_token, "refresh", NOW + 60)


def test_a_lifetime_up_to_the_leeway_over_the_setting_is_taken(tokens: Tokens) -> None:
    fits = signed(exp=int(NOW) + 900 + LEEWAY_S)
    assert tokens.principal(fits, NOW).sub == DRIVER


def test_a_token_carries_the_token_version_it_was_issued_at(tokens: Tokens) -> None:
    pair = tokens.issue(DRIVER, "driver", NOW, ver=3)
    assert tokens.principal(pair.access_token, NOW).ver == 3
    assert tokens.read(pair.refresh_token, "refresh", NOW).ver == 3
    assert tokens.principal(tokens.issue(DRIVER, "driver", NOW).access_token, NOW).ver == 0


def test_a_token_without_a_version_is_of_version_0(tokens: Tokens) -> None:
    """Tokens issued before revocation existed carry no ``ver``: they are of version 0, so
    the first revocation of their principal revokes them too."""
    assert "ver" not in REQUIRED_CLAIMS
    assert tokens.principal(signed(ver=None), NOW).ver == 0
