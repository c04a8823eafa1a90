"""``POST /fares/estimate``: a rider gets a signed quote of the trip's distance, duration,
surge and total in the pickup market's currency, with the rule that priced it and the
places priced; bad input, an unknown product, a product the market does not offer, a
pickup outside every market with rules and a trip longer than the longest priced are 422s
with the reason; nothing reaches the log; the OpenAPI document shows examples."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from api_world import DROPOFF, PICKUP, SECRET, World, bearer
from fastapi.testclient import TestClient
from pydantic import SecretStr

from dispatch.api import AuthSettings, create_app
from dispatch.api.context import ApiOptions
from dispatch.api.routers.fares import NO_FARE_EXAMPLES
from dispatch.api.settings import ApiLimits
from dispatch.bootstrap import build_runtime
from dispatch.domain.fares import price
from dispatch.domain.products import PRODUCT_NAME
from dispatch.settings import Settings
from schemas import api

TRIP = {"pickup": PICKUP, "dropoff": DROPOFF}
TOKYO = {"lat": 35.6812, "lng": 139.7671}
YOKOHAMA = {"lat": 35.4437, "lng": 139.6380}
SANTA_CRUZ = {"lat": 36.9741, "lng": -122.0308}  # 95 km from the pickup, outside every market


def estimate(world: World, body: Any, who: str = "rider_r") -> Any:
    return world.client.post("/fares/estimate", headers=world.tokens[who], json=body)


def test_a_rider_gets_a_quote_of_the_trip(world: World) -> None:
    r = estimate(world, TRIP | {"product": "xl"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {
        "quote_id", "quote", "product", "pickup", "dropoff", "market", "distance_m",
        "duration_s", "estimated_by", "rule", "minimum_applied", "surge", "total",
        "total_minor", "currency", "rules_version", "issued_at", "expires_at",
    }  # fmt: skip
    assert (body["pickup"], body["dropoff"]) == (PICKUP, DROPOFF)  # the places priced
    assert (body["product"], body["market"], body["currency"]) == ("xl", "san-francisco", "USD")
    assert (body["surge"], body["estimated_by"]) == ("1.00", "straight_line")
    assert body["distance_m"] > 0 and body["duration_s"] > 0
    desk = world.client.app.state.ctx.fares  # type: ignore[attr-defined]
    rule = desk.book.rule_for("san-francisco", "xl")
    assert Decimal(body["total"]) == price(rule, body["distance_m"], body["duration_s"])
    assert body["total_minor"] == int(Decimal(body["total"]) * 100)
    assert body["rules_version"] == desk.book.version
    quote = desk.check(
        body["quote"],
        world.ids["rider_r"],
        (PICKUP["lat"], PICKUP["lng"]),
        (DROPOFF["lat"], DROPOFF["lng"]),
        "xl",
        time.time(),
    )
    assert str(quote.quote_id) == body["quote_id"] and str(quote.total) == body["total"]
    assert (r.headers["Cache-Control"], r.headers["Pragma"]) == ("no-store", "no-cache")


def test_the_answer_explains_the_total_by_the_rule_that_priced_it(world: World) -> None:
    body = estimate(world, TRIP | {"product": "xl"}).json()
    assert body["rule"] == {"base": "4.00", "per_km": "1.80", "per_min": "0.45",
                            "minimum": "10.00"}  # fmt: skip
    rule = {name: Decimal(amount) for name, amount in body["rule"].items()}
    metered = (
        rule["base"]
        + rule["per_km"] * body["distance_m"] / 1000
        + rule["per_min"] * Decimal(body["duration_s"]) / 60
    )
    assert body["minimum_applied"] is (metered < rule["minimum"])
    exact = max(rule["minimum"], metered) * Decimal(body["surge"])
    assert abs(exact - Decimal(body["total"])) <= Decimal("0.005")


def test_a_short_trip_says_the_minimum_applied(world: World) -> None:
    body = estimate(world, {"pickup": PICKUP, "dropoff": PICKUP}).json()
    assert (body["minimum_applied"], body["total"], body["total_minor"]) == (True, "7.00", 700)


def test_the_product_defaults_to_standard(world: World) -> None:
    assert estimate(world, TRIP).json()["product"] == "standard"


def test_a_quote_is_not_a_bearer_token_at_the_api(world: World) -> None:
    quote = estimate(world, TRIP).json()["quote"]
    r = world.client.post("/fares/estimate", headers=bearer(quote), json=TRIP)
    assert r.status_code == 401
    assert "not for this API" in r.json()["reason"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"pickup": {"lat": 91, "lng": 0}, "dropoff": DROPOFF}, "body.pickup.lat"),
        ({"pickup": {"lat": "37.7", "lng": 0}, "dropoff": DROPOFF}, "body.pickup.lat"),
        ({"pickup": PICKUP}, "body.dropoff"),
        (TRIP | {"product": "limo"}, "body.product"),
        (TRIP | {"product": None}, "body.product"),
        (TRIP | {"surge": 0.5}, "body.surge"),
    ],
)
def test_bad_input_is_a_422_with_the_reason(world: World, body: Any, where: str) -> None:
    r = estimate(world, body)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_request"
    assert r.json()["reason"].startswith(where)


def test_an_estimate_shares_the_trip_of_a_ride_request_and_nothing_more() -> None:
    """A field a ride request gains (the quote it carries) is not an estimate's."""
    assert not issubclass(api.EstimateFare, api.RequestRide)
    assert set(api.RequestRide.model_fields) == {
        "pickup", "dropoff", "product", "quote", "scheduled_for", "shared", "seats"
    }  # fmt: skip
    assert set(api.EstimateFare.model_fields) == {"pickup", "dropoff", "product"}


