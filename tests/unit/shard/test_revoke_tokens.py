"""A shard handles a revocation: it raises the principal's token version (opening its
credentials the first time), refuses one for a driver or rider it does not have and one
sent with a revoked token, answers a retry from its record, and keeps the credentials live."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from dispatch.domain.credentials import Credentials, credentials_id
from dispatch.domain.operators import operator_id
from dispatch.shard.application import ShardApplication
from dispatch.shard.live import LiveAggregates
from dispatch.shard.policy import Policy
from schemas import commands as c

if TYPE_CHECKING:  # the fixture `s` of tests/unit/conftest.py
    from conftest import Scenario

REVOKED = Credentials.TokensRevoked.TOPIC
BY_OPERATOR = Credentials.TokensRevokedByOperator.TOPIC
ADA = operator_id("ada")


def own(principal: UUID, version: int, role: str = "rider") -> c.RevokeTokens:
    return c.RevokeTokens(
        principal_id=principal,
        principal_role=role,
        caller_token_version=version,
    )


def by_admin(principal: UUID, role: str = "rider") -> c.RevokeTokens:
    return c.RevokeTokens(
        principal_id=principal, principal_role=role, reason="stolen",
        operator_id=ADA, operator_name="ada", operator_role="admin",
    )  # fmt: skip


def version(s: Scenario, role: str, principal: UUID) -> int:
    return int(s.get(credentials_id(role, principal)).token_version)


def test_a_riders_first_revocation_opens_its_credentials_at_version_one(s: Scenario) -> None:
    rider = s.rider()
    then = s.when(own(rider, 0))
    assert then.accepted
    assert then.topics == [Credentials.Created.TOPIC, REVOKED]
    assert then.outcome.aggregate_ids == [str(credentials_id("rider", rider))]
    assert version(s, "rider", rider) == 1


def test_a_driver_revokes_again_from_its_new_token_and_an_admin_after_it(s: Scenario) -> None:
    driver = s.driver(online=False)
    s.given(own(driver, 0, "driver"), own(driver, 1, "driver"))
    then = s.when(by_admin(driver, "driver"))
    assert then.topics == [BY_OPERATOR]
    assert then.event(BY_OPERATOR).token_version == 3
    assert version(s, "driver", driver) == 3


def test_a_revocation_sent_with_a_revoked_token_is_refused_and_not_recorded(s: Scenario) -> None:
    rider = s.rider()
    s.given(own(rider, 0))
    then = s.when(own(rider, 0))  # another command (a new key) from the revoked token
    assert (then.outcome.accepted, then.code) == (False, "token_revoked")
    assert then.events == []  # not final: a retry is decided again
    assert version(s, "rider", rider) == 1


def test_a_retry_of_the_revocation_is_answered_from_its_record_even_from_the_revoked_token(
    s: Scenario,
) -> None:
    rider = s.rider()
    envelope = s.envelope(own(rider, 0))
    first = s.when(envelope).outcome
    again = s.when(envelope)
    assert again.outcome.accepted and again.outcome.duplicate
    assert again.outcome.aggregate_ids == first.aggregate_ids
    assert again.events == [] and version(s, "rider", rider) == 1


def test_revoking_the_tokens_of_a_driver_or_rider_the_shard_does_not_have_is_not_found(
    s: Scenario,
) -> None:
    for role in ("driver", "rider"):
        s.when(by_admin(s.new_id(), role)).assert_rejected("not_found")
    s.when(own(s.new_id(), 0, "rider")).assert_rejected("not_found")


def test_an_operators_credentials_are_kept_in_shard_0_where_anyone_may_be_named() -> None:
    app = ShardApplication(0, policy=Policy())
    dana = operator_id("dana")
    at = datetime(2026, 1, 5, tzinfo=UTC)
    command = by_admin(dana, "operator")
    app.handle(c.CommandEnvelope(command_id="r1", issued_at=at, command=command), at)
    (outcome,), recordings = app.commit()
    assert outcome.accepted
    topics = [type(r.domain_event).TOPIC for r in recordings]
    assert topics[:2] == [Credentials.Created.TOPIC, BY_OPERATOR]
    assert app.repository.get(credentials_id("operator", dana)).token_version == 1


def test_credentials_are_always_live_so_every_checkpoint_carries_them() -> None:
    live = LiveAggregates(retention_s=60.0)
    opened = credentials_id("rider", operator_id("x"))  # any id will do
    live.observe(Credentials.Created.TOPIC, opened, 0.0)
    live.evict(10_000_000.0)  # long after any window
    assert opened in live
    assert (opened, "u", 0.0) in live.rows()
