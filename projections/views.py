"""The set of views a process keeps, folded together from one pass over the log."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from dispatch.log import LogEvent
from dispatch.messages import Ping
from projections.base import Checkpointed, Projection
from projections.drivers import DriversProjection, DriversView
from projections.heatmap import HeatmapProjection, HeatmapView
from projections.locations import LocationsProjection, LocationsView
from projections.rides import RidesProjection, RidesView


def default_projections(resolution: int = 9, ttl_s: float = 30.0) -> list[Projection[Any]]:
    return [
        RidesProjection(),
        DriversProjection(),
        LocationsProjection(resolution, ttl_s),
        HeatmapProjection(),
    ]


class ViewSet:
    """Views with their checkpoints; a lock guards them against readers while folding."""

    def __init__(
        self,
        projections: Sequence[Projection[Any]],
        states: dict[str, Checkpointed[Any]] | None = None,
    ) -> None:
        self.projections = list(projections)
        self.states: dict[str, Checkpointed[Any]] = states or {}
        for p in self.projections:
            self.states.setdefault(p.name, Checkpointed(p.name, p.initial()))
        self._routes: dict[str, list[tuple[Projection[Any], Checkpointed[Any]]]] = {}
        self._all = [self.states[p.name] for p in self.projections]
        self.lock = threading.RLock()
        self.progress = threading.Condition(self.lock)

    def names(self) -> list[str]:
        return [p.name for p in self.projections]

    def apply(self, event: LogEvent) -> None:
        """``fold`` into every view, inlined: this is the replay hot path. Only the views
        that fold this event type are called; every view's checkpoint moves on."""
        shard, position = event.shard, event.position
        routes = self._routes.get(event.topic)
        if routes is None:
            routes = self._routes[event.topic] = [
                (p, self.states[p.name]) for p in self.projections if event.topic in p.topics
            ]
        for p, state in routes:
            if position > state.checkpoint.get(shard, 0):
                state.view = p.apply(state.view, event)
        for state in self._all:
            if position > state.checkpoint.get(shard, 0):
                state.checkpoint[shard] = position

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
