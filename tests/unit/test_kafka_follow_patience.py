"""A Kafka follow source's reads wait for fetches that bring nothing only as long as the
runner allows (``ProjectionRunner.bound_pass``), so that a stalled partition does not age
every shard's views past the revocation bound (docs/SECURITY.md, "Revocation")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dispatch.adapters.kafka.logsource import KafkaFollowSource
from projections.runner import ProjectionRunner
from projections.views import ViewSet


class StalledFollower:
    """A follower of a partition whose polls bring nothing: it notes how it was asked."""

    caught_up = False

    def __init__(self) -> None:
        self.asked: list[tuple[int, float]] = []

    def seek(self, partition: int, offset: int) -> None:
        pass

    def read_available(self, poll_ms: int = 200, patience_s: float = 2.0) -> Iterator[Any]:
        self.asked.append((poll_ms, patience_s))
        return iter([])


def source_of(shards: int) -> tuple[KafkaFollowSource, dict[int, StalledFollower]]:
    source = KafkaFollowSource.__new__(KafkaFollowSource)  # no broker: its state only
    followers = {shard: StalledFollower() for shard in range(shards)}
    source._followers = followers  # type: ignore[assignment]
    source._read_to = {}
    source._shards = list(followers)
    source._patience_s, source._follow_poll_ms = source.PATIENCE_S, source.POLL_MS
    return source, followers


def test_each_read_waits_its_share_of_the_pass_and_polls_within_it() -> None:
    source, followers = source_of(8)
    ProjectionRunner(source, ViewSet([])).bound_pass(2.5)  # a 10 s bound's quarter
    list(source.read(3, 0))
    ((poll_ms, patience_s),) = followers[3].asked
    assert patience_s == 2.5 / 8
    assert poll_ms * 2 <= patience_s * 1000  # a read ends within 1.5 times its patience
    assert not source.reached_end(3)


def test_the_patience_is_never_more_than_two_seconds() -> None:
    source, followers = source_of(1)
    source.set_read_patience(60.0)
    list(source.read(0, 0))
    assert followers[0].asked == [(200, 2.0)]
