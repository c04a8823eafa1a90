"""The matcher's port to geofenced places (docs/MARKETPLACE.md, "Places: geofences and
queues"); ``dispatch.geofences`` is its adapter (polygons, with shapely and H3)."""

from __future__ import annotations

from typing import Protocol


class PlaceLocator(Protocol):
    """Where a point lies among the configured places."""

    def locate(self, lat: float, lng: float, inside: frozenset[str]) -> frozenset[str]:
        """The places a driver now at ``(lat, lng)`` is inside, given ``inside``, the ones
        it was: a place it was not in is entered when the point is in the place's polygon
        (its boundary included); one it was in is left only when the point is past the
        place's exit margin (so that a driver on the boundary does not flap)."""
        ...

    def queue_place(self, lat: float, lng: float) -> str | None:
        """The place with a queue whose polygon holds a pickup at ``(lat, lng)`` (the first
        configured where several do), or None."""
        ...

    def queued(self) -> frozenset[str]:
        """The ids of the places that keep a queue."""
        ...

    def __len__(self) -> int: ...
