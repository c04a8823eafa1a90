"""The available drivers by product: one ``DriverIndex`` of them all and one per product.

A driver whose vehicle serves several products (``Catalog.serves``) is in the index of each
of them as well as in the index of all, so that the nearest search for a ride's product is
an exact k-nearest search over exactly the drivers that serve it, as fast as over a market
of those drivers alone (docs/BENCHMARKS.md, "Nearest search per product": a filter inside
one index walks past every driver of the other products, which for a rare product is most
of them). The index of all answers what is not per product: positions, the supply per
cell that surge reads, and expiry (a silent driver leaves every index at once).
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable
from uuid import UUID

from dispatch.matching.index import DriverIndex

MAX_COARSER = 2  # resolutions coarser than the index of all, at most
_HYSTERESIS = 0.75  # how far (in powers of 7) the share must move past a boundary


class Fleet:
    """Available drivers, searchable by product. ``products``: the catalog's names."""

    def __init__(self, index: DriverIndex[UUID], products: Iterable[str]) -> None:
        self.all = index
        self.by_product: dict[str, DriverIndex[UUID]] = {
            name: DriverIndex(index.resolution, index.ttl_s, index.max_radius_m)
            for name in products
        }
        self._serves: dict[UUID, frozenset[str]] = {}  # each indexed driver's products

    @property
    def resolution(self) -> int:
        return self.all.resolution

    @property
    def max_radius_m(self) -> float:
        return self.all.max_radius_m

    def __len__(self) -> int:
        return len(self.all)

    def __contains__(self, driver_id: object) -> bool:
        return driver_id in self.all

    def serves(self, driver_id: UUID) -> frozenset[str]:
        """The products the indexed driver is searchable for (none if not indexed)."""
        return self._serves.get(driver_id, frozenset())

    def upsert(
        self, driver_id: UUID, lat: float, lng: float, at: float, products: frozenset[str]
    ) -> bool:
        """Index the driver at ``(lat, lng)`` pinged at ``at`` for ``products`` (those of
        the catalog; others are not searched); as ``DriverIndex.upsert``, True for new
        supply."""
        moved = self.all.upsert(driver_id, lat, lng, at)
        before = self._serves.get(driver_id)
        if before is not None and before != products:
            for name in before - products:
                self.by_product[name].remove(driver_id)
        for name in products:
            index = self.by_product.get(name)
            if index is not None:
                index.upsert(driver_id, lat, lng, at)
        self._serves[driver_id] = products
        return moved

    def remove(self, driver_id: UUID) -> bool:
        """Remove the driver from every index; True if it was indexed."""
        for name in self._serves.pop(driver_id, ()):
            self.by_product[name].remove(driver_id)
        return self.all.remove(driver_id)

    def expire(self, now: float) -> list[UUID]:
        """Remove and return the drivers silent for longer than the TTL (then rebalance)."""
        gone = self.all.expire(now)
        for driver_id in gone:
            for name in self._serves.pop(driver_id, ()):
                self.by_product[name].remove(driver_id)
        self.rebalance()
        return gone

    def rebalance(self) -> list[str]:
        """Rebuild, at the resolution its share of the drivers calls for, each product's
        index whose share has moved well past a boundary; returns their products."""
        total = len(self.all)
        rebuilt = []
        for name, index in self.by_product.items():
            if not len(index):
                continue
            coarser = math.log(total / len(index), 7) if total > len(index) else 0.0
            current = self.all.resolution - index.resolution
            if abs(coarser - current) < _HYSTERESIS:
                continue
            steps = min(MAX_COARSER, max(0, round(coarser)), self.all.resolution)
            if steps != current:
                self._rebuild(name, self.all.resolution - steps)
                rebuilt.append(name)
        return rebuilt

    def _rebuild(self, name: str, resolution: int) -> None:
        old = self.by_product[name]
        index = DriverIndex[UUID](resolution, old.ttl_s, old.max_radius_m)
        for driver_id, products in self._serves.items():
            if name in products:
                pos = self.all.position(driver_id)
                assert pos is not None
                index.upsert(driver_id, *pos)
        self.by_product[name] = index

    def position(self, driver_id: UUID) -> tuple[float, float, float] | None:
        return self.all.position(driver_id)

    def nearest(
        self,
        product: str,
        lat: float,
        lng: float,
        k: int,
        radius_m: float,
        now: float | None = None,
        exclude: Container[UUID] = frozenset(),
    ) -> list[tuple[UUID, float]]:
        """``DriverIndex.nearest`` over the drivers that serve ``product`` (none for a
        product not in the catalog)."""
        index = self.by_product.get(product)
        if index is None:
            return []
        return index.nearest(lat, lng, k, radius_m, now, exclude)
