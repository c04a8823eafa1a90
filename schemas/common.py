"""Shared field types for the wire schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Latitude = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False, examples=[37.7749])]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False, examples=[-122.4194])]
Name = Annotated[str, Field(min_length=1, max_length=200, examples=["Ada"])]
Reason = Annotated[str, Field(max_length=500)]


class LatLng(BaseModel):
    """A WGS84 coordinate in decimal degrees."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: Latitude
    lng: Longitude
