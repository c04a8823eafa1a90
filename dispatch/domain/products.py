"""Products: the kinds of ride a rider may ask for, and which vehicles serve each.

A product states what a vehicle needs to serve it (``ProductSpec``: at least
``min_seats`` passenger seats, and wheelchair access when ``accessible``). A driver
registers one vehicle (``Vehicle``: the product it is registered for, its seats and
whether it is accessible), which must qualify for that product; the vehicle then serves
*every* product of the catalog it qualifies for (``Catalog.serves``): with the default
catalog a 6-seat car registered as ``xl`` serves ``xl`` and ``standard``, an accessible
4-seat van serves ``accessible`` and ``standard``, and a 3-seat accessible car only
``accessible``. The catalog is configuration (``DISPATCH_PRODUCTS``); which products a
vehicle serves is worked out from the vehicle under the catalog in force, never stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# A product's name: what rides, quotes, fare rules and vehicles name it by.
PRODUCT_NAME = r"^[a-z][a-z0-9_]{0,31}$"
_NAME = re.compile(PRODUCT_NAME)
MIN_SEATS, MAX_SEATS = 1, 8  # passenger seats of a vehicle


def check_product_name(name: object) -> str:
    """``name`` if it is a well-formed product name, else ValueError saying why."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"product name {str(name)[:40]!r} must be 1 to 32 lower-case letters, digits "
            "or _, starting with a letter"
        )
    return name


@dataclass(frozen=True, slots=True)
class ProductSpec:
    """What a vehicle needs to serve product ``name``."""

    name: str
    min_seats: int = 4
    accessible: bool = False  # the vehicle must be wheelchair accessible

    def __post_init__(self) -> None:
        check_product_name(self.name)
        if not MIN_SEATS <= self.min_seats <= MAX_SEATS:
            raise ValueError(
                f"{self.name}: min_seats must be from {MIN_SEATS} to {MAX_SEATS}, "
                f"got {self.min_seats}"
            )

    def qualifies(self, vehicle: Vehicle) -> bool:
        return vehicle.seats >= self.min_seats and (vehicle.accessible or not self.accessible)


@dataclass(frozen=True, slots=True)
class Vehicle:
    """A driver's vehicle: the product it is registered for, its passenger seats, and
    whether it is wheelchair accessible."""

    product: str
    seats: int
    accessible: bool

    def to_data(self) -> dict[str, Any]:
        return {"product": self.product, "seats": self.seats, "accessible": self.accessible}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Vehicle:
        return cls(str(data["product"]), int(data["seats"]), bool(data["accessible"]))


# The vehicle of a driver registered before vehicles were (an upcast event, an older
# checkpoint or availability record): a standard car of 4 seats.
DEFAULT_VEHICLE = Vehicle("standard", 4, False)


class Catalog:
    """The products offered, in their configured order, and the rule that says which a
    vehicle serves."""

    __slots__ = ("_serves", "specs")

    def __init__(self, specs: Iterable[ProductSpec]) -> None:
        self.specs: dict[str, ProductSpec] = {}
        for spec in specs:
            if spec.name in self.specs:
                raise ValueError(f"product {spec.name!r} is listed twice")
            self.specs[spec.name] = spec
        if not self.specs:
            raise ValueError("the catalog needs at least one product")
        self._serves: dict[Vehicle, frozenset[str]] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.specs)

    def known(self) -> str:
        return ", ".join(self.specs)

    def check_product(self, name: str) -> None:
        """ValueError naming the known products when ``name`` is not one of them."""
        if name not in self.specs:
            raise ValueError(f"unknown product {name[:40]!r}: the products are {self.known()}")

    def check(self, vehicle: Vehicle) -> None:
        """ValueError with the reason when ``vehicle`` may not be registered: an unknown
        product, seats out of range, or a vehicle that does not qualify for its product."""
        self.check_product(vehicle.product)
        if not MIN_SEATS <= vehicle.seats <= MAX_SEATS:
            raise ValueError(f"seats must be from {MIN_SEATS} to {MAX_SEATS}, got {vehicle.seats}")
        spec = self.specs[vehicle.product]
        if not spec.qualifies(vehicle):
            needs = " and ".join(
                ([f"at least {spec.min_seats} seats"] if spec.min_seats > MIN_SEATS else [])
                + (["wheelchair access"] if spec.accessible else [])
            )
            raise ValueError(
                f"a vehicle of {vehicle.seats} seats"
                f"{', accessible' if vehicle.accessible else ', not accessible'} cannot "
                f"serve {vehicle.product!r}, which needs {needs}"
            )

    def serves(self, vehicle: Vehicle) -> frozenset[str]:
        """Every product ``vehicle`` qualifies for (its own among them when it was
        registered under this catalog)."""
        found = self._serves.get(vehicle)
        if found is None:
            found = frozenset(n for n, s in self.specs.items() if s.qualifies(vehicle))
            self._serves[vehicle] = found
        return found


DEFAULT_CATALOG = Catalog(
    (
        ProductSpec("standard", min_seats=4),
        ProductSpec("xl", min_seats=6),
        ProductSpec("accessible", min_seats=1, accessible=True),
    )
)


def in_catalog_order(names: Iterable[str]) -> list[str]:
    """``names`` with the default catalog's first, in its order, then the rest sorted: a
    stable order for anything keyed by product (fare rules' canonical form and version)."""
    given = set(names)
    first = [n for n in DEFAULT_CATALOG.names if n in given]
    return first + sorted(given - set(first))


def is_product_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None
