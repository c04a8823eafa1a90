"""Verifying a JWT against a key ring, the one way bearer tokens (``codec``) and fare
quotes (``quotes``) are both checked, with PyJWT's errors turned into reasons.

A token's ``kid`` header names the key of the ring that signed it; only that key verifies
it, and only with ``ALGORITHMS`` (never the token's own say: ``alg: none`` or another
algorithm is refused by PyJWT's ``algorithms=`` list). PyJWT checks the issuer, the
audience (exactly one) and that every required claim is there; the times are left to the
core, which reads the engine's clock where PyJWT would read the wall clock.

A reason never repeats what an unverified header says beyond a short ASCII form (``shown``):
anyone can write a header, and a bearer token's reason reaches a ``WWW-Authenticate`` header.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jwt

from dispatch.tokens import ISSUER, KeyRing

ALGORITHM = "HS256"
ALGORITHMS = [ALGORITHM]  # the only algorithms a token may name


@dataclass(frozen=True)
class Wording:
    """How the reasons name what is checked: ``noun`` ("token", "quote"), ``claims`` (what a
    missing claim is said to be missing from) and ``not_audience`` (the reason for a JWT of
    another audience)."""

    noun: str
    claims: str
    not_audience: str


def verified(
    token: str,
    ring: KeyRing,
    *,
    audience: str,
    required: Iterable[str],
    wording: Wording,
    fail: Callable[[str], Exception],
) -> dict[str, Any]:
    """The claims of ``token`` if the ring's key its ``kid`` names verifies it for
    ``audience``; otherwise ``fail(reason)`` is raised."""
    noun = wording.noun
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as error:
        raise fail(f"malformed {noun}: {said(error)}") from None
    kid = header.get("kid")
    if kid is None:
        raise fail(f"{noun} has no key id (kid header)")
    key = ring.keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise fail(
            f"unknown key id '{shown(kid)}': the key that signed this {noun} is not (or no "
            "longer) one of this engine's"
        )
    options: Any = {
        "require": list(required),
        "verify_exp": False,  # the core checks times against the engine's clock
        "verify_nbf": False,
        "verify_iat": False,
        "strict_aud": True,  # one audience, exactly the one asked for
    }
    try:
        payload: dict[str, Any] = jwt.decode(
            token, key.encode(), algorithms=ALGORITHMS, issuer=ISSUER, audience=audience,
            options=options,
        )  # fmt: skip
    except jwt.InvalidAlgorithmError:
        alg = shown(header.get("alg"), 20)
        raise fail(f"algorithm '{alg}' is not accepted (only {ALGORITHM})") from None
    except jwt.InvalidSignatureError:
        raise fail(f"bad signature: the {noun} was altered or not signed here") from None
    except jwt.MissingRequiredClaimError as error:
        raise fail(f"malformed {wording.claims}: no {error.claim} claim") from None
    except jwt.InvalidAudienceError:
        raise fail(wording.not_audience) from None
    except jwt.InvalidIssuerError:
        raise fail(f"{noun} was not issued by {ISSUER!r}") from None
    except jwt.InvalidTokenError as error:
        raise fail(f"malformed {noun}: {said(error)}") from None
    return payload


def signed(claims: dict[str, Any], ring: KeyRing) -> str:
    """``claims`` signed with the ring's signing key, its id in the ``kid`` header."""
    kid = ring.signing_kid
    return jwt.encode(claims, ring.keys[kid].encode(), algorithm=ALGORITHM, headers={"kid": kid})


def shown(value: object, limit: int = 40) -> str:
    """An unverified header value as a reason may repeat it: its first ``limit`` characters,
    each one that is not an ASCII letter, digit, ``.``, ``_`` or ``-`` shown as ``?``."""
    return "".join(
        c if c.isascii() and (c.isalnum() or c in "._-") else "?" for c in str(value)[:limit]
    )


def said(error: Exception) -> str:
    """PyJWT's message, which may quote the token's header (an unknown ``crit`` extension):
    its first 80 characters, anything but printable ASCII (and quotes, backslashes) as ``?``."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in str(error)[:80])
