"""Shared field types for the wire schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from dispatch.domain.geo import MAX_LAT, MAX_LNG, MIN_LAT, MIN_LNG

# The bounds are the domain's (dispatch.domain.geo), so the wire refuses what it refuses.
Latitude = Annotated[float, Field(ge=MIN_LAT, le=MAX_LAT, allow_inf_nan=False, examples=[37.7749])]
Longitude = Annotated[
    float, Field(ge=MIN_LNG, le=MAX_LNG, allow_inf_nan=False, examples=[-122.4194])
]
Name = Annotated[str, Field(min_length=1, max_length=200, examples=["Ada"])]
Reason = Annotated[str, Field(max_length=500)]


class LatLng(BaseModel):
    """A WGS84 coordinate in decimal degrees."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: Latitude
    lng: Longitude
