"""The credentials view: each principal's current token version, folded from the log, and
the views' age, which bounds how late a revocation can be to them."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from dispatch.domain.ids import new_id
from dispatch.log import LogEvent, LogSource
from projections.credentials import CredentialsProjection
from projections.runner import ProjectionRunner
from projections.views import ViewSet

REVOKED = "dispatch.Credentials.TokensRevoked"
BY_OPERATOR = "dispatch.Credentials.TokensRevokedByOperator"


def revoked(position: int, principal: str, version: int, topic: str = REVOKED) -> LogEvent:
    data = {"principal_id": principal, "principal_role": "rider", "token_version": version}
    data |= {"reason": ""}
    if topic == BY_OPERATOR:
        data |= {"operator_id": "x", "operator_name": "ada", "operator_role": "admin"}
    return LogEvent(0, position, str(new_id(0)), version, topic, 1_000.0 + position, data)


def test_a_principal_never_revoked_is_at_version_0_and_a_revocation_raises_it() -> None:
    projection = CredentialsProjection()
    view = projection.initial()
    rider, other = str(new_id(0)), str(new_id(0))
    assert view.version(rider) == 0
    view = projection.apply(view, revoked(1, rider, 1))
    view = projection.apply(view, revoked(2, rider, 2, BY_OPERATOR))
    assert (view.version(rider), view.version(other)) == (2, 0)
    assert view.rows[rider].by == "ada"


def test_the_view_never_goes_back_to_a_lower_version() -> None:
    projection = CredentialsProjection()
    rider = str(new_id(0))
    view = projection.apply(projection.initial(), revoked(5, rider, 3))
    view = projection.apply(view, revoked(6, rider, 2))  # cannot be in a checked log
    assert view.version(rider) == 3


class OneShard(LogSource):
    """One shard of events; its reads reach the end or not, as set."""

    def __init__(self) -> None:
        self.events: list[LogEvent] = []
        self.whole = True

    def shards(self) -> list[int]:
        return [0]

    def read(self, shard: int, after: int = 0) -> Iterator[LogEvent]:
        return iter([e for e in self.events if e.position > after])

    def reached_end(self, shard: int) -> bool:
        return self.whole

    def head(self, shard: int) -> int:
        return len(self.events)

    def stored_events(self, shard: int, aggregate_id: UUID) -> list[StoredEvent]:
        return []

    def close(self) -> None:
        pass


def test_the_views_age_counts_from_the_start_of_the_last_read_that_reached_the_end() -> None:
    clock = [100.0]
    source = OneShard()
    runner = ProjectionRunner(
        source, ViewSet([CredentialsProjection()]), monotonic=lambda: clock[0]
    )
    assert runner.age(0) == float("inf")  # never read: nothing can be vouched for

    source.events.append(revoked(1, str(new_id(0)), 1))
    runner.catch_up()
    clock[0] = 103.5
    assert runner.age(0) == 3.5

    source.whole = False  # a read that stopped short (a follower's patience)
    runner.catch_up()
    clock[0] = 110.0
    assert runner.age(0) == 10.0, "a read short of the end vouches for nothing newer"
