"""A rider of one market takes a ride in another, over HTTP (issue #14).

The ride lives in its pickup's shard and is served by that market's drivers; the rider's
one-active-ride lock stays at the rider's home shard, taken by the request and let go when
the ride ends, through the shards' messages: in-process queues embedded, the
``shard-messages`` topic on the real broker (with a ``dispatch worker`` process), where
``replay verify`` over the Kafka log then checks what the shards told one another.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_api_embedded import WAIT_S, Api, EventStream, bearer, kafka_worker, serve

from dispatch.bootstrap import build_log_source
from dispatch.pricing.rules import default_fares
from dispatch.replay.operations import verify
from dispatch.settings import MarketConfig, Settings

SF = {"lat": 37.7749, "lng": -122.4194}
SAN_JOSE = {"lat": 37.3382, "lng": -121.8863}
SAN_JOSE_DROPOFF = {"lat": 37.3440, "lng": -121.8800}
NEAR_SAN_JOSE = {"lat": 37.3388, "lng": -121.8856}
MARKETS = [
    MarketConfig(name="sf", shard=0, lat=SF["lat"], lng=SF["lng"], radius_km=6),
    MarketConfig(name="san-jose", shard=1, lat=SAN_JOSE["lat"], lng=SAN_JOSE["lng"], radius_km=6),
]
FARES = default_fares(MARKETS)  # markets of one's own need fare rules in production


def settings_for(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, shards=2, markets=MARKETS, fares=FARES, offer_timeout_s=60.0)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from serve(settings_for(tmp_path))


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def any_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """The API embedded, and on the real broker over a `dispatch worker` process; after the
    test, ``replay verify`` over the log (all shards, and what they told one another)."""
    if request.param == "embedded":
        settings = settings_for(tmp_path)
        yield from serve(settings)
    else:
        topics = request.getfixturevalue("kafka_topics")
        assert topics.partitions == 2, "one shard a market"
        settings = Settings(
            data_dir=tmp_path,
            kafka_bootstrap=topics.bootstrap,
            topic_prefix=topics.prefix,
            shards=topics.partitions,
            markets=MARKETS,
            fares=FARES,
            offer_timeout_s=60.0,
        )
        with kafka_worker(settings, tmp_path / "worker.log"):
            yield from serve(settings)
    source = build_log_source(settings)
    try:
        events, violations = verify(source)
    finally:
        source.close()
    assert events > 0 and violations == []


def register(api: Api, role: str, home: dict[str, float]) -> tuple[str, dict[str, str]]:
    """Registered as an app would: with a key, retried while the answer is a 202 (on Kafka
    the worker may still be taking its shards over)."""
    key = {"Idempotency-Key": str(uuid.uuid4())}
    deadline = time.monotonic() + 6 * WAIT_S
    while True:
        r = api.client.post(f"/{role}s", json={"name": "N", "home": home}, headers=key)
        if r.status_code != 202 or time.monotonic() > deadline:
            break
    assert r.status_code == 201, r.text
    body = r.json()
    return body[f"{role}_id"], bearer(body["token"]["access_token"])


def request(api: Api, rider: dict[str, str], pickup: dict[str, float]) -> Any:
    return api.client.post(
        "/rides", headers=rider, json={"pickup": pickup, "dropoff": SAN_JOSE_DROPOFF}
    )


def test_a_rider_from_one_market_rides_in_another_with_its_drivers(any_api: Api) -> None:
    api = any_api
    c = api.client
    rider_id, rider = register(api, "rider", SF)
    driver_id, driver = register(api, "driver", SAN_JOSE)
    online = c.post(f"/drivers/{driver_id}/online", headers=driver)
    assert online.status_code == 200, online.text
    r = c.post(f"/drivers/{driver_id}/location", headers=driver, json=NEAR_SAN_JOSE)
    assert r.status_code == 202, r.text
    token = online.json()["position"]
    offers = EventStream(c, f"/drivers/{driver_id}/offers?max_s=30&after={token}", driver).open()
    try:
        offers.next("snapshot")
        r = request(api, rider, SAN_JOSE)
        assert r.status_code == 201, r.text
        ride_id = r.json()["ride_id"]
        assert r.json()["position"].startswith("1:"), "the ride opened at its pickup's shard"

        # the rider holds one active ride, whichever market it asks in
        again = request(api, rider, SF)
        assert again.status_code == 409, again.text

        _, offer = offers.next("Driver.OfferReceived")
        assert offer["data"]["ride_id"] == ride_id
        for action in ("accept", "arrived", "start", "complete"):
            r = c.post(f"/rides/{ride_id}/{action}", headers=driver)
            assert r.status_code == 200, r.text
        seen = c.get(f"/rides/{ride_id}", headers=rider, params={"after": r.json()["position"]})
        assert seen.json()["status"] == "completed"
        assert seen.json()["rider_id"] == rider_id
    finally:
        offers.close()
    # the ride's end reaches the rider's home shard: the rider may ride again
    deadline = time.monotonic() + WAIT_S
    while (r := request(api, rider, SF)).status_code == 409:
        assert time.monotonic() < deadline, "the rider's lock was never let go"
        time.sleep(0.05)
    assert r.status_code == 201, r.text


def test_a_driver_of_one_market_is_offered_a_ride_in_another_and_drives_it(any_api: Api) -> None:
    """The driver's availability lives at its home shard (San Francisco's); near San Jose
    its pings reach San Jose's shard too, which sees it free (on Kafka: from the
    driver-availability topic), asks its owner to hold it, and assigns it once the owner
    confirms the accept."""
    api = any_api
    c = api.client
    _, rider = register(api, "rider", SAN_JOSE)
    driver_id, driver = register(api, "driver", SF)
    online = c.post(f"/drivers/{driver_id}/online", headers=driver)
    assert online.status_code == 200, online.text
    assert online.json()["position"].startswith("0:"), "the driver's owner is its home shard"
    r = c.post(f"/drivers/{driver_id}/location", headers=driver, json=NEAR_SAN_JOSE)
    assert r.status_code == 202, r.text
    offers = EventStream(
        c, f"/drivers/{driver_id}/offers?max_s=30&after={online.json()['position']}", driver
    ).open()
    try:
        offers.next("snapshot")
        r = request(api, rider, SAN_JOSE)
        assert r.status_code == 201, r.text
        ride_id = r.json()["ride_id"]
        assert r.json()["position"].startswith("1:"), "the ride opened at its pickup's shard"

        _, offer = offers.next("Driver.OfferReceived")
        assert offer["data"]["ride_id"] == ride_id
        accepted = c.post(f"/rides/{ride_id}/accept", headers=driver)
        assert accepted.status_code == 200, accepted.text
        deadline = time.monotonic() + WAIT_S
        while (seen := c.get(f"/rides/{ride_id}", headers=rider).json())["status"] != "accepted":
            assert time.monotonic() < deadline, f"the ride's shard never learnt: {seen}"
            time.sleep(0.05)
        assert seen["driver_id"] == driver_id
        for action in ("arrived", "start", "complete"):
            r = c.post(f"/rides/{ride_id}/{action}", headers=driver)
            assert r.status_code == 200, r.text
    finally:
        offers.close()


def test_a_ride_cancelled_in_another_market_frees_its_rider(any_api: Api) -> None:
    api = any_api
    _, rider = register(api, "rider", SF)
    r = request(api, rider, SAN_JOSE)
    assert r.status_code == 201, r.text
    ride_id = r.json()["ride_id"]

    cancel = api.client.post(f"/rides/{ride_id}/cancel", headers=rider)
    assert cancel.status_code == 200, cancel.text

    deadline = time.monotonic() + WAIT_S
    while (r := request(api, rider, SAN_JOSE)).status_code == 409:
        assert time.monotonic() < deadline, "the rider's lock was never let go"
        time.sleep(0.05)
    assert r.status_code == 201, r.text
    history = api.client.get(f"/rides/{ride_id}", headers=rider).json()
    assert history["status"] == "cancelled"


def test_another_rider_cannot_cancel_a_ride_in_another_market(api: Api) -> None:
    _, rider = register(api, "rider", SF)
    _, stranger = register(api, "rider", SF)
    ride_id = request(api, rider, SAN_JOSE).json()["ride_id"]

    r = api.client.post(f"/rides/{ride_id}/cancel", headers=stranger)

    assert r.status_code == 403, r.text


def test_a_retried_keyed_request_answers_with_a_token_at_the_rides_shard(api: Api) -> None:
    _, rider = register(api, "rider", SF)
    key = {**rider, "Idempotency-Key": "ride-1"}
    body = {"pickup": SAN_JOSE, "dropoff": SAN_JOSE_DROPOFF}
    first = api.client.post("/rides", headers=key, json=body)
    again = api.client.post("/rides", headers=key, json=body)
    assert first.status_code == again.status_code == 201, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["ride_id"] == first.json()["ride_id"]
    assert first.json()["position"].startswith("1:")
    assert again.json()["position"].startswith("1:")
    seen = api.client.get(
        f"/rides/{again.json()['ride_id']}",
        headers=rider,
        params={"after": again.json()["position"]},
    )
    assert seen.status_code == 200, seen.text
