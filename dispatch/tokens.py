"""Bearer tokens as the engine sees them: the claims, the keys, the port that signs and
verifies them, and the checks on what a verified token says.

``TokenCodec`` is the port: it signs claims with the key ring's signing key (naming it in
the token's ``kid`` header) and verifies a token's signature with the key its ``kid``
names, its algorithm, issuer and audience. The engine wires the PyJWT adapter
(``dispatch.adapters.jwt``). ``read_claims`` then checks the rest against the engine's
clock (which tests and simulations set), with ``LEEWAY_S`` for clocks that disagree a
little: the times, the lifetime against the one the engine gives its type now, the subject
against the role, the token type and its id.

A token of the format before JWTs (``{sub, role, exp}`` signed with ``DISPATCH_AUTH_SECRET``)
is taken, while the settings allow it, as an access token until it expires: the codec
verifies it (``dispatch.adapters.jwt.legacy``) and answers its claims with ``typ``
``LEGACY_TYPE``; the engine never makes one.

An operator is a principal of their own: an operator token's ``sub`` is the operator's id
(``dispatch.domain.operators.operator_id``: a UUIDv5 of their name, the same for every
token of the same name) and its ``operator`` claim their name and operator role
(``viewer``, ``dispatcher``, ``admin``). A token of role ``operator`` without that claim
(issued before operator identities, with ``sub`` ``operator``) is refused.

Every token carries ``ver``: its principal's token version when it was issued. A token
without one (issued before revocation, or of the format before JWTs) is of version 0.
Whether a version is revoked is the principal's credentials' rule
(``dispatch.domain.credentials.revoked``), checked against the API's views
(``dispatch.api.revocation``); ``revoked_reason`` says so to the caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast, get_args

from dispatch.domain.credentials import MAX_TOKEN_VERSION, PrincipalRole
from dispatch.domain.operators import (
    OPERATOR_ROLES,
    OperatorRole,
    operator_id,
    operator_name_error,
)

Role = PrincipalRole  # "driver", "rider" or "operator"
TokenType = Literal["access", "refresh"]
ROLES: frozenset[str] = frozenset(get_args(Role))
TOKEN_TYPES: frozenset[str] = frozenset(get_args(TokenType))
# The ``typ`` a codec answers for a token of the format before JWTs, which has none: an
# access token, with the ``iat`` and ``nbf`` of the earliest it could have been issued
# (``exp`` less the longest lifetime the codec takes for it) and an id the codec makes up.
LEGACY_TYPE = "legacy"
ISSUER = "dispatch"  # who signs: this engine
AUDIENCE = "dispatch-api"  # who may take the token: this engine's API
LEEWAY_S = 30  # how far two API instances' clocks may disagree
# Every claim a token carries; the adapter refuses one that lacks any of them.
REQUIRED_CLAIMS = ("iss", "aud", "sub", "role", "typ", "iat", "nbf", "exp", "jti")
# ``ver``, the token version, is not required: a token without it is of version 0.
MAX_VERSION = MAX_TOKEN_VERSION  # far above any count of revocations; a larger ver is malformed


class TokenError(Exception):
    """The token is missing, malformed, forged, expired or of the wrong kind; ``reason``
    says which (never a key)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Operator:
    """A named operator and their role; ``id`` is derived from the name."""

    name: str
    role: OperatorRole

    @property
    def id(self) -> uuid.UUID:
        return operator_id(self.name)


def operator_of(name: str, role: str) -> Operator:
    """A valid operator, or ``ValueError`` saying what is wrong."""
    problem = operator_name_error(name)
    if problem is not None:
        raise ValueError(problem)
    if role not in OPERATOR_ROLES:
        raise ValueError(f"operator role {role[:20]!r} is not one of {', '.join(OPERATOR_ROLES)}")
    return Operator(name, role)