def test_an_unknown_product_is_refused_naming_the_products(world: World) -> None:
    r = estimate(world, TRIP | {"product": "limo"})
    assert r.json()["reason"] == (
        "body.product: unknown product 'limo': the products are standard, xl, accessible"
    )


def test_a_pickup_outside_every_market_gets_no_quote_by_default(world: World) -> None:
    r = estimate(world, {"pickup": TOKYO, "dropoff": TOKYO})
    assert r.status_code == 422
    assert r.json() == NO_FARE_EXAMPLES["no_fare_rules"]["value"]  # the OpenAPI example


def test_a_trip_ending_outside_the_pickups_market_is_priced_by_the_pickups(
    world: World,
) -> None:
    r = estimate(world, {"pickup": PICKUP, "dropoff": SANTA_CRUZ})
    assert r.status_code == 200 and r.json()["market"] == "san-francisco"
    assert 100_000 < r.json()["distance_m"] < 200_000


def test_a_trip_longer_than_the_longest_priced_gets_no_quote(world: World) -> None:
    r = estimate(world, {"pickup": PICKUP, "dropoff": TOKYO})
    assert r.status_code == 422
    assert r.json() == {
        "error": "trip_too_long",
        "reason": "the trip is 8,265.7 km in a straight line, longer than the 200 km a quote "
        "may price (DISPATCH_MAX_TRIP_KM)",
    }
    assert r.json() == NO_FARE_EXAMPLES["trip_too_long"]["value"]  # the OpenAPI example


def test_a_quote_records_nothing(world: World) -> None:
    runtime = world.client.app.state.ctx.runtime  # type: ignore[attr-defined]
    shards = range(runtime.settings.shards)
    before = [runtime.head(shard) for shard in shards]
    for _ in range(3):
        assert estimate(world, TRIP).status_code == 200
    assert [runtime.head(shard) for shard in shards] == before


