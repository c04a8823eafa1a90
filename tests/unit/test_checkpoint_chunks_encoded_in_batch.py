"""A checkpoint chunk is encoded (its rows sealed, which may make a subject's key) when the
batch that saves it asks for it (``next_chunk``), never when the previous batch commits
(review finding 3 of the Kafka privacy review: a key made after a commit would be sent
outside any transaction)."""

from __future__ import annotations

import uuid
from uuid import UUID

from dispatch.checkpoints import CheckpointWriter, LiveRow, Snapshot
from dispatch.matching.eta import StraightLineEta
from dispatch.matching.index import DriverIndex
from dispatch.matching.matcher import Matcher, MatcherConfig
from dispatch.matching.strategies import Greedy


class _Source:
    """Live aggregates whose snapshots count when they are taken (and sealed)."""

    def __init__(self) -> None:
        self.ids = [uuid.uuid4() for _ in range(3)]
        self.taken: list[UUID] = []

    def live_rows(self) -> list[LiveRow]:
        return [(i, "dispatch.Rider", 0.0) for i in self.ids]

    def snapshot(self, aggregate_id: UUID) -> Snapshot | None:
        self.taken.append(aggregate_id)
        return None


def test_a_chunk_is_encoded_by_the_batch_that_saves_it_not_at_the_commit_before() -> None:
    source = _Source()
    writer = CheckpointWriter(1, chunk_rows=1, aggregates=source)
    matcher = Matcher(DriverIndex[uuid.UUID](9, 30.0), StraightLineEta(), Greedy(),
                      MatcherConfig())  # fmt: skip
    writer.committed(None, 1, 1, matcher, 0.0, 0.0)  # a checkpoint begins
    assert writer.in_progress and source.taken == []  # nothing encoded after the commit
    first = writer.next_chunk()  # the next batch asks for it: encoded now
    assert first is not None and source.taken != []
    assert writer.next_chunk() is first  # the same chunk until it is committed
    taken = len(source.taken)
    writer.committed(first, 0, 1, matcher, 0.0, 0.0)
    assert len(source.taken) == taken  # the next chunk waits for its batch too
    writer.abandon()
    assert not writer.in_progress and writer.next_chunk() is None
