"""Credentials: the token version of one principal (a driver, a rider or an operator).

Every bearer token carries the version its principal's tokens had when it was issued
(``ver``; a token without one counts as version 0). A revocation raises the version, and
from then on every token of a lower version is refused: that is how all of a principal's
tokens are revoked at once, without a list of tokens. The version changes only by an
event of this aggregate, so it is in the log of record like every other change.

Where it lives: a driver's or rider's credentials in the principal's home shard (its id's
top 16 bits), beside the driver or rider (a hand-off moves a driver's availability, never
its credentials); an operator's, whose id is a UUIDv5 of their name and names no shard, in
shard 0. The aggregate's id is derived from the principal's (``credentials_id``), so any
process finds it from the principal alone. It is created by the first revocation.

Who revokes: the principal itself ("sign out everywhere"; its new version is one above
the version of the token it revoked with, which must not be revoked already), or an
operator: an admin revoking anyone's, or an operator their own. An operator's revocation
names them and the role they acted in (``AUDIT_FIELDS``): an audit record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args
from uuid import UUID

from eventsourcing.domain import Aggregate

from dispatch.domain.errors import DomainError
from dispatch.domain.ids import derived_id, shard_of

PrincipalRole = Literal["driver", "rider", "operator"]
PRINCIPAL_ROLES: tuple[PrincipalRole, ...] = get_args(PrincipalRole)
# Fixed for good: a principal's credentials id is derived from its id in it.
CREDENTIALS_NAMESPACE = UUID("8c5e2b7d-41f3-4a96-b0d8-3e7f1a9c2d64")
OPERATORS_SHARD = 0  # where operators' credentials live
# The highest token version: a token carries it as a signed 32-bit number (a larger ``ver``
# is malformed), so no revocation may record a version above it.
MAX_TOKEN_VERSION = 2**31 - 1


class TokenRevoked(DomainError):
    """The caller's own token is of a version already revoked: it may not revoke again
    (nor so mint itself new tokens). Not final: a retry of the revocation that revoked it
    is answered from its record before this is decided."""

    code = "token_revoked"
    final = False


def credentials_shard(role: PrincipalRole, principal_id: UUID) -> int:
    """The shard that keeps the principal's token version."""
    return OPERATORS_SHARD if role == "operator" else shard_of(principal_id)


def credentials_id(role: PrincipalRole, principal_id: UUID) -> UUID:
    """The id of the principal's credentials aggregate, in ``credentials_shard``."""
    shard = credentials_shard(role, principal_id)
    return derived_id(shard, CREDENTIALS_NAMESPACE, f"{role}:{principal_id}")


def revoked(token_version: int, current: int) -> bool:
    """A version below the principal's current one is revoked. Only a token of the current
    version is taken (``current``); one above it was never issued by this engine at a
    version the log holds (an operator's token minted ahead, or a new pair that this
    instance's views do not hold yet: ``dispatch.api.revocation`` tells them apart)."""
    return token_version < current


def current(token_version: int, version: int) -> bool:
    """The rule every token is checked by: it is taken only at its principal's current
    version (``version``)."""
    return token_version == version


class VersionExhausted(DomainError):
    """A revocation would raise the version above ``MAX_TOKEN_VERSION``: no token could
    carry it."""

    code = "token_version_exhausted"


class Credentials(Aggregate):
    TOPIC = "dispatch.Credentials"

    class Event(Aggregate.Event):
        pass

    class Created(Aggregate.Created):
        """Stored as ``Opened``: the principal's first revocation opens its credentials."""

        TOPIC = "dispatch.Credentials.Opened"
        class_version = 1
        principal_id: str
        principal_role: str

    class TokensRevoked(Event):
        """The principal revoked all its tokens below ``token_version``."""

        TOPIC = "dispatch.Credentials.TokensRevoked"
        class_version = 1
        principal_id: str
        principal_role: str
        token_version: int
        reason: str

        def apply(self, credentials: Credentials) -> None:
            credentials.token_version = self.token_version

    class TokensRevokedByOperator(Event):
        """An operator revoked all the principal's tokens below ``token_version`` (an
        admin anyone's, an operator their own); names them (the audit trail)."""

        TOPIC = "dispatch.Credentials.TokensRevokedByOperator"
        class_version = 1
        principal_id: str
        principal_role: str
        token_version: int
        operator_id: str
        operator_name: str
        operator_role: str
        reason: str

        def apply(self, credentials: Credentials) -> None:
            credentials.token_version = self.token_version

    def __init__(self, principal_id: str, principal_role: str) -> None:
        self.principal_id = principal_id
        self.principal_role = principal_role
        self.token_version = 0  # no revocation yet: every token counts

    @classmethod
    def open(cls, role: PrincipalRole, principal_id: UUID, at: datetime) -> Credentials:
        return cls._create(
            cls.Created,
            id=credentials_id(role, principal_id),
            timestamp=at,
            principal_id=str(principal_id),
            principal_role=role,
        )

    def revoke(
        self,
        caller_version: int | None,
        reason: str,
        at: datetime,
        operator: tuple[UUID, str, str] | None = None,
    ) -> int:
        """Revoke every token below the new version, which it returns: one above the
        current. The principal revoking its own sends the version of its token
        (``caller_version``), which must be the current one (``TokenRevoked`` otherwise);
        an admin revoking someone else's sends None. ``VersionExhausted`` past
        ``MAX_TOKEN_VERSION``. ``operator``: who did it (id, name, role), when an operator
        did."""
        if caller_version is not None and not current(caller_version, self.token_version):
            state = "revoked" if revoked(caller_version, self.token_version) else "ahead"
            raise TokenRevoked(
                f"token {state}: this {self.principal_role}'s tokens are at version "
                f"{self.token_version}, the one sent is of version {caller_version}: only a "
                "token of the current version revokes"
            )
        version = self.token_version + 1
        if version > MAX_TOKEN_VERSION:
            raise VersionExhausted(
                f"this {self.principal_role}'s tokens are at version {self.token_version}, "
                f"the highest a token can carry ({MAX_TOKEN_VERSION}): it cannot be raised"
            )
        fields = {
            "principal_id": self.principal_id,
            "principal_role": self.principal_role,
            "token_version": version,
            "reason": reason,
        }
        if operator is None:
            self.trigger_event(self.TokensRevoked, timestamp=at, **fields)
        else:
            operator_id, name, role = operator
            self.trigger_event(
                self.TokensRevokedByOperator, timestamp=at, operator_id=str(operator_id),
                operator_name=name, operator_role=role, **fields,
            )  # fmt: skip
        return version