def test_the_openapi_document_shows_the_estimate_with_examples(world: World) -> None:
    document = world.client.get("/openapi.json").json()
    operation = document["paths"]["/fares/estimate"]["post"]
    assert operation["tags"] == ["fares"]
    assert {"200", "401", "403", "413", "422", "429"} <= set(operation["responses"])
    schemas = document["components"]["schemas"]
    asked, answer = schemas["EstimateFare"], schemas["FareQuote"]
    assert asked["examples"][0]["product"] == "standard"
    product = asked["properties"]["product"]  # the catalog is configuration: a name
    assert product["pattern"] == PRODUCT_NAME
    assert product["examples"] == ["standard", "xl", "accessible"]
    assert answer["examples"][0]["total"] == "7.36"
    assert answer["properties"]["total"]["type"] == "string"  # money is never a float
    assert set(answer["required"]) >= {"quote_id", "quote", "total", "currency", "expires_at"}
    refusals = operation["responses"]["422"]["content"]["application/json"]["examples"]
    codes = {"product_not_offered", "no_fare_rules", "outside_service_area", "trip_too_long"}
    assert set(refusals) == codes
    assert all(e["value"]["error"] == code for code, e in refusals.items())


SF_ONLY_STANDARD = {
    "markets": {
        "san-francisco": {
            "currency": "USD",
            "products": {
                "standard": {"base": "3", "per_km": "2", "per_min": "0.5", "minimum": "5"}
            },
        }
    },
    "elsewhere": {
        "currency": "JPY",
        "products": {"standard": {"base": "500", "per_km": "300", "per_min": "50",
                                  "minimum": "700"}},
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Any]]:
    """An API whose rules offer standard only, and price places outside the market too,
    with a request limit of one a second."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("fares"), shards=1,
                        fares=SF_ONLY_STANDARD, quote_ttl_s=60)  # fmt: skip
    runtime = build_runtime(settings, clock=time.time)
    auth = AuthSettings(secret=SecretStr(SECRET), environment="production")
    limits = ApiLimits.model_validate({"rate_limit_requests_per_s": 1})
    app = create_app(runtime, auth, ApiOptions(command_timeout_s=5.0), limits)
    with TestClient(app) as client:
        rider = client.post("/riders", json={"name": "Quinn"}).json()
        yield client, bearer(rider["token"]["access_token"])


def _estimate(configured: tuple[TestClient, Any], body: Any) -> Any:
    client, headers = configured
    time.sleep(1.05)  # one request a second
    return client.post("/fares/estimate", headers=headers, json=body)


def test_a_product_the_market_does_not_offer_is_a_422_with_the_reason(
    configured: tuple[TestClient, Any],
) -> None:
    r = _estimate(configured, TRIP | {"product": "accessible"})
    assert r.status_code == 422
    assert r.json() == {
        "error": "product_not_offered",
        "reason": "'accessible' is not offered in market 'san-francisco' (offered: standard)",
    }
    assert r.json() == NO_FARE_EXAMPLES["product_not_offered"]["value"]  # the OpenAPI example


def test_rules_for_elsewhere_price_a_pickup_outside_every_market(
    configured: tuple[TestClient, Any],
) -> None:
    r = _estimate(configured, {"pickup": TOKYO, "dropoff": YOKOHAMA})
    assert r.status_code == 200, r.text
    assert (r.json()["market"], r.json()["currency"]) == (None, "JPY")
    assert "." not in r.json()["total"]  # yen have no minor unit


TIMES = ("issued_at", "expires_at")


def test_the_quote_lives_as_long_as_the_settings_say(configured: tuple[TestClient, Any]) -> None:
    asked = time.time()
    body = _estimate(configured, TRIP).json()
    issued, expires = (datetime.fromisoformat(body[k]).timestamp() for k in TIMES)
    assert int(asked) <= issued <= time.time() and expires - issued == 60


def test_estimates_count_against_the_callers_request_limit(
    configured: tuple[TestClient, Any],
) -> None:
    client, headers = configured
    time.sleep(1.05)
    answers = [client.post("/fares/estimate", headers=headers, json=TRIP) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 429]
    assert answers[1].json()["error"] == "rate_limited" and answers[1].headers["Retry-After"]


def test_a_bad_fares_file_stops_the_settings(tmp_path: Path) -> None:
    (tmp_path / "fares.json").write_text('{"markets": {"atlantis": {}}}')
    with pytest.raises(ValueError, match="atlantis"):
        Settings(fares_file=tmp_path / "fares.json")
