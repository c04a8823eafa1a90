"""Fares of any size the core prices pass the wire: in a currency of no minor digits (VND,
ordinary rates), a long trip's quote of more than a million dong is estimated
(``POST /fares/estimate``), carried by ``POST /rides``, shown on ``GET /rides/{id}`` and
recorded when the ride completes; so is an unquoted ride's metered fare."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from api_world import PICKUP, SECRET, bearer
from fastapi.testclient import TestClient
from pydantic import SecretStr

from dispatch.api import AuthSettings, create_app
from dispatch.api.context import ApiOptions
from dispatch.api.settings import ApiLimits
from dispatch.bootstrap import build_runtime
from dispatch.settings import Settings
from schemas.fares import FareTermsData, FinalFareData
from tests.unit.api.test_quoted_rides import Town

VND = {"base": "12000", "per_km": "12000", "per_min": "500", "minimum": "25000"}
FARES = {"markets": {"san-francisco": {"currency": "VND", "products": {"standard": VND}}}}
FAR_DROPOFF = {"lat": 37.40, "lng": -121.95}  # about 58 km in a straight line


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Town]:
    clock, data_dir = [time.time()], tmp_path_factory.mktemp("vnd")
    settings = Settings(data_dir=data_dir, shards=1, offer_timeout_s=300, fares=FARES)
    runtime = build_runtime(settings, clock=lambda: clock[0])
    auth = AuthSettings(secret=SecretStr(SECRET), environment="production", token_ttl_s=86_400)
    options = ApiOptions(heartbeat_s=0.1, read_wait_s=0.5, command_timeout_s=5.0)
    limits = ApiLimits.model_construct(rate_limit_requests_per_s=0)
    with TestClient(create_app(runtime, auth, options, limits)) as client:
        tokens, ids = {}, {}
        for who, path in (("rider_r", "/riders"), ("driver", "/drivers")):
            r = client.post(path, json={"name": who, "home": PICKUP})
            assert r.status_code == 201, r.text
            ids[who] = r.json().get("rider_id") or r.json()["driver_id"]
            tokens[who] = bearer(r.json()["token"]["access_token"])
        assert client.post(f"/drivers/{ids['driver']}/online", headers=tokens["driver"]).is_success
        yield Town(client, clock, tokens, ids, data_dir)


def test_a_quoted_fare_of_millions_of_dong_is_estimated_requested_and_paid(town: Town) -> None:
    quote = town.estimate(dropoff=FAR_DROPOFF)
    assert quote["currency"] == "VND" and quote["total_minor"] > 1_000_000, quote
    assert quote["total"] == str(quote["total_minor"])  # no minor digits
    r = town.request(dropoff=FAR_DROPOFF, quote=quote["quote"])
    assert r.status_code == 201, r.text
    ride_id = r.json()["ride_id"]
    assert town.ride(ride_id)["fare_terms"]["quote"]["total"] == quote["total"]
    done = town.drive(ride_id, quote["duration_s"] + 1_800)  # slower than quoted
    fare = done["fare"]
    assert (fare["total"], fare["currency"], fare["basis"]) == (quote["total"], "VND", "quoted")
    assert int(fare["metered"]) > int(fare["total"])  # upfront: the slow trip costs no more
    assert FinalFareData.model_validate(fare) and FareTermsData.model_validate(done["fare_terms"])


def test_an_unquoted_fare_of_millions_of_dong_is_recorded_and_shown(town: Town) -> None:
    r = town.request(dropoff=FAR_DROPOFF)
    assert r.status_code == 201, r.text
    done = town.drive(r.json()["ride_id"], 5_400)
    fare = done["fare"]
    assert (fare["basis"], fare["currency"]) == ("metered", "VND")
    assert fare["total_minor"] > 1_000_000 and fare["total"] == str(fare["total_minor"])


def test_a_product_the_market_does_not_offer_is_refused_naming_those_it_does(town: Town) -> None:
    said = town.request(product="xl")
    assert said.status_code == 422, said.text
    assert said.json() == {
        "error": "product_not_offered",
        "reason": "'xl' is not offered in market 'san-francisco' (offered: standard)",
    }
    r = town.request()  # nothing was recorded: the rider is free to ask again
    assert r.status_code == 201, r.text
    cancel = town.client.post(
        f"/rides/{r.json()['ride_id']}/cancel", headers=town.tokens["rider_r"]
    )
    assert cancel.is_success, cancel.text
