"""Shared field types for the wire schemas."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

from dispatch.domain.geo import MAX_LAT, MAX_LNG, MIN_LAT, MIN_LNG
from dispatch.domain.operators import OPERATOR_NAME_PATTERN
from dispatch.domain.products import MAX_SEATS, MIN_SEATS, PRODUCT_NAME, Vehicle

# The bounds are the domain's (dispatch.domain.geo), so the wire refuses what it refuses.
Latitude = Annotated[float, Field(ge=MIN_LAT, le=MAX_LAT, allow_inf_nan=False, examples=[37.7749])]
Longitude = Annotated[
    float, Field(ge=MIN_LNG, le=MAX_LNG, allow_inf_nan=False, examples=[-122.4194])
]
Name = Annotated[str, Field(min_length=1, max_length=200, examples=["Ada"])]
Reason = Annotated[str, Field(max_length=500)]
# A product's name: the catalog is configuration (DISPATCH_PRODUCTS), so any well-formed
# name may name one; the defaults are standard, xl and accessible.
ProductName = Annotated[
    str, Field(pattern=PRODUCT_NAME, max_length=32, examples=["standard", "xl", "accessible"])
]
OperatorName = Annotated[str, Field(pattern=OPERATOR_NAME_PATTERN, max_length=32)]


class OneOf:
    """Restricts a string to a vocabulary the domain owns (its enum members or strings):
    validated and published (a JSON Schema ``enum``, in the given order) exactly as a
    ``Literal`` of the same strings, so the wire never writes the vocabulary out again."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values = tuple(str(value) for value in values)  # an enum member's value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.literal_schema(list(self.values))


class LatLng(BaseModel):
    """A WGS84 coordinate in decimal degrees."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: Latitude
    lng: Longitude


def _whole(value: object) -> object:
    """A JSON number that is whole (``4`` or ``4.0``: one integer to JSON Schema) as an int;
    anything else as it is, for the strict check to refuse (``"4"``, ``4.5``, ``true``)."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole), Field(strict=True)]


class VehicleData(BaseModel):
    """A driver's vehicle: the product it is registered for (one of the catalog's,
    DISPATCH_PRODUCTS), its passenger seats, and whether it is wheelchair accessible. It
    serves every product it qualifies for (docs/MARKETPLACE.md, "The product lever")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    product: ProductName
    seats: WholeNumber = Field(ge=MIN_SEATS, le=MAX_SEATS, examples=[4, 6])
    accessible: bool = Field(default=False, strict=True)

    def as_vehicle(self) -> Vehicle:
        return Vehicle(self.product, self.seats, self.accessible)

    @classmethod
    def of(cls, vehicle: Vehicle) -> VehicleData:
        return cls(product=vehicle.product, seats=vehicle.seats, accessible=vehicle.accessible)
