"""Shared rides at the API: `POST /rides` with `shared` and `seats` makes a shared ride
whose terms `GET /rides/{id}` shows; meaningless sharing fields are refused with the reason;
a deployment that does not pool refuses a shared ride (422 shared_rides_off) and records
nothing; a keyed single request fingerprints as it did before shared rides."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from api_world import SECRET, bearer
from fastapi.testclient import TestClient
from pydantic import SecretStr

from dispatch.api import AuthSettings, create_app
from dispatch.api.context import ApiOptions
from dispatch.api.writes import keyed_id
from dispatch.bootstrap import build_runtime
from dispatch.settings import Settings
from schemas import api

PICKUP = {"lat": 37.7749, "lng": -122.4194}
DROPOFF = {"lat": 37.79, "lng": -122.40}


def make_client(tmp: Path, pool: bool) -> TestClient:
    settings = Settings(data_dir=tmp, shards=1, pool=pool)
    runtime = build_runtime(settings, clock=time.time)
    auth = AuthSettings(secret=SecretStr(SECRET), environment="development")
    return TestClient(create_app(runtime, auth, ApiOptions(command_timeout_s=5.0)))


@pytest.fixture(scope="module")
def pooling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with make_client(tmp_path_factory.mktemp("pool"), pool=True) as client:
        yield client


def rider(client: TestClient) -> dict[str, str]:
    r = client.post("/riders", json={"name": "Rae"})
    assert r.status_code == 201, r.text
    return bearer(r.json()["token"]["access_token"])


def test_a_shared_ride_is_made_with_its_terms(pooling: TestClient) -> None:
    headers = rider(pooling)
    body = {"pickup": PICKUP, "dropoff": DROPOFF, "shared": True, "seats": 2}
    r = pooling.post("/rides", headers=headers, json=body)
    assert r.status_code == 201, r.text
    seen = pooling.get(f"/rides/{r.json()['ride_id']}", headers=headers,
                       params={"after": r.json()["position"]}).json()  # fmt: skip
    assert seen["sharing"]["seats"] == 2
    assert (seen["sharing"]["max_wait_s"], seen["sharing"]["detour_factor"]) == (300.0, 1.5)
    assert seen["sharing"]["direct_s"] > 0


def test_a_single_ride_shows_no_sharing(pooling: TestClient) -> None:
    headers = rider(pooling)
    r = pooling.post("/rides", headers=headers, json={"pickup": PICKUP, "dropoff": DROPOFF})
    assert r.status_code == 201, r.text
    seen = pooling.get(f"/rides/{r.json()['ride_id']}", headers=headers,
                       params={"after": r.json()["position"]}).json()  # fmt: skip
    assert seen["sharing"] is None


@pytest.mark.parametrize(
    ("extra", "says"),
    [({"seats": 2}, "only a shared ride asks for seats"),
     ({"shared": True, "seats": 3}, "less than or equal to 2"),
     ({"shared": False, "seats": 2}, "only a shared ride asks for seats"),
     ({"shared": True, "seats": 0}, "greater than or equal to 1"),
     ({"shared": True, "scheduled_for": "2030-01-01T00:00:00Z"}, "not booked ahead")],
)  # fmt: skip
def test_meaningless_sharing_is_refused_with_the_reason(
    pooling: TestClient, extra: dict[str, object], says: str
) -> None:
    headers = rider(pooling)
    r = pooling.post("/rides", headers=headers, json={"pickup": PICKUP, "dropoff": DROPOFF,
                                                      **extra})  # fmt: skip
    assert r.status_code == 422, r.text
    assert says in r.text
    if "details" not in r.json():  # a rule across fields: named, with no ride made
        assert r.json()["error"] == "sharing_invalid"


def test_a_deployment_that_does_not_pool_refuses_a_shared_ride(tmp_path: Path) -> None:
    with make_client(tmp_path, pool=False) as client:
        headers = rider(client)
        body = {"pickup": PICKUP, "dropoff": DROPOFF, "shared": True}
        r = client.post("/rides", headers=headers, json=body)
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "shared_rides_off"
        assert "DISPATCH_POOL" in r.json()["reason"]
        # nothing was recorded: the rider may still ask for a single ride
        single = client.post("/rides", headers=headers, json={"pickup": PICKUP,
                                                              "dropoff": DROPOFF})  # fmt: skip
        assert single.status_code == 201, single.text


def test_a_single_request_fingerprints_as_before_shared_rides(pooling: TestClient) -> None:
    """A keyed single request's fingerprint covers the body as an API of the version before
    shared rides dumped it (no ``shared``, no ``seats``): a retry across the upgrade is
    answered from its record, not refused as another request."""
    ctx = pooling.app.state.ctx  # type: ignore[attr-defined]
    request = SimpleNamespace(method="POST", url=SimpleNamespace(path="/rides"),
                              app=SimpleNamespace(state=SimpleNamespace(ctx=ctx)))  # fmt: skip
    single = api.RequestRide.model_validate({"pickup": PICKUP, "dropoff": DROPOFF})
    old_dump = single.model_dump_json(exclude={"shared", "seats"})
    _, printed = keyed_id(request, "rider", "k1", single, {"shared", "seats"})  # type: ignore[arg-type]
    expected = ctx.tokens.fingerprints.of("POST", "/rides", "rider", old_dump)
    assert printed == expected and "seats" not in old_dump
    shared = api.RequestRide.model_validate({"pickup": PICKUP, "dropoff": DROPOFF,
                                             "shared": True})  # fmt: skip
    _, other = keyed_id(request, "rider", "k1", shared)  # type: ignore[arg-type]
    assert other != printed  # a shared request is another request


def test_a_keyed_single_request_retried_is_answered_from_its_record(pooling: TestClient) -> None:
    headers = {**rider(pooling), "Idempotency-Key": "retry-1"}
    body = {"pickup": PICKUP, "dropoff": DROPOFF}
    first = pooling.post("/rides", headers=headers, json=body)
    again = pooling.post("/rides", headers=headers, json={**body, "shared": False, "seats": 1})
    assert first.status_code == 201, first.text
    assert again.status_code in (200, 201), again.text
    assert again.json()["ride_id"] == first.json()["ride_id"]


def test_a_keyed_shared_request_retried_after_pooling_was_turned_off_is_answered(
    tmp_path: Path,
) -> None:
    """The retry of a shared request the deployment took is answered from its record (the
    ride it made), not refused because pooling is off now."""
    body = {"pickup": PICKUP, "dropoff": DROPOFF, "shared": True}
    with make_client(tmp_path, pool=True) as client:
        headers = {**rider(client), "Idempotency-Key": "shared-1"}
        first = client.post("/rides", headers=headers, json=body)
        assert first.status_code == 201, first.text
    with make_client(tmp_path, pool=False) as client:
        again = client.post("/rides", headers=headers, json=body)
        assert again.status_code in (200, 201), again.text
        assert again.json()["ride_id"] == first.json()["ride_id"]
        fresh = client.post("/rides", headers={**headers, "Idempotency-Key": "shared-2"},
                            json=body)  # fmt: skip
        assert fresh.status_code in (409, 422), fresh.text  # a new one: refused
