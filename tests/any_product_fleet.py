"""A fleet of drivers that each serve every product: for tests of a strategy's choices,
where products are beside the point (tests/unit/matching/test_products_in_matching.py has
the products)."""

from __future__ import annotations

from uuid import UUID

from dispatch.domain.products import DEFAULT_CATALOG
from dispatch.matching.fleet import Fleet
from dispatch.matching.index import DriverIndex

ALL_PRODUCTS = frozenset(DEFAULT_CATALOG.names)


class AnyProductFleet(Fleet):
    def __init__(self, resolution: int = 9, ttl_s: float = 30.0) -> None:
        super().__init__(DriverIndex[UUID](resolution, ttl_s), ALL_PRODUCTS)

    def add(self, driver_id: UUID, lat: float, lng: float, at: float) -> bool:
        return self.upsert(driver_id, lat, lng, at, ALL_PRODUCTS)