@dataclass(frozen=True, slots=True)
class Claims:
    """What a token says: who (``sub``, ``role``), what kind (``typ``), from and until when
    (``iat``, which is also ``nbf``, and ``exp``, in whole seconds), its own id (``jti``)
    and its principal's token version when it was issued (``ver``). ``legacy``: a token of
    the format before JWTs (an access token). ``operator``: an operator token's name and
    operator role (None for other roles)."""

    sub: str
    role: Role
    typ: TokenType
    iat: int
    exp: int
    jti: str
    legacy: bool = False
    operator: Operator | None = None
    ver: int = 0

    def as_json(self) -> dict[str, Any]:
        op = self.operator
        extra = {"operator": {"name": op.name, "role": op.role}} if op is not None else {}
        return extra | {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": self.sub,
            "role": self.role,
            "typ": self.typ,
            "iat": self.iat,
            "nbf": self.iat,
            "exp": self.exp,
            "jti": self.jti,
            "ver": self.ver,
        }


def mint(
    sub: str,
    role: Role,
    typ: TokenType,
    now: float,
    ttl_s: int,
    operator: Operator | None = None,
    ver: int = 0,
) -> Claims:
    """Claims for a new token of ``sub`` valid ``ttl_s`` from ``now``, with a fresh id, of
    token version ``ver``. An operator's token names the ``operator``, whose id is its
    subject."""
    if (role == "operator") != (operator is not None) or (
        operator is not None and sub != str(operator.id)
    ):
        raise ValueError("an operator token's subject is its operator's id, and only its")
    if not 0 <= ver <= MAX_VERSION:
        raise ValueError(f"a token version is a whole number from 0 to {MAX_VERSION}")
    issued = int(now)
    jti = uuid.uuid4().hex
    return Claims(sub, role, typ, issued, issued + ttl_s, jti, operator=operator, ver=ver)


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The keys tokens are verified with, by key id, and the id of the one that signs.
    Any key of the ring verifies; the secrets never appear in a ``repr``."""

    keys: Mapping[str, str] = field(repr=False)
    signing_kid: str

    def __post_init__(self) -> None:
        if self.signing_kid not in self.keys:
            raise ValueError(f"the signing key {self.signing_kid!r} is not in the key ring")


class TokenCodec(Protocol):
    """Signs and verifies tokens (the port; ``dispatch.adapters.jwt`` implements it)."""

    def sign(self, claims: Mapping[str, Any]) -> str:
        """A token of ``claims``, signed with the ring's signing key, its id in ``kid``."""
        ...

    def verify(self, token: str) -> Mapping[str, Any]:
        """The claims of a token whose signature one of the ring's keys (the one its
        ``kid`` names) verifies with an accepted algorithm, whose issuer and audience are
        this engine's and which carries every claim of ``REQUIRED_CLAIMS``; else
        ``TokenError`` with the reason. Times are not checked here (``read_claims``). A
        codec that takes tokens of the format before JWTs answers theirs with ``typ``
        ``LEGACY_TYPE``; no other token may carry that type."""
        ...


def read_claims(
    payload: Mapping[str, Any], typ: TokenType, now: float, lifetimes: Mapping[str, int]
) -> Claims:
    """The claims of a verified token of type ``typ``, checked against the clock ``now``
    (with ``LEEWAY_S``) and against ``lifetimes``, the longest each type of token may live
    (``exp - iat``, plus ``LEEWAY_S``): a lifetime shortened in the settings holds for the
    tokens issued before too. Else ``TokenError`` with the reason."""
    sub, role, kind, jti = payload["sub"], payload["role"], payload["typ"], payload["jti"]
    if not isinstance(role, str) or role not in ROLES:
        raise TokenError(f"malformed token payload: unknown role {str(role)[:20]!r}")
    if not isinstance(kind, str) or kind not in TOKEN_TYPES | {LEGACY_TYPE}:
        raise TokenError(f"malformed token payload: unknown token type {str(kind)[:20]!r}")
    # an operator's subject is the id of the operator it names (checked there)
    operator = _operator(payload, sub) if role == "operator" else None
    if not isinstance(sub, str) or not subject_fits(sub):
        raise TokenError(f"malformed token payload: no {role} is called {str(sub)[:40]!r}")
    if not isinstance(jti, str) or not 0 < len(jti) <= 64:
        raise TokenError("malformed token payload: the token id (jti) is not a short string")
    iat, nbf, exp = (_seconds(payload, name) for name in ("iat", "nbf", "exp"))
    ver = _version(payload)
    if exp <= now - LEEWAY_S:
        raise TokenError("token expired")
    if kind == LEGACY_TYPE and nbf > now + LEEWAY_S:
        raise TokenError(
            f"a token of the previous format is taken only for its last {lifetimes[kind]} s; "
            "this one expires later"
        )
    if nbf > now + LEEWAY_S:
        raise TokenError("token not valid yet (nbf is in the future)")
    if iat > now + LEEWAY_S:
        raise TokenError("token issued in the future (iat)")
    if exp - iat > lifetimes[kind] + LEEWAY_S:
        raise TokenError(
            f"token lives {exp - iat} s, longer than the {lifetimes[kind]} s this engine gives "
            f"{kind} tokens now"
        )
    if kind == LEGACY_TYPE:
        if typ != "access":
            raise TokenError(
                "a token of the previous format cannot refresh: it is a bearer token until it "
                "expires; a registration or `dispatch operator-token ... --json` gives a "
                "refresh token"
            )
        return Claims(sub, cast(Role, role), "access", iat, exp, jti, True, operator, ver)
    if kind != typ:
        raise TokenError(_WRONG_TYPE[typ])
    return Claims(sub, cast(Role, role), kind, iat, exp, jti, operator=operator, ver=ver)


