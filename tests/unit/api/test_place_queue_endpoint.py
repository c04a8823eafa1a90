"""``GET /places/{place_id}/queue``: an operator sees the whole queue, head first; a driver
sees the length and their own position; a rider is refused; an unknown place, or one that
keeps no queue, is a 404."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from api_world import SECRET, bearer
from fastapi.testclient import TestClient
from pydantic import SecretStr

from dispatch.api import AuthSettings, create_app
from dispatch.api.auth import mint_operator_token
from dispatch.api.context import ApiOptions
from dispatch.bootstrap import build_runtime
from dispatch.settings import MarketConfig, PlaceConfig, Settings

AIRPORT = {"type": "Polygon", "coordinates": [[[-122.40, 37.600], [-122.375, 37.600],
           [-122.375, 37.615], [-122.40, 37.615], [-122.40, 37.600]]]}  # fmt: skip
PIER = {"type": "Polygon", "coordinates": [[[-122.40, 37.80], [-122.39, 37.80],
        [-122.39, 37.81], [-122.40, 37.81], [-122.40, 37.80]]]}  # fmt: skip
INSIDE = {"lat": 37.605, "lng": -122.385}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    places = [PlaceConfig(id="sfo", name="SFO airport", area=AIRPORT, queue=True),
              PlaceConfig(id="pier-39", area=PIER)]  # fmt: skip
    market = MarketConfig(name="san-francisco", shard=0, lat=37.77, lng=-122.42,
                          radius_km=40, places=places)  # fmt: skip
    settings = Settings(data_dir=tmp_path_factory.mktemp("places"), shards=1, markets=[market])
    runtime = build_runtime(settings, clock=time.time)
    auth = AuthSettings(secret=SecretStr(SECRET), environment="development")
    app = create_app(runtime, auth, ApiOptions(command_timeout_s=5.0, read_wait_s=2.0))
    with TestClient(app) as client:
        drivers = []
        for name in ("first", "second", "elsewhere"):
            r = client.post("/drivers", json={"name": name, "home": INSIDE})
            assert r.status_code == 201, r.text
            token = bearer(r.json()["token"]["access_token"])
            driver_id = r.json()["driver_id"]
            assert client.post(f"/drivers/{driver_id}/online", headers=token).is_success
            where = INSIDE if name != "elsewhere" else {"lat": 37.77, "lng": -122.42}
            ping = client.post(f"/drivers/{driver_id}/location", headers=token, json=where)
            assert ping.status_code == 202
            drivers.append((driver_id, token))
            deadline = time.monotonic() + 5  # queued one after the other, in this order
            while name != "elsewhere" and len(runtime.views.places.queue("sfo")) < len(drivers):
                assert time.monotonic() < deadline, "the driver never joined the queue"
                time.sleep(0.02)
        r = client.post("/riders", json={"name": "Rae"})
        rider = bearer(r.json()["token"]["access_token"])
        operator = bearer(mint_operator_token(auth, "vic", "viewer"))
        yield {"client": client, "drivers": drivers, "rider": rider, "operator": operator}


def test_an_operator_sees_the_whole_queue_head_first(world: dict[str, Any]) -> None:
    r = world["client"].get("/places/sfo/queue", headers=world["operator"])
    assert r.status_code == 200, r.text
    body = r.json()
    (first, _), (second, _) = world["drivers"][:2]
    assert [d["driver_id"] for d in body["drivers"]] == [first, second]
    assert [d["position"] for d in body["drivers"]] == [1, 2]
    assert body["length"] == 2 and body["inside"] == 2
    assert body["name"] == "SFO airport" and body["market"] == "san-francisco"


def test_a_driver_sees_their_own_position_and_nobody_elses(world: dict[str, Any]) -> None:
    client = world["client"]
    (_, first), (_, second), (_, elsewhere) = world["drivers"]
    for token, position in ((first, 1), (second, 2), (elsewhere, None)):
        body = client.get("/places/sfo/queue", headers=token).json()
        assert body["position"] == position and body["length"] == 2
        assert body["drivers"] is None and body["inside"] is None


def test_a_rider_or_nobody_may_not_read_a_queue(world: dict[str, Any]) -> None:
    client = world["client"]
    assert client.get("/places/sfo/queue", headers=world["rider"]).status_code == 403
    assert client.get("/places/sfo/queue").status_code == 401


@pytest.mark.parametrize(
    ("place", "status", "reason"),
    [("jfk", 404, "no place 'jfk'"), ("pier-39", 404, "keeps no queue"), ("SFO!", 422, "")],
)
def test_an_unknown_place_or_one_without_a_queue_is_refused(
    world: dict[str, Any], place: str, status: int, reason: str
) -> None:
    r = world["client"].get(f"/places/{place}/queue", headers=world["operator"])
    assert r.status_code == status and reason in r.text
