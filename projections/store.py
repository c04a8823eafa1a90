"""The ports a serving process keeps its views through between runs, and the kept form.

``ViewStore``: the views with their checkpoints, written whole and switched over
atomically (a crash while writing leaves the previous store), read back at start
(``projections.warm``). ``RideArchive``: the ended rides that left the rides view, answered
by id from then on. Adapter: ``dispatch.adapters.sqlite`` (one SQLite file each under the
data dir). Views are pickled (``encode``): the store is a cache that can always be rebuilt
from the log (``dispatch replay rebuild``), not a format for other programs. It records the
``VIEW_FORMAT`` it was written with; a store of another format is not taken up.
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from projections.base import Checkpointed, Projection
from projections.rides import RideRow

# Bump when a view's pickled shape changes.
VIEW_FORMAT = 8  # 4: the driver views keep the tenures of drivers handed off; 5: the rides
# view keeps each rider's booked rides and a scheduled ride's time; 6: rows pickled by
# position (``projections.rows``); 7: the surge view keeps each change's shard and position;
# 8: the rides view keeps each rider's active ride and a shared ride's planned stop times


class ViewStoreError(Exception):
    """A kept store that cannot be read or taken up (damaged, another format)."""


@dataclass(frozen=True)
class StoredViews:
    """Views as kept: the format, the log they were folded from (``embedded``, or
    ``kafka:<topic prefix>``), each view's pickled ``Checkpointed`` and its parameters."""

    log: str
    views: dict[str, bytes]
    params: dict[str, str] = field(default_factory=dict)
    format: int = VIEW_FORMAT


class ViewStore(ABC):
    """Where the views are kept between runs."""

    where: str  # for messages: the file, say

    @abstractmethod
    def load(self) -> StoredViews | None:
        """The kept views, or None when there are none; ``ViewStoreError`` when they
        cannot be read."""

    @abstractmethod
    def save(self, stored: StoredViews) -> None:
        """Replace the kept views by ``stored``, all or nothing."""

    @abstractmethod
    def discard(self) -> None:
        """Remove the kept views (nothing when there are none)."""


class RideArchive(ABC):
    """Ended rides that left the rides view, by id: written once, read by id."""

    @abstractmethod
    def put(self, rows: Sequence[RideRow]) -> None:
        """Keep these rows (a row kept before under the same id is replaced), durably,
        before returning."""

    @abstractmethod
    def get(self, ride_id: str) -> RideRow | None:
        """The ride's row, or None when it is not archived."""

    @abstractmethod
    def clear(self) -> None:
        """Forget every row (the views are folded again from the start of the log)."""

    @abstractmethod
    def close(self) -> None:
        """Release what the archive holds open."""


def encode(
    projections: Sequence[Projection[Any]], states: Mapping[str, Checkpointed[Any]], log: str
) -> StoredViews:
    """The views as kept (pickling is the copy): call it where nothing folds events into
    them meanwhile (``projections.keeper``)."""
    return StoredViews(
        log,
        {p.name: pickle.dumps(states[p.name], protocol=5) for p in projections},
        {p.name: p.params for p in projections},
    )


def decode(stored: StoredViews) -> dict[str, Checkpointed[Any]]:
    """Every kept view; ``ViewStoreError`` for another format or a view that does not
    unpickle (nothing half-decoded is returned)."""
    if stored.format != VIEW_FORMAT:
        raise ViewStoreError(f"views of format {stored.format}, not {VIEW_FORMAT}")
    out: dict[str, Checkpointed[Any]] = {}
    for name, blob in stored.views.items():
        try:
            state = pickle.loads(blob)
        except Exception as error:  # a damaged pickle raises many kinds of error
            raise ViewStoreError(f"view {name} cannot be read: {error!r}") from error
        if not isinstance(state, Checkpointed) or state.name != name:
            raise ViewStoreError(f"view {name} holds {type(state).__name__}")
        out[name] = state
    return out