def _operator(payload: Mapping[str, Any], sub: str) -> Operator:
    """The operator an operator token names, whose id must be its subject."""
    claim = payload.get("operator")
    if not isinstance(claim, Mapping):
        raise TokenError(
            "an operator token must name its operator (one issued before operator identities "
            "does not): get one with `dispatch operator-token --name NAME --role ROLE`"
        )
    name, role = claim.get("name"), claim.get("role")
    if not isinstance(name, str) or not isinstance(role, str):
        raise TokenError("malformed token payload: the operator claim has no name or role")
    try:
        operator = operator_of(name, role)
    except ValueError as error:
        raise TokenError(f"malformed token payload: {error}") from None
    if str(operator.id) != sub:
        raise TokenError("malformed token payload: the subject is not the named operator's id")
    return operator


_WRONG_TYPE: Mapping[str, str] = {
    "access": "a refresh token is not a bearer token: exchange it at POST /auth/refresh",
    "refresh": "an access token cannot refresh: send the refresh token",
}


def _seconds(payload: Mapping[str, Any], name: str) -> int:
    value = payload[name]
    if type(value) is not int:
        raise TokenError(f"malformed token payload: {name} is not a whole number of seconds")
    return value


def _version(payload: Mapping[str, Any]) -> int:
    """The token version a token was issued at; 0 for a token without one."""
    value = payload.get("ver", 0)
    if type(value) is not int or not 0 <= value <= MAX_VERSION:
        raise TokenError(
            f"malformed token payload: ver is not a whole number from 0 to {MAX_VERSION}"
        )
    return value


def revoked_reason(role: Role, ver: int, current: int) -> str:
    """What a caller whose token is of a revoked version is told, and what to do."""
    again = (
        "use the tokens POST /auth/revoke answered, or get one with `dispatch operator-token "
        f"--name NAME --role ROLE --token-version {current}`"
        if role == "operator"
        else "use the tokens POST /auth/revoke answered (an account whose tokens an admin "
        "revoked, or that was erased, has no other way in)"
    )
    return (
        f"token revoked: this {role}'s tokens of a version below {current} were revoked (this "
        f"one is of version {ver}); {again}"
    )


def ahead_reason(role: Role, ver: int, current: int) -> str:
    """What a caller whose token is of a version above the recorded one is told."""
    again = (
        "get one of the current version with `dispatch operator-token --name NAME --role "
        f"ROLE --token-version {current}`"
        if role == "operator"
        else "use the tokens POST /auth/revoke answered"
    )
    return (
        f"token version ahead: this token is of version {ver}, and this {role}'s recorded "
        f"token version is {current}: only a token of the current version is taken; {again}"
    )


def subject_fits(sub: str) -> bool:
    """A token names an id (a UUID in its canonical form): a driver's, a rider's or an
    operator's (``operator_id``)."""
    try:
        return str(uuid.UUID(sub)) == sub
    except ValueError:
        return False
