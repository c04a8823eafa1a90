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

from projections import parts
from projections.base import Checkpointed, Projection
from projections.rides import RideRow

# Bump when a view's pickled shape changes.
VIEW_FORMAT = 9  # 4: the driver views keep the tenures of drivers handed off; 5: the rides
# view keeps each rider's booked rides and a scheduled ride's time; 6: rows pickled by
# position (``projections.rows``); 7: the surge view keeps each change's shard and position;
# 8: the rides view keeps each rider's active ride and a shared ride's planned stop times;
# 9: views kept in parts (``projections.parts``), the store's generation


class ViewStoreError(Exception):
    """A kept store that cannot be read or taken up (damaged, another format)."""


@dataclass(frozen=True)
class StoredViews:
    """Views as kept: the format, the log they were folded from (``embedded``, or
    ``kafka:<topic prefix>``), each view's pickled ``Checkpointed`` and its parameters.

    For a view kept by key (``projections.parts``), changes kept since it was kept whole:
    its rest (``rests``: its checkpoint, totals and all it does not keep by key, newer
    than its whole state) and the parts of the keys that changed (``parts``, in order:
    b"" for a key gone). ``generation`` names the keeping of the whole views these
    changes apply to (``ViewChanges``); "" for views no change may apply to (the replay
    tools', a history point's)."""

    log: str
    views: dict[str, bytes]
    params: dict[str, str] = field(default_factory=dict)
    format: int = VIEW_FORMAT
    rests: dict[str, bytes] = field(default_factory=dict)
    parts: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)
    generation: str = ""


@dataclass(frozen=True)
class ViewChanges:
    """What changed in the views since they were kept whole as generation ``base`` (or
    since changes kept after it): each view kept whole, pickled (``views``); of each view
    kept by key, its rest (``rests``) and the parts of the keys that changed since the
    last keeping (b"": the key is gone). Applied, the kept views are generation
    ``generation``."""

    log: str
    base: str
    generation: str
    views: dict[str, bytes]
    params: dict[str, str]
    rests: dict[str, bytes]
    parts: dict[str, dict[str, bytes]]
    format: int = VIEW_FORMAT


class StaleViews(ViewStoreError):
    """The kept views are not the generation the changes were made against (another
    writer replaced them, or they were never kept in parts): nothing was written."""


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

    def keep_changes(self, changes: ViewChanges) -> None:
        """Apply ``changes`` to the kept views, all or nothing; ``StaleViews`` (nothing
        written) unless the kept views are generation ``changes.base``. A store that
        keeps views whole only always refuses (its keeper then saves them whole)."""
        raise StaleViews(f"{self.where} keeps views whole only")

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
    projections: Sequence[Projection[Any]],
    states: Mapping[str, Checkpointed[Any]],
    log: str,
    generation: str = "",
) -> StoredViews:
    """The views as kept whole (pickling is the copy), as ``generation``: call it where
    nothing folds events into them meanwhile (``projections.keeper``)."""
    return StoredViews(
        log,
        {p.name: pickle.dumps(states[p.name], protocol=5) for p in projections},
        {p.name: p.params for p in projections},
        generation=generation,
    )


def encode_changes(
    projections: Sequence[Projection[Any]],
    states: Mapping[str, Checkpointed[Any]],
    changed: Mapping[str, set[str]],
    log: str,
    base: str,
    generation: str,
) -> ViewChanges:
    """The views' changes on ``base``: views kept whole in full, views kept by key as their
    rest and the parts of the ``changed`` keys (by view name)."""
    views: dict[str, bytes] = {}
    rests: dict[str, bytes] = {}
    changed_parts: dict[str, dict[str, bytes]] = {}
    for p in projections:
        state = states[p.name]
        view = state.view
        if parts.kept_by_key(view):
            rest = Checkpointed(state.name, parts.rest(view), state.checkpoint, state.anchors)
            rests[p.name] = pickle.dumps(rest, protocol=5)
            changed_parts[p.name] = {
                k: parts.part(view, k) or GONE for k in changed.get(p.name, ())
            }
        else:
            views[p.name] = pickle.dumps(state, protocol=5)
    params = {p.name: p.params for p in projections}
    return ViewChanges(log, base, generation, views, params, rests, changed_parts)


# A kept part that says its key is gone (a part is never empty: a pickle).
GONE = b""


def decode(stored: StoredViews) -> dict[str, Checkpointed[Any]]:
    """Every kept view (with its parts); ``ViewStoreError`` for another format or a view
    that does not unpickle (nothing half-decoded is returned)."""
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
        rest = stored.rests.get(name)
        if rest is not None:
            try:
                state = _changed(state, pickle.loads(rest), stored.parts.get(name, []))
            except Exception as error:
                raise ViewStoreError(
                    f"the changes of view {name} cannot be read: {error!r}"
                ) from error
        out[name] = state
    return out


def _changed(
    whole: Checkpointed[Any], rest: Checkpointed[Any], kept: list[tuple[str, bytes]]
) -> Checkpointed[Any]:
    """A view kept whole, then changed: its rest, with the whole view's entries kept by
    key, then each changed key's part."""
    if not isinstance(rest, Checkpointed) or rest.name != whole.name:
        raise ViewStoreError(f"the rest of view {whole.name} holds {type(rest).__name__}")
    parts.adopt(rest.view, whole.view)
    parts.join(rest.view, kept)
    return rest
