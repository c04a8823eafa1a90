"""A small world over a real embedded runtime: two drivers, two riders (the first with a
ride offered to the first driver) and operators of each role (``operator`` is a viewer,
``dispatcher``, ``admin``), each with a token."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr

from dispatch.api import AuthSettings, create_app, mint_operator_token
from dispatch.api.context import ApiOptions
from dispatch.bootstrap import build_runtime
from dispatch.settings import DEFAULT_MARKETS, PlaceConfig, Settings

SECRET = "CCisrPB9f_7OMQDgtQXv-O_IxZF-9MDZ6K4SVXRKH9BFVZnm"  # random: production refuses weak ones
PICKUP = {"lat": 37.7749, "lng": -122.4194}
DROPOFF = {"lat": 37.7599, "lng": -122.4148}
AIRPORT = {"type": "Polygon", "coordinates": [[[-122.40, 37.600], [-122.375, 37.600],
           [-122.375, 37.615], [-122.40, 37.615], [-122.40, 37.600]]]}  # fmt: skip
PLACE = PlaceConfig(id="sfo", name="SFO airport", area=AIRPORT, queue=True)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class World:
    client: TestClient
    auth: AuthSettings
    ids: dict[str, str]  # driver_a, driver_b, rider_r, rider_s, ride
    # driver_a, driver_b, rider_r, rider_s, operator (a viewer), dispatcher, admin
    tokens: dict[str, dict[str, str]]


def _register(client: TestClient, path: str, body: dict[str, object]) -> tuple[str, str]:
    r = client.post(path, json=body)
    assert r.status_code == 201, r.text
    data = r.json()
    return data.get("driver_id") or data["rider_id"], data["token"]["access_token"]


def build_world(data_dir: Path) -> Iterator[World]:
    # the default market, with a place that keeps a queue (GET /places/{id}/queue)
    market = DEFAULT_MARKETS[0].model_copy(update={"places": [PLACE]})
    settings = Settings(data_dir=data_dir, shards=2, offer_timeout_s=300, markets=[market])
    runtime = build_runtime(settings, clock=time.time)
    auth = AuthSettings(secret=SecretStr(SECRET), environment="production")
    app = create_app(
        runtime, auth, ApiOptions(heartbeat_s=0.1, read_wait_s=0.5, command_timeout_s=5.0)
    )
    with TestClient(app) as client:
        ids, tokens = {}, {}
        for name in ("driver_a", "driver_b"):
            ids[name], token = _register(client, "/drivers", {"name": name, "home": PICKUP})
            tokens[name] = bearer(token)
        for name in ("rider_r", "rider_s"):
            ids[name], token = _register(client, "/riders", {"name": name})
            tokens[name] = bearer(token)
        tokens["operator"] = bearer(mint_operator_token(auth, "vic", "viewer"))
        tokens["dispatcher"] = bearer(mint_operator_token(auth, "dana", "dispatcher"))
        tokens["admin"] = bearer(mint_operator_token(auth, "ada", "admin"))
        a = ids["driver_a"]
        assert client.post(f"/drivers/{a}/online", headers=tokens["driver_a"]).is_success
        ping = client.post(f"/drivers/{a}/location", headers=tokens["driver_a"], json=PICKUP)
        assert ping.status_code == 202
        r = client.post(
            "/rides", headers=tokens["rider_r"], json={"pickup": PICKUP, "dropoff": DROPOFF}
        )
        assert r.status_code == 201, r.text
        ids["ride"] = r.json()["ride_id"]
        deadline = time.monotonic() + 5
        while getattr(runtime.views.rides.get(ids["ride"]), "offered_to", None) != a:
            assert time.monotonic() < deadline, "the ride was never offered to driver_a"
            time.sleep(0.02)
        yield World(client, auth, ids, tokens)
