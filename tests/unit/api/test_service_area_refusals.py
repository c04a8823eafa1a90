"""At the API, a ride request or a fare quote whose pickup or drop-off lies outside its
market's service area is refused 422 ``outside_service_area`` naming the point, before
anything is sent: the log does not move. Inside the area both go through."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from api_world import SECRET, bearer
from fastapi.testclient import TestClient
from idempotency_keys import uuid7
from pydantic import SecretStr

from dispatch.api import AuthSettings, create_app
from dispatch.api.context import ApiOptions
from dispatch.bootstrap import build_runtime
from dispatch.settings import MarketConfig, Settings

AREA = {"type": "Polygon", "coordinates": [[[-122.52, 37.70], [-122.35, 37.70],
        [-122.35, 37.83], [-122.52, 37.83], [-122.52, 37.70]]]}  # fmt: skip
INSIDE, ALSO_INSIDE = {"lat": 37.7749, "lng": -122.4194}, {"lat": 37.80, "lng": -122.41}
AIRPORT = {"lat": 37.6213, "lng": -122.379}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    market = MarketConfig(name="san-francisco", shard=0, lat=37.77, lng=-122.42,
                          radius_km=40, service_area=AREA)  # fmt: skip
    settings = Settings(data_dir=tmp_path_factory.mktemp("areas"), shards=1, markets=[market])
    runtime = build_runtime(settings, clock=time.time)
    # development: custom markets with the default fare rules are then a warning only
    auth = AuthSettings(secret=SecretStr(SECRET), environment="development")
    with TestClient(create_app(runtime, auth, ApiOptions(command_timeout_s=5.0))) as client:
        yield client


@pytest.fixture
def rider(client: TestClient) -> dict[str, str]:
    r = client.post("/riders", json={"name": "Rae"})
    assert r.status_code == 201, r.text
    return bearer(r.json()["token"]["access_token"])


@pytest.mark.parametrize("path", ["/rides", "/fares/estimate"])
@pytest.mark.parametrize(
    ("pickup", "dropoff", "named"), [(INSIDE, AIRPORT, "drop-off"), (AIRPORT, INSIDE, "pickup")]
)
def test_a_stop_outside_the_area_is_refused_before_anything_is_sent(
    client: TestClient,
    rider: dict[str, str],
    path: str,
    pickup: dict[str, float],
    dropoff: dict[str, float],
    named: str,
) -> None:
    runtime = client.app.state.ctx.runtime  # type: ignore[attr-defined]
    head = runtime.head(0)
    r = client.post(path, headers=rider, json={"pickup": pickup, "dropoff": dropoff})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "outside_service_area"
    assert r.json()["reason"].startswith(f"the {named} (")
    assert runtime.head(0) == head  # nothing sent, nothing recorded
    shown = client.get("/openapi.json").json()["paths"][path]["post"]["responses"]["422"]
    example = shown["content"]["application/json"]["examples"]["outside_service_area"]
    assert example["value"]["error"] == r.json()["error"]
    assert example["value"]["reason"].split(" (")[0] in ("the pickup", "the drop-off")


def test_a_keyed_request_outside_the_area_is_refused_by_the_shard_and_its_retry_agrees(
    client: TestClient, rider: dict[str, str]
) -> None:
    """A request with an Idempotency-Key may be the retry of one decided under other areas:
    the API leaves it to the shard, whose record answers a retry with the first outcome."""
    headers = {**rider, "Idempotency-Key": str(uuid7(datetime.now(UTC)))}
    trip = {"pickup": INSIDE, "dropoff": AIRPORT}
    first = client.post("/rides", headers=headers, json=trip)
    assert first.status_code == 422 and first.json()["error"] == "outside_service_area"
    again = client.post("/rides", headers=headers, json=trip)
    assert (again.status_code, again.json()["error"]) == (422, "outside_service_area")


def test_inside_the_area_quotes_and_rides_go_through(
    client: TestClient, rider: dict[str, str]
) -> None:
    trip = {"pickup": INSIDE, "dropoff": ALSO_INSIDE}
    assert client.post("/fares/estimate", headers=rider, json=trip).status_code == 200
    assert client.post("/rides", headers=rider, json=trip).status_code == 201
