"""The product catalog at the API: a product or a vehicle that is not one the catalog
knows is refused before anything is sent (docs/MARKETPLACE.md, "The product lever")."""

from __future__ import annotations

from dispatch.api.context import ApiContext
from dispatch.api.errors import ApiError
from schemas.common import VehicleData


def require_product(ctx: ApiContext, product: str) -> None:
    """422 ``invalid_request`` naming the catalog's products, for one it does not list."""
    try:
        ctx.runtime.catalog.check_product(product)
    except ValueError as error:
        raise ApiError(422, "invalid_request", f"body.product: {error}") from None


def require_vehicle(ctx: ApiContext, vehicle: VehicleData | None) -> None:
    """422 ``invalid_vehicle`` with the reason, for a vehicle that cannot be registered:
    an unknown product (naming the known ones), or one it does not qualify for."""
    if vehicle is None:
        return
    try:
        ctx.runtime.catalog.check(vehicle.as_vehicle())
    except ValueError as error:
        raise ApiError(422, "invalid_vehicle", f"body.vehicle: {error}") from None
