"""``POST /rides`` with a quote: a ride carrying a valid quote of its rider's for its trip
and product keeps the quoted price (its requested event records the quote); a tampered,
expired, another rider's or mismatched quote is a 422 with its code and reason and records
nothing; a completed ride shows its trip and final fare on ``GET /rides/{id}``; a ride
without a quote is priced by the rules in force; the OpenAPI document has the examples."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from api_world import DROPOFF, PICKUP, SECRET, bearer
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from dispatch.api import AuthSettings, create_app
from dispatch.api.context import ApiOptions
from dispatch.api.routers.riders import QUOTE_EXAMPLES
from dispatch.api.settings import ApiLimits
from dispatch.bootstrap import build_runtime
from dispatch.cli import app as cli
from dispatch.settings import Settings

NEAR_PICKUP = {"lat": 37.7751, "lng": -122.4194}  # 22 m north: within the tolerance
FAR_PICKUP = {"lat": 37.7760, "lng": -122.4194}  # 122 m north: beyond it
TRIP_S = 300  # the bearer tokens live 15 min of the clock the tests move on


@dataclass
class Town:
    client: TestClient
    clock: list[float]  # the engine's clock (epoch seconds): tests move it on
    tokens: dict[str, dict[str, str]]
    ids: dict[str, str]
    data_dir: Path

    def estimate(self, who: str = "rider_r", **trip: Any) -> dict[str, Any]:
        body = {"pickup": PICKUP, "dropoff": DROPOFF} | trip
        r = self.client.post("/fares/estimate", headers=self.tokens[who], json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def request(self, who: str = "rider_r", **body: Any) -> Any:
        ride = {"pickup": PICKUP, "dropoff": DROPOFF} | body
        return self.client.post("/rides", headers=self.tokens[who], json=ride)

    def ride(self, ride_id: str, who: str = "rider_r") -> dict[str, Any]:
        views = self.client.app.state.ctx.runtime.views  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while views.rides.get(ride_id) is None:  # the view follows the log
            assert time.monotonic() < deadline, f"{ride_id} never reached the rides view"
            time.sleep(0.02)
        r = self.client.get(f"/rides/{ride_id}", headers=self.tokens[who])
        assert r.status_code == 200, r.text
        return r.json()

    def wait_for(self, ride_id: str, what: str, value: Any) -> dict[str, Any]:
        views = self.client.app.state.ctx.runtime.views  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while getattr(views.rides.get(ride_id), what, None) != value:
            assert time.monotonic() < deadline, f"{what} of {ride_id} never became {value}"
            time.sleep(0.02)
        return self.ride(ride_id)

    def drive(self, ride_id: str, seconds: float) -> dict[str, Any]:
        """The driver takes the ride, drives it ``seconds`` and completes it."""
        driver, headers = self.ids["driver"], self.tokens["driver"]
        ping = self.client.post(f"/drivers/{driver}/location", headers=headers, json=PICKUP)
        assert ping.status_code == 202, ping.text  # fresh: the clock moved on since the last
        self.wait_for(ride_id, "offered_to", driver)
        for action in ("accept", "arrived", "start"):
            r = self.client.post(f"/rides/{ride_id}/{action}", headers=headers)
            assert r.is_success, r.text
        self.clock[0] += seconds
        assert self.client.post(f"/rides/{ride_id}/complete", headers=headers).is_success
        return self.wait_for(ride_id, "status", "completed")


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Town]:
    clock, data_dir = [time.time()], tmp_path_factory.mktemp("quoted")
    settings = Settings(data_dir=data_dir, shards=2, offer_timeout_s=300)
    runtime = build_runtime(settings, clock=lambda: clock[0])
    auth = AuthSettings(secret=SecretStr(SECRET), environment="production")
    options = ApiOptions(heartbeat_s=0.1, read_wait_s=0.5, command_timeout_s=5.0)
    limits = ApiLimits.model_construct(rate_limit_requests_per_s=0)  # many requests a test
    with TestClient(create_app(runtime, auth, options, limits)) as client:
        tokens, ids = {}, {}
        for who, path in (("rider_r", "/riders"), ("rider_s", "/riders"), ("driver", "/drivers")):
            r = client.post(path, json={"name": who, "home": PICKUP})
            assert r.status_code == 201, r.text
            ids[who] = r.json().get("rider_id") or r.json()["driver_id"]
            tokens[who] = bearer(r.json()["token"]["access_token"])
        driver = ids["driver"]
        assert client.post(f"/drivers/{driver}/online", headers=tokens["driver"]).is_success
        yield Town(client, clock, tokens, ids, data_dir)


def refused(r: Any, code: str, reason: str) -> None:
    assert r.status_code == 422, r.text
    assert r.json()["error"] == code and reason in r.json()["reason"], r.json()


def test_a_ride_with_its_quote_keeps_the_quoted_price_and_records_the_quote(town: Town) -> None:
    quote = town.estimate()
    r = town.request(quote=quote["quote"], pickup=NEAR_PICKUP)
    assert r.status_code == 201, r.text
    ride_id = r.json()["ride_id"]
    terms = town.ride(ride_id)["fare_terms"]
    assert terms["quote"] == {
        "quote_id": quote["quote_id"], "total": quote["total"],
        "total_minor": quote["total_minor"], "distance_m": quote["distance_m"],
        "duration_s": quote["duration_s"], "estimated_by": quote["estimated_by"],
        "minimum_applied": quote["minimum_applied"],
        "expires_at": int(datetime.fromisoformat(quote["expires_at"]).timestamp()),
    }  # fmt: skip
    assert (terms["rules_version"], terms["rule"], terms["surge"], terms["currency"]) == (
        quote["rules_version"], quote["rule"], quote["surge"], quote["currency"])  # fmt: skip
    (requested,) = [e for e in town.ride(ride_id)["timeline"] if e["event"] == "Ride.Requested"]
    assert requested["data"]["fare"] == terms  # in the log, not only in the view

    # Driven as quoted, about: the rider pays the quoted total (as for any trip).
    done = town.drive(ride_id, quote["duration_s"])
    assert done["trip"]["distance_m"] > 0
    assert done["trip"]["duration_s"] == quote["duration_s"]
    found_by = {"distance": "straight_line", "duration": "clock", "road_graph": None}
    assert done["trip"]["found_by"] == found_by  # no road network here
    assert (done["fare"]["basis"], done["fare"]["total"]) == ("quoted", quote["total"])

    # The log alone explains it: dispatch replay fare.
    replay = ["replay", "fare", ride_id, "--data-dir", str(town.data_dir)]
    said = CliRunner().invoke(cli, replay)
    assert said.exit_code == 0, said.output
    assert f"rules {quote['rules_version']}, USD" in said.output
    assert f"quote {quote['quote_id']}: {quote['distance_m']:,} m" in said.output
    assert f"trip driven: {done['trip']['distance_m']:,} m (straight_line" in said.output
    assert "metered: max(7.00, 2.50 + 1.10 x " in said.output
    assert f"pays {quote['total']} USD: the quoted total, upfront" in said.output
    explained = CliRunner().invoke(cli, [*replay, "--json"])
    facts = json.loads(explained.output)
    assert facts["agrees"] is True and facts["recorded"] == done["fare"]


# 3,750 m north of PICKUP by the straight-line estimate (great circle x 1.35): with 5 min,
# 2.50 + 1.10 x 3.75 + 0.30 x 5 = 8.125, a half cent: 8.13 half up (the rule), 8.12 half even
HALF_CENT_DROPOFF = {"lat": 37.799881, "lng": -122.4194}


def test_a_ride_without_a_quote_pays_the_metered_fare_of_the_rules_in_force(town: Town) -> None:
    r = town.request(dropoff=HALF_CENT_DROPOFF)
    assert r.status_code == 201, r.text
    ride_id = r.json()["ride_id"]
    terms = town.ride(ride_id)["fare_terms"]
    desk = town.client.app.state.ctx.fares  # type: ignore[attr-defined]
    assert (terms["quote"], terms["rules_version"], terms["product"], terms["road_factor"]) == (
        None, desk.book.version, "standard", "1.35")  # fmt: skip
    done = town.drive(ride_id, TRIP_S)
    trip, fare = done["trip"], done["fare"]
    assert (trip["distance_m"], trip["duration_s"]) == (3_750, TRIP_S)
    rule = {name: Decimal(amount) for name, amount in terms["rule"].items()}
    metered = max(rule["minimum"], rule["base"] + rule["per_km"] * trip["distance_m"] / 1000
                  + rule["per_min"] * Decimal(TRIP_S) / 60)  # fmt: skip
    assert metered == Decimal("8.125")
    cents = Decimal("0.01")
    assert (fare["basis"], fare["total"]) == (
        "metered",
        str(metered.quantize(cents, ROUND_HALF_UP)),
    )
    assert fare["total"] == "8.13" != str(metered.quantize(cents, ROUND_HALF_EVEN))


def test_a_tampered_quote_is_refused_and_nothing_is_recorded(town: Town) -> None:
    token = town.estimate()["quote"]
    head, claims, signature = token.split(".")
    tampered = ".".join((head, claims, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA"
                                                          else "BBBB")))  # fmt: skip
    refused(town.request(quote=tampered), "quote_invalid", "bad signature")
    refused(town.request(quote="not-a-quote"), "quote_invalid", "malformed quote")
    r = town.request(quote=town.estimate()["quote"])  # the rider was left free
    assert r.status_code == 201, r.text
    cancel = town.client.post(
        f"/rides/{r.json()['ride_id']}/cancel", headers=town.tokens["rider_r"]
    )
    assert cancel.is_success, cancel.text


def test_an_expired_quote_is_refused(town: Town) -> None:
    desk = town.client.app.state.ctx.fares  # type: ignore[attr-defined]
    place = (PICKUP["lat"], PICKUP["lng"]), (DROPOFF["lat"], DROPOFF["lng"])
    issued = desk.estimate(town.ids["rider_r"], *place, "standard", town.clock[0] - 400)
    # issued 400 s ago: past its 300 s and the 30 s leeway
    refused(town.request(quote=issued.token), "quote_expired", "quote expired")


def test_another_riders_quote_is_refused(town: Town) -> None:
    token = town.estimate(who="rider_s")["quote"]
    refused(town.request(quote=token), "quote_mismatch", "issued to another rider")


def test_a_quote_for_another_trip_or_product_is_refused(town: Town) -> None:
    token = town.estimate()["quote"]
    far = "the request's pickup (37.776, -122.4194) is 122 m from the quote's (37.7749, "
    refused(town.request(quote=token, pickup=FAR_PICKUP), "quote_mismatch", far)
    refused(town.request(quote=token, product="xl"), "quote_mismatch",
            "the quote is for 'standard', the request for 'xl'")  # fmt: skip


def test_the_openapi_document_shows_a_ride_request_with_a_quote(town: Town) -> None:
    schemas = town.client.get("/openapi.json").json()["components"]["schemas"]
    examples = schemas["RequestRide"]["examples"]
    assert any("quote" in example for example in examples)
    assert {"fare_terms", "trip", "fare"} <= set(schemas["RideView"]["properties"])
    refusals = town.client.get("/openapi.json").json()["paths"]["/rides"]["post"]["responses"]
    shown = refusals["422"]["content"]["application/json"]["examples"]
    codes = {"quote_invalid", "quote_expired", "quote_mismatch", "product_not_offered",
             "no_fare_rules", "outside_service_area"}  # fmt: skip
    assert set(shown) == set(QUOTE_EXAMPLES) == codes


def test_the_refusals_shown_are_the_answers_the_api_gives(town: Town) -> None:
    token = town.estimate()["quote"]
    head, claims, signature = token.split(".")
    altered = ".".join((head, claims[:-2] + ("AA" if claims[-2:] != "AA" else "BB"), signature))
    said = town.request(quote=altered).json()
    assert said["error"] == "quote_invalid"
    wrong_place = town.request(quote=token, pickup=FAR_PICKUP).json()
    assert wrong_place == QUOTE_EXAMPLES["quote_mismatch"]["value"]


NOWHERE = {"lat": 40.7128, "lng": -74.0060}  # New York: outside every configured market


def test_a_pickup_no_fare_rule_prices_is_refused_and_nothing_is_recorded(town: Town) -> None:
    rides = town.client.app.state.ctx.runtime.views.rides  # type: ignore[attr-defined]
    before = set(rides)
    said = town.request(pickup=NOWHERE, dropoff={"lat": 40.73, "lng": -73.99})
    assert said.json() == QUOTE_EXAMPLES["no_fare_rules"]["value"], said.text
    assert said.status_code == 422
    r = town.request()  # nothing recorded: the rider is free, and one ride more is seen
    assert r.status_code == 201, r.text
    town.ride(r.json()["ride_id"])
    assert set(rides) - before == {r.json()["ride_id"]}  # the refused request made none
    cancel = town.client.post(
        f"/rides/{r.json()['ride_id']}/cancel", headers=town.tokens["rider_r"]
    )
    assert cancel.is_success, cancel.text


def test_a_view_of_a_ride_requested_before_fares_shows_no_fare() -> None:
    from dispatch.api.present import fare_of
    from projections.rides import RideRow

    old = RideRow("r", "p", [0, 0], [0, 0], "completed", 0, 0, 9, timeline=[
        {"at": 0, "event": "Ride.Requested", "position": "0:1", "rider_id": "p"},
        {"at": 9, "event": "Ride.Completed", "position": "0:9", "driver_id": "d"},
    ])  # fmt: skip
    assert fare_of(old) == {"fare_terms": None}


def test_a_keyed_retry_after_its_quote_expired_gets_the_first_outcome(town: Town) -> None:
    desk = town.client.app.state.ctx.fares  # type: ignore[attr-defined]
    place = (PICKUP["lat"], PICKUP["lng"]), (DROPOFF["lat"], DROPOFF["lng"])
    # issued 290 s ago: valid 10 s more, and the 30 s leeway
    token = desk.estimate(town.ids["rider_r"], *place, "standard", town.clock[0] - 290).token
    keyed = {**town.tokens["rider_r"], "Idempotency-Key": "quoted-ride-1"}
    ride = {"pickup": PICKUP, "dropoff": DROPOFF, "quote": token}
    first = town.client.post("/rides", headers=keyed, json=ride)
    assert first.status_code == 201, first.text
    town.clock[0] += 60  # the quote has expired now
    try:
        again = town.client.post("/rides", headers=keyed, json=ride)
        assert again.status_code in (200, 201), again.text
        assert again.json()["ride_id"] == first.json()["ride_id"]
        # A new keyed request with the expired quote: the shard refuses it.
        other = {**town.tokens["rider_s"], "Idempotency-Key": "quoted-ride-2"}
        late = desk.estimate(town.ids["rider_s"], *place, "standard", town.clock[0] - 400)
        refused(town.client.post("/rides", headers=other, json=ride | {"quote": late.token}),
                "quote_expired", "quote expired")  # fmt: skip
    finally:
        cancel = f"/rides/{first.json()['ride_id']}/cancel"
        assert town.client.post(cancel, headers=town.tokens["rider_r"]).is_success


def test_replay_verify_finds_every_fare_of_the_log_as_its_terms_give(town: Town) -> None:
    r = town.request(quote=town.estimate()["quote"])
    assert r.status_code == 201, r.text
    assert town.drive(r.json()["ride_id"], 60)["fare"] is not None
    said = CliRunner().invoke(cli, ["replay", "verify", "--data-dir", str(town.data_dir)])
    assert said.exit_code == 0 and "0 violation(s)" in said.output, said.output
