"""POST /drivers takes the driver's vehicle, checked against the product catalog; the
driver's view shows it; a ride request names a product of the catalog."""

from __future__ import annotations

from typing import Any

import pytest
from api_world import PICKUP, World, bearer

from dispatch.api.routers.drivers import VEHICLE_EXAMPLES

XL = {"product": "xl", "seats": 6, "accessible": False}


def register(world: World, vehicle: Any) -> Any:
    body = {"name": "Val", "home": PICKUP, "vehicle": vehicle}
    return world.client.post("/drivers", json=body)


def test_a_registered_vehicle_is_in_the_drivers_view(world: World) -> None:
    r = register(world, XL)
    assert r.status_code == 201, r.text
    driver_id, token = r.json()["driver_id"], r.json()["token"]["access_token"]
    after = r.json()["position"]  # read after the write (the views follow the log)
    seen = world.client.get(f"/drivers/{driver_id}?after={after}", headers=bearer(token))
    assert seen.status_code == 200, seen.text
    assert seen.json()["vehicle"] == XL


def test_a_driver_registered_without_a_vehicle_drives_the_default_one(world: World) -> None:
    a = world.ids["driver_a"]
    seen = world.client.get(f"/drivers/{a}", headers=world.tokens["driver_a"]).json()
    assert seen["vehicle"] == {"product": "standard", "seats": 4, "accessible": False}


@pytest.mark.parametrize(
    ("vehicle", "example"),
    [
        ({"product": "limo", "seats": 4}, "unknown_product"),
        ({"product": "xl", "seats": 4}, "does_not_qualify"),
    ],
)
def test_a_vehicle_that_cannot_be_registered_is_refused_with_the_reason(
    world: World, vehicle: dict[str, Any], example: str
) -> None:
    r = register(world, vehicle)
    assert r.status_code == 422
    assert r.json() == VEHICLE_EXAMPLES[example]["value"]  # the OpenAPI example


def test_an_inaccessible_vehicle_cannot_register_as_accessible(world: World) -> None:
    r = register(world, {"product": "accessible", "seats": 4, "accessible": False})
    assert r.status_code == 422
    assert r.json()["reason"] == (
        "body.vehicle: a vehicle of 4 seats, not accessible cannot serve 'accessible', "
        "which needs wheelchair access"
    )


@pytest.mark.parametrize(
    ("vehicle", "where"),
    [
        ({"product": "standard", "seats": 9}, "body.vehicle.seats"),
        ({"product": "standard", "seats": 0}, "body.vehicle.seats"),
        ({"product": "standard", "seats": "4"}, "body.vehicle.seats"),
        ({"product": "standard", "seats": 4, "accessible": "yes"}, "body.vehicle.accessible"),
        ({"product": "Standard!", "seats": 4}, "body.vehicle.product"),
        ({"seats": 4}, "body.vehicle.product"),
    ],
)
def test_a_malformed_vehicle_is_a_422_saying_where(
    world: World, vehicle: dict[str, Any], where: str
) -> None:
    r = register(world, vehicle)
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_request"
    assert r.json()["reason"].startswith(where)


def test_a_ride_in_an_unknown_product_is_refused_naming_the_products(world: World) -> None:
    body = {"pickup": PICKUP, "dropoff": PICKUP, "product": "limo"}
    r = world.client.post("/rides", headers=world.tokens["rider_s"], json=body)
    assert r.status_code == 422
    assert r.json()["reason"] == (
        "body.product: unknown product 'limo': the products are standard, xl, accessible"
    )


def test_seats_may_be_written_as_a_whole_json_number(world: World) -> None:
    r = register(world, {"product": "xl", "seats": 6.0})  # one integer to JSON Schema
    assert r.status_code == 201, r.text


def test_the_openapi_document_shows_vehicles_with_examples(world: World) -> None:
    document = world.client.get("/openapi.json").json()
    operation = document["paths"]["/drivers"]["post"]
    refusals = operation["responses"]["422"]["content"]["application/json"]["examples"]
    assert refusals == VEHICLE_EXAMPLES
    schemas = document["components"]["schemas"]
    assert {"product": "xl", "seats": 6, "accessible": False} in [
        e.get("vehicle") for e in schemas["RegisterDriver"]["examples"]
    ]
    assert schemas["DriverLocationView"]["properties"]["vehicle"]["$ref"].endswith("VehicleData")
