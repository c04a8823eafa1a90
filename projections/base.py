"""What every projection is: an initial view and a fold function, and a checkpoint beside it.

The fold takes ownership of the view it is given and returns it (views are updated in
place for speed; nothing else holds a reference while folding). The checkpoint is the last
position applied per shard, kept in the same object as the view so the two can never be
saved apart; an event at or before the checkpoint is skipped (``ViewSet.apply_page``),
which makes redelivery harmless. Beside each position is the event found there (its
aggregate and version): a view kept on disk is only taken up again by a log that has that
same event at that same position (``projections.warm``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from dispatch.log import LogEvent

V = TypeVar("V")


class Projection(Protocol[V]):
    name: str
    topics: frozenset[str]  # the event types it folds; it ignores every other
    # What else the view depends on (settings), written with a kept view: a view kept
    # under other parameters is folded again from the start rather than taken up.
    params: str

    def initial(self) -> V:
        """A fresh, empty view."""
        ...

    def apply(self, view: V, event: LogEvent) -> V:
        """Fold one event into the view."""
        ...


@dataclass
class Checkpointed(Generic[V]):
    """A view and the per-shard positions it includes, with the event at each."""

    name: str
    view: V
    checkpoint: dict[int, int] = field(default_factory=dict)
    # (aggregate id, version) of the event at each shard's checkpoint position.
    anchors: dict[int, tuple[str, int]] = field(default_factory=dict)

    def position(self, shard: int) -> int:
        return self.checkpoint.get(shard, 0)
