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
    """One shard of events; its reads reach the end or not, as set, and each takes
    ``takes_s`` of the clock ``clock`` (advanced while it reads)."""

    def __init__(self, clock: list[float] | None = None, takes_s: float = 0.0) -> None:
        self.events: list[LogEvent] = []
        self.whole = True
        self.clock, self.takes_s = clock, takes_s

    def shards(self) -> list[int]:
        return [0]

    def read(self, shard: int, after: int = 0) -> Iterator[LogEvent]:
        yield from [e for e in self.events if e.position > after]
        if self.clock is not None:
            self.clock[0] += self.takes_s  # the read took this long

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
    source = OneShard(clock, takes_s=2.0)  # each read takes 2 s
    runner = ProjectionRunner(
        source, ViewSet([CredentialsProjection()]), monotonic=lambda: clock[0]
    )
    assert runner.age(0) == float("inf")  # never read: nothing can be vouched for

    source.events.append(revoked(1, str(new_id(0)), 1))
    runner.catch_up()  # began at 100, ended at 102: vouches only for what was in at 100
    assert clock[0] == 102.0
    clock[0] = 103.5
    assert runner.age(0) == 3.5

    source.whole = False  # a read that stopped short (a follower's patience)
    runner.catch_up()
    clock[0] = 110.0
    assert runner.age(0) == 10.0, "a read short of the end vouches for nothing newer"


class TwoShards(LogSource):
    """Shard 0 healthy (read to its end at once); shard 1 stalled: each read of it waits its
    patience (the clock moves by it), brings nothing and stops short, as a Kafka follower's
    read of a partition whose fetches bring nothing does."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.patience_s = 2.0  # KafkaFollowSource.PATIENCE_S until told otherwise
        self.last: dict[int, bool] = {}

    def shards(self) -> list[int]:
        return [0, 1]

    def set_read_patience(self, seconds: float) -> None:
        self.patience_s = min(2.0, seconds)

    def read(self, shard: int, after: int = 0) -> Iterator[LogEvent]:
        if shard == 1:
            self.clock[0] += self.patience_s
        self.last[shard] = shard == 0
        return iter([])

    def reached_end(self, shard: int) -> bool:
        return self.last.get(shard, False)

    def head(self, shard: int) -> int:
        return 0

    def stored_events(self, shard: int, aggregate_id: UUID) -> list[StoredEvent]:
        return []

    def close(self) -> None:
        pass


def test_a_stalled_shard_does_not_age_a_healthy_one_past_the_bound() -> None:
    """The runner reads shards one after another: a stalled one's read, waiting its whole
    patience each pass, would age the healthy one by that much per pass (review finding
    5). ``bound_pass`` divides a budget among the shards' reads."""
    bound = 1.0
    clock = [0.0]
    source = TwoShards(clock)
    runner = ProjectionRunner(
        source, ViewSet([CredentialsProjection()]), monotonic=lambda: clock[0]
    )
    runner.bound_pass(bound * 0.25)  # as the API does (PASS_SHARE_OF_BOUND)
    assert source.patience_s == 0.125
    worst = 0.0
    for _ in range(20):
        runner.catch_up()
        worst = max(worst, runner.age(0))  # the healthy shard, just before its next read
    assert worst <= bound * 0.25, worst
    assert runner.age(1) == float("inf")  # the stalled one vouches for nothing
