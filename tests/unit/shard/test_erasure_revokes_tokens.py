"""An erasure revokes the erased subject's tokens in its own batch (docs/PRIVACY.md,
section 5): the `Erased` event and the credentials' revocation are decided together, at
the subject's home shard, so one is saved with the other or neither is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatch.domain.credentials import Credentials, credentials_id
from dispatch.domain.driver import Driver
from dispatch.domain.ids import new_id
from dispatch.domain.operators import operator_id
from dispatch.domain.rider import Rider
from schemas import commands as c
from tests.unit.conftest import SHARD, Scenario
from tests.unit.shard.test_personal_fields import Shard

ADA = operator_id("ada")


@pytest.fixture
def shard(tmp_path: Path) -> Iterator[Shard]:
    found = Shard(tmp_path)
    yield found
    for app in found.apps:
        app.close()
    found.keys.close()


def test_a_rider_who_erases_themself_revokes_their_tokens_in_the_same_batch(
    shard: Shard,
) -> None:
    s = Scenario(shard.app())
    rider = new_id(SHARD)
    s.given(c.RegisterRider(rider_id=rider, name="Ada"))
    then = s.when(c.EraseRider(rider_id=rider, by="self"))
    assert then.accepted
    assert sorted(then.topics) == sorted(
        [Rider.Erased.TOPIC, Credentials.Created.TOPIC, Credentials.TokensRevoked.TOPIC]
    )
    revoked = then.event(Credentials.TokensRevoked.TOPIC)
    assert (revoked.token_version, revoked.reason) == (1, "erased")
    fresh = shard.app()  # read back from the file
    assert fresh.repository.get(credentials_id("rider", rider)).token_version == 1


def test_an_admin_who_erases_a_driver_revokes_their_tokens_after_earlier_revocations(
    shard: Shard,
) -> None:
    s = Scenario(shard.app())
    driver = new_id(SHARD)
    s.given(c.RegisterDriver(driver_id=driver, name="Dee"))
    s.given(c.RevokeTokens(principal_id=driver, principal_role="driver", caller_token_version=0))
    then = s.when(
        c.EraseDriver(
            driver_id=driver, by="operator", operator_id=ADA, operator_name="ada",
            operator_role="admin",
        )
    )  # fmt: skip
    assert sorted(then.topics) == sorted(
        [Driver.ErasedByOperator.TOPIC, Credentials.TokensRevokedByOperator.TOPIC]
    )
    revoked = then.event(Credentials.TokensRevokedByOperator.TOPIC)
    assert (revoked.token_version, revoked.operator_name) == (2, "ada")


def test_erasing_again_revokes_nothing_more(shard: Shard) -> None:
    s = Scenario(shard.app())
    rider = new_id(SHARD)
    s.given(c.RegisterRider(rider_id=rider, name="Ada"))
    s.given(c.EraseRider(rider_id=rider, by="self"))
    then = s.when(c.EraseRider(rider_id=rider, by="self"))
    assert then.accepted and then.topics == []
    assert s.app.repository.get(credentials_id("rider", rider)).token_version == 1
