"""Credentials: where a principal's token version lives, the rule a token is checked by, how
a revocation raises the version, and the command that asks for one."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest
from pydantic import ValidationError

from dispatch.domain.credentials import (
    MAX_TOKEN_VERSION,
    OPERATORS_SHARD,
    Credentials,
    TokenRevoked,
    VersionExhausted,
    credentials_id,
    credentials_shard,
    current,
    revoked,
)
from dispatch.domain.ids import new_id, shard_of
from dispatch.domain.operators import AUDIT_FIELDS, operator_id
from schemas import commands as c

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
ADA = operator_id("ada")  # an admin
DANA = operator_id("dana")  # a dispatcher


def test_a_token_below_the_current_version_is_revoked_and_only_the_current_one_taken() -> None:
    assert revoked(0, 1) and revoked(2, 5)
    assert not revoked(0, 0) and not revoked(3, 3) and not revoked(4, 3)
    assert current(3, 3) and not current(2, 3) and not current(4, 3)


def test_a_driver_or_riders_credentials_live_in_its_home_shard_an_operators_in_shard_0() -> None:
    rider = new_id(7)
    assert credentials_shard("rider", rider) == shard_of(credentials_id("rider", rider)) == 7
    assert credentials_shard("driver", rider) == 7
    assert credentials_shard("operator", ADA) == OPERATORS_SHARD == 0
    assert shard_of(credentials_id("operator", ADA)) == 0
    # one principal, one aggregate: derived, and apart for each role
    assert credentials_id("rider", rider) == credentials_id("rider", rider)
    assert credentials_id("rider", rider) != credentials_id("driver", rider)


def _opened(role: str = "rider", principal: UUID | None = None) -> Credentials:
    return Credentials.open(role, principal or new_id(1), T0)


def test_the_principal_revoking_its_own_tokens_sets_one_above_its_tokens_version() -> None:
    credentials = _opened()
    assert credentials.token_version == 0
    assert credentials.revoke(0, "lost my phone", T0) == 1
    assert credentials.revoke(1, "", T0) == 2
    assert credentials.token_version == 2


def test_a_token_above_the_current_version_cannot_revoke() -> None:
    # an operator's token minted ahead of the recorded version is not taken, nor does it
    # revoke (an admin's revocation would otherwise leave it standing: review finding 2)
    credentials = _opened()
    with pytest.raises(
        TokenRevoked, match=r"token ahead: .* version 0, the one sent is of version 5"
    ):
        credentials.revoke(5, "", T0)
    assert credentials.token_version == 0
    assert credentials.revoke(None, "stolen", T0, (ADA, "ada", "admin")) == 1


@pytest.mark.parametrize("caller", [MAX_TOKEN_VERSION, None])
def test_no_revocation_raises_the_version_past_the_highest_a_token_carries(
    caller: int | None,
) -> None:
    credentials = _opened()
    credentials.token_version = MAX_TOKEN_VERSION  # as the events would have left it
    operator = (ADA, "ada", "admin") if caller is None else None
    with pytest.raises(VersionExhausted) as refused:
        credentials.revoke(caller, "", T0, operator)
    assert refused.value.code == "token_version_exhausted"
    assert credentials.token_version == MAX_TOKEN_VERSION


def test_a_token_already_revoked_cannot_revoke_again_and_the_refusal_is_not_final() -> None:
    credentials = _opened()
    credentials.revoke(0, "", T0)
    with pytest.raises(TokenRevoked) as refused:
        credentials.revoke(0, "", T0)
    assert refused.value.code == "token_revoked" and not refused.value.final
    assert credentials.token_version == 1


def test_an_admin_revoking_anothers_tokens_raises_the_current_version() -> None:
    credentials = _opened()
    credentials.revoke(0, "", T0)
    assert credentials.revoke(None, "stolen", T0, (ADA, "ada", "admin")) == 2


def test_only_an_operators_revocation_is_an_audit_record() -> None:
    credentials = _opened()
    credentials.revoke(0, "mine", T0)
    credentials.revoke(None, "stolen", T0, (ADA, "ada", "admin"))
    opened, own, by_admin = credentials.collect_events()
    assert isinstance(opened, Credentials.Created)
    assert not set(AUDIT_FIELDS) & set(vars(own))
    assert {k: vars(by_admin)[k] for k in AUDIT_FIELDS} == {
        "operator_id": str(ADA), "operator_name": "ada", "operator_role": "admin"
    }  # fmt: skip
    assert (by_admin.token_version, by_admin.reason) == (2, "stolen")


def test_a_revocation_is_routed_to_the_shard_that_keeps_the_version() -> None:
    rider = new_id(3)
    own = c.RevokeTokens(principal_id=rider, principal_role="rider", caller_token_version=0)
    operator = c.RevokeTokens(
        principal_id=DANA, principal_role="operator", reason="left",
        operator_id=ADA, operator_name="ada", operator_role="admin",
    )  # fmt: skip
    at = T0
    for command, shard in ((own, 3), (operator, 0)):
        envelope = c.CommandEnvelope(command_id="x", issued_at=at, command=command)
        assert shard_of(envelope.target_id) == shard
        assert envelope.target_id == command.credentials_id


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        # a principal revoking its own names the version of its token
        ({"principal_role": "rider"}, "caller_token_version"),
        # an admin revoking another's does not
        (
            {"principal_role": "rider", "caller_token_version": 0, "operator_id": ADA,
             "operator_name": "ada", "operator_role": "admin"},
            "caller_token_version",
        ),
        # the operator fields go together, and name one operator
        ({"principal_role": "rider", "operator_id": ADA}, "go together"),
        (
            {"principal_role": "rider", "operator_id": DANA, "operator_name": "ada",
             "operator_role": "admin"},
            "is not the id of operator",
        ),
        # only an admin revokes another's
        (
            {"principal_role": "rider", "operator_id": DANA, "operator_name": "dana",
             "operator_role": "dispatcher"},
            "only an operator of role admin",
        ),
        # an operator's tokens are revoked by an operator
        ({"principal_role": "operator", "caller_token_version": 0}, "by an operator"),
    ],
)  # fmt: skip
def test_a_revocation_command_that_does_not_add_up_is_refused(
    fields: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        c.RevokeTokens(principal_id=new_id(1), **fields)


def test_an_operator_revoking_their_own_tokens_needs_no_admin_role() -> None:
    command = c.RevokeTokens(
        principal_id=DANA, principal_role="operator", caller_token_version=0,
        operator_id=DANA, operator_name="dana", operator_role="dispatcher",
    )  # fmt: skip
    assert command.by_itself
