"""The set of views a process keeps, folded together from one pass over the log."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from dispatch.log import LogEvent
from dispatch.messages import Ping
from dispatch.privacy import Opener, as_is
from projections import parts
from projections.base import Checkpointed, Projection
from projections.credentials import CredentialsProjection, CredentialsView
from projections.drivers import DriversProjection, DriversView
from projections.heatmap import HeatmapProjection, HeatmapView
from projections.locations import LocationsProjection, LocationsView
from projections.places import PlacesProjection, PlacesView
from projections.rides import RideRow, RidesProjection, RidesView
from projections.surge import SurgeProjection, SurgeView

# Changed keys a view may gather beyond twice its keys before they are forgotten.
TRACK_SLACK = 10_000


def default_projections(
    resolution: int = 9,
    ttl_s: float = 30.0,
    ride_retention_s: float | None = None,
    open: Opener = as_is,
    queued_places: frozenset[str] | None = None,
) -> list[Projection[Any]]:
    """The views; ended rides leave the rides view ``ride_retention_s`` after they
    ended (None: never). Views keep sealed personal fields as they are; ``open`` reads a
    sealed field where a fold needs it (a pickup's cell for the heatmap, a crossing's place
    for the places view); ``queued_places``: the
    places that keep a queue (None: every place)."""
    return [
        RidesProjection(ride_retention_s),
        DriversProjection(),
        LocationsProjection(resolution, ttl_s),
        HeatmapProjection(open),
        SurgeProjection(),
        CredentialsProjection(),
        PlacesProjection(queued_places, open),
    ]


class ViewSet:
    """Views with their checkpoints; a lock guards them against readers while folding.

    For the views kept by key (``projections.parts``) it remembers which keys changed
    since they were last kept (``take_changed``), ``kept_as``: the generation of the kept
    views these changes apply to (None: keep them whole next time), and ``kept_overlay``:
    how many parts are kept on that generation."""

    def __init__(
        self,
        projections: Sequence[Projection[Any]],
        states: dict[str, Checkpointed[Any]] | None = None,
    ) -> None:
        self.projections = list(projections)
        self.states: dict[str, Checkpointed[Any]] = states or {}
        self._routes: dict[str, list[int]] = {}
        self._pairs: list[tuple[Projection[Any], Checkpointed[Any]]] = []
        self.lock = threading.RLock()
        self.progress = threading.Condition(self.lock)
        # The latest time of an event folded (0: none yet in this process); a view
        # history's points are placed by it (``projections.history``).
        self.folded_until = 0.0
        self.kept_as: str | None = None
        self.kept_overlay = 0  # parts kept on it since it was whole (at most)
        self.resets = 0  # times emptied (``reset``) or their changes forgotten
        self._changed: dict[str, set[str]] = {}
        self._pair()

    def _pair(self) -> None:
        for p in self.projections:
            self.states.setdefault(p.name, Checkpointed(p.name, p.initial()))
        self._pairs = [(p, self.states[p.name]) for p in self.projections]
        self._changed = {p.name: set() for p, state in self._pairs if parts.kept_by_key(state.view)}

    def reset(self) -> None:
        """Every view empty again, as if nothing was folded (kept views turned out not to
        be of this log)."""
        with self.lock:
            self.states.clear()
            self.kept_as = None
            self.resets += 1
            self._pair()

    def take_changed(self) -> dict[str, set[str]]:
        """The keys changed in each view kept in parts since the last call (by view name),
        forgotten here: call it on the folding thread, where the views are then kept."""
        out = self._changed
        self._changed = {name: set() for name in out}
        return out

    def _gather_changed(self) -> None:
        """Take in what a fold changed besides its events' aggregates (a view's
        ``touched``); when a view's changed keys pass twice its keys (and ``TRACK_SLACK``),
        nobody is taking them (saves off): forget them all, and the generation they were
        to change (the next keeping is whole, as it would be anyway)."""
        for name, keys in self._changed.items():
            view = self.states[name].view
            touched = getattr(view, "touched", None)
            if touched:
                keys.update(touched)
                touched.clear()
            if len(keys) > 2 * parts.keys(view) + TRACK_SLACK:
                for forgotten in self._changed.values():
                    forgotten.clear()
                self.kept_as = None
                self.resets += 1  # (a keeping under way is not of these views any more)
                return

    def apply(self, event: LogEvent) -> None:
        self.apply_page([event])

    def settle(self) -> None:
        """Let each view that left something to retry (a key not yet known: the heatmap's
        ``settle``) try it again."""
        with self.lock:
            for p, state in self._pairs:
                settle = getattr(p, "settle", None)
                if settle is not None:
                    touched = settle(state.view)
                    changed = self._changed.get(p.name)
                    if changed is not None:
                        changed.update(touched)

    def apply_page(self, events: Sequence[LogEvent]) -> None:
        """Fold events of one shard, in log order, into every view: the replay hot path.

        Only the views that fold an event's type are called; an event a view already
        includes (at or before its checkpoint) is skipped; the checkpoints move to the
        page's last position once the page is folded."""
        if not events:
            return
        shard = events[0].shard
        latest = max(e.at for e in events)  # (not the last: a carried record keeps its time)
        if latest > self.folded_until:
            self.folded_until = latest
        marks = [(p, state, state.checkpoint.get(shard, 0)) for p, state in self._pairs]
        changed = [self._changed.get(p.name) for p, _ in self._pairs]
        floor = min(mark for _, _, mark in marks)
        routes_of = self._routes
        anchor: LogEvent | None = None
        for event in events:
            position = event.position
            if position <= floor:
                continue
            routes = routes_of.get(event.topic)
            if routes is None:
                routes = routes_of[event.topic] = [
                    i for i, (p, _, _) in enumerate(marks) if event.topic in p.topics
                ]
            for i in routes:
                p, state, mark = marks[i]
                if position > mark:
                    state.view = p.apply(state.view, event)
                    keys = changed[i]
                    if keys is not None:  # kept in parts: the event's aggregate's part
                        keys.add(event.aggregate_id)
            anchor = event
        if anchor is not None:
            self._move(shard, anchor, marks)
        if self._changed:
            self._gather_changed()

    def skip_to(self, event: LogEvent) -> None:
        """Move every checkpoint to ``event`` without folding (events left out on purpose,
        e.g. a rebuild from a time)."""
        self._move(
            event.shard, event, [(p, s, s.checkpoint.get(event.shard, 0)) for p, s in self._pairs]
        )

    @staticmethod
    def _move(
        shard: int, event: LogEvent, marks: list[tuple[Projection[Any], Checkpointed[Any], int]]
    ) -> None:
        for _, state, mark in marks:
            if event.position > mark:
                state.checkpoint[shard] = event.position
                state.anchors[shard] = (event.aggregate_id, event.version)

    def positions(self) -> dict[str, tuple[float, float, float]]:
        """Each driver's last ping (latitude, longitude, time), from the locations view
        (none without one); call it holding the lock."""
        state = self.states.get("locations")
        return dict(state.view.positions) if state is not None else {}

    @property
    def evicted(self) -> dict[str, RideRow]:
        """Ended rides that left the rides view and are not archived yet."""
        state = self.states.get("rides")
        return state.view.evicted if state is not None else {}

    def apply_ping(self, ping: Ping) -> None:
        for p in self.projections:
            apply_ping = getattr(p, "apply_ping", None)
            if apply_ping is not None:
                state = self.states[p.name]
                state.view = apply_ping(state.view, ping)

    def position(self, shard: int) -> int:
        """The position every view has reached on ``shard``."""
        return min(s.position(shard) for s in self.states.values())

    def wait_for(self, shard: int, position: int, timeout_s: float) -> bool:
        """Block until every view includes ``position`` of ``shard`` (read-your-writes)."""
        with self.progress:
            return self.progress.wait_for(lambda: self.position(shard) >= position, timeout_s)

    @property
    def rides(self) -> RidesView:
        view: RidesView = self.states["rides"].view
        return view

    @property
    def drivers(self) -> DriversView:
        view: DriversView = self.states["drivers"].view
        return view

    @property
    def locations(self) -> LocationsView:
        view: LocationsView = self.states["locations"].view
        return view

    @property
    def heatmap(self) -> HeatmapView:
        view: HeatmapView = self.states["heatmap"].view
        return view

    @property
    def surge(self) -> SurgeView:
        view: SurgeView = self.states["surge"].view
        return view

    @property
    def credentials(self) -> CredentialsView:
        view: CredentialsView = self.states["credentials"].view
        return view

    @property
    def places(self) -> PlacesView:
        view: PlacesView = self.states["places"].view
        return view
