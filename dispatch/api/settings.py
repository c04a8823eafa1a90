"""The API's own limits, read from ``DISPATCH_*`` environment variables (or passed in).

Every limit the API enforces is here, with its default; ``docs/SECURITY.md`` says what
each one protects.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ApiLimits(BaseSettings):
    """Rate limits (per API process), trusted proxies, body size and server timeouts."""

    model_config = SettingsConfigDict(
        env_prefix="DISPATCH_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    rate_limit_registrations_per_min: int = Field(
        default=20, ge=0, description="Registrations per client address a minute (0: no limit)."
    )
    rate_limit_requests_per_s: int = Field(
        default=20, ge=0, description="Requests per authenticated caller a second (0: no limit)."
    )
    trusted_proxies: Annotated[tuple[Network, ...], NoDecode] = Field(
        default=(),
        description="Addresses or networks (comma-separated) of proxies whose "
        "X-Forwarded-For names the client; from any other peer the header is ignored.",
    )
    max_body_bytes: int = Field(default=1 << 20, ge=1_024, le=64 << 20)
    header_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="A request's headers must arrive within this."
    )
    body_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="A request's body must arrive within this."
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            try:
                return tuple(ipaddress.ip_network(str(v), strict=False) for v in value)
            except ValueError as error:
                raise ValueError(f"DISPATCH_TRUSTED_PROXIES: {error}") from None
        return value


class OpsPageSettings(BaseSettings):
    """The operations page at ``/ops`` (``dispatch.api.ops_page``; docs/OPERATIONS.md)."""

    model_config = SettingsConfigDict(
        env_prefix="DISPATCH_OPS_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    tile_url: str | None = Field(
        default=None,
        description="Map tiles under the page's hexagons and points, as an XYZ template "
        "(`https://tiles.example/{z}/{x}/{y}.png`); unset (the default): a plain background, "
        "and the page fetches nothing but the app's own files.",
    )
    session_ttl_s: int = Field(
        default=900, ge=30, le=12 * 3600,
        description="How long the page's session cookie lasts (never past the token's expiry).",
    )  # fmt: skip
    refresh_s: float = Field(
        default=1.0, gt=0, le=60, description="How often the page's stream sends a new state."
    )
    max_drivers: int = Field(
        default=5_000, ge=1, description="Drivers drawn at most (first by id; the rest counted)."
    )
    max_rides: int = Field(default=5_000, ge=1, description="Rides in flight drawn at most.")
    past_timeout_s: float = Field(
        default=60.0, gt=0, le=600,
        description="How long a past state (`/ops/state?at=`, computed by `dispatch replay "
        "state --ops` in a process of its own) may take before the page is told 504.",
    )  # fmt: skip

    @field_validator("tile_url")
    @classmethod
    def _tile_template(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("https://", "http://")) or not all(
            part in value for part in ("{z}", "{x}", "{y}")
        ):
            raise ValueError("DISPATCH_OPS_TILE_URL: an http(s) URL with {z}, {x} and {y}")
        return value
