"""Scheduled rides at the API: booked with `scheduled_for` (shown by `GET /rides/{id}` and
listed by `GET /riders/{id}/scheduled-rides`), refused with the reason when too near, too
far, or one too many, priced without surge, and cancelled free before the cutoff."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_world import SECRET, bearer
from fastapi.testclient import TestClient
from pydantic import SecretStr

from dispatch.api import AuthSettings, create_app
from dispatch.api.context import ApiOptions
from dispatch.api.ops_page import state
from dispatch.api.settings import OpsPageSettings
from dispatch.bootstrap import build_runtime
from dispatch.settings import Settings

PICKUP = {"lat": 37.7749, "lng": -122.4194}
AIRPORT = {"lat": 37.6213, "lng": -122.379}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("scheduled"), shards=1)
    runtime = build_runtime(settings, clock=time.time)
    auth = AuthSettings(secret=SecretStr(SECRET), environment="development")
    with TestClient(create_app(runtime, auth, ApiOptions(command_timeout_s=5.0))) as client:
        yield client


@pytest.fixture
def rider(client: TestClient) -> tuple[str, dict[str, str]]:
    r = client.post("/riders", json={"name": "Rae"})
    assert r.status_code == 201, r.text
    return r.json()["rider_id"], bearer(r.json()["token"]["access_token"])


def ahead(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def book(client: TestClient, headers: dict[str, str], when: str) -> Any:
    body = {"pickup": PICKUP, "dropoff": AIRPORT, "scheduled_for": when}
    return client.post("/rides", headers=headers, json=body)


def test_a_booked_ride_is_shown_scheduled_with_its_time_and_listed_for_its_rider(
    client: TestClient, rider: tuple[str, dict[str, str]]
) -> None:
    rider_id, headers = rider
    when = datetime.now(UTC) + timedelta(hours=5)
    r = book(client, headers, when.isoformat())
    assert r.status_code == 201, r.text
    ride_id, after = r.json()["ride_id"], {"after": r.json()["position"]}

    seen = client.get(f"/rides/{ride_id}", headers=headers, params=after).json()
    listed = client.get(f"/riders/{rider_id}/scheduled-rides", headers=headers, params=after)

    assert seen["status"] == "scheduled"
    assert datetime.fromisoformat(seen["scheduled_for"]) == when
    assert datetime.fromisoformat(seen["free_cancel_until"]) == when - timedelta(hours=1)
    assert seen["fare_terms"]["surge"] == "1.00"  # priced at booking, without surge
    assert [ride["ride_id"] for ride in listed.json()["rides"]] == [ride_id]


@pytest.mark.parametrize(
    ("when", "says"),
    [(ahead(600), "at least 15 minutes ahead"), (ahead(8 * 86_400), "at most 7 days ahead")],
    ids=["nearer than the lead time", "beyond the horizon"],
)
def test_a_time_out_of_range_is_refused_with_the_reason_and_nothing_is_booked(
    client: TestClient, rider: tuple[str, dict[str, str]], when: str, says: str
) -> None:
    _, headers = rider
    runtime = client.app.state.ctx.runtime  # type: ignore[attr-defined]
    head = runtime.head(0)

    r = book(client, headers, when)

    assert r.status_code == 422, r.text
    assert r.json()["error"] == "scheduled_time_out_of_range"
    assert says in r.json()["reason"]
    assert runtime.head(0) == head  # nothing reached the log


def test_a_time_without_an_offset_is_refused_as_invalid(
    client: TestClient, rider: tuple[str, dict[str, str]]
) -> None:
    naive = (datetime.now(UTC) + timedelta(hours=2)).replace(tzinfo=None).isoformat()
    r = book(client, rider[1], naive)
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_request"
    assert "scheduled_for" in r.text


def test_one_booking_too_many_is_refused_409_and_a_cancel_frees_a_place(
    client: TestClient, rider: tuple[str, dict[str, str]]
) -> None:
    rider_id, headers = rider
    rides = []
    for hours in (2, 3, 4):
        r = book(client, headers, ahead(hours * 3_600))
        assert r.status_code == 201, r.text
        rides.append(r.json()["ride_id"])

    refused = book(client, headers, ahead(5 * 3_600))
    cancelled = client.post(f"/rides/{rides[0]}/cancel", headers=headers)
    again = book(client, headers, ahead(5 * 3_600))

    assert refused.status_code == 409
    assert refused.json()["error"] == "too_many_scheduled"
    assert cancelled.status_code == 200, cancelled.text
    after = {"after": again.json()["position"]}
    seen = client.get(f"/rides/{rides[0]}", headers=headers, params=after).json()
    assert seen["status"] == "cancelled" and seen["cancellation_fee"] is None  # free
    assert again.status_code == 201, again.text
    listed = client.get(f"/riders/{rider_id}/scheduled-rides", headers=headers, params=after)
    assert len(listed.json()["rides"]) == 3


def test_a_booking_does_not_stop_an_immediate_request(
    client: TestClient, rider: tuple[str, dict[str, str]]
) -> None:
    _, headers = rider
    assert book(client, headers, ahead(7_200)).status_code == 201
    now = client.post("/rides", headers=headers, json={"pickup": PICKUP, "dropoff": AIRPORT})
    assert now.status_code == 201, now.text


def test_the_ops_page_counts_bookings_but_does_not_draw_them_as_rides_in_flight(
    client: TestClient, rider: tuple[str, dict[str, str]]
) -> None:
    _, headers = rider
    r = book(client, headers, ahead(7_200))
    assert r.status_code == 201, r.text
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while r.json()["ride_id"] not in ctx.runtime.views.rides:  # the views catch up
        assert time.monotonic() < deadline
        time.sleep(0.02)

    drawn = state(ctx, OpsPageSettings())

    assert r.json()["ride_id"] not in {ride["id"] for ride in drawn["rides"]}
    assert drawn["scheduled_total"] >= 1


def test_a_driver_may_neither_book_nor_list_a_riders_bookings(
    client: TestClient, rider: tuple[str, dict[str, str]]
) -> None:
    rider_id, _ = rider
    r = client.post("/drivers", json={"name": "Dee", "home": PICKUP})
    assert r.status_code == 201, r.text
    driver = bearer(r.json()["token"]["access_token"])

    listed = client.get(f"/riders/{rider_id}/scheduled-rides", headers=driver)
    booked = book(client, driver, ahead(7_200))

    assert listed.status_code == 403 and listed.json()["error"] == "forbidden"
    assert booked.status_code == 403


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Bookings 2 s ahead, dispatched at once (no driver anywhere, the longest pickup 1 s,
    no margin), searched for 2 s after their time."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("quick"), shards=1,
                        scheduled_min_lead_s=1, scheduled_margin_s=0, max_pickup_eta_s=1,
                        scheduled_search_after_s=2)  # fmt: skip
    runtime = build_runtime(settings, clock=time.time)
    auth = AuthSettings(secret=SecretStr(SECRET), environment="development")
    with TestClient(create_app(runtime, auth, ApiOptions(command_timeout_s=5.0))) as client:
        yield client


def test_the_rides_stream_tells_the_rider_of_each_step_and_that_no_driver_came(
    quick: TestClient,
) -> None:
    r = quick.post("/riders", json={"name": "Rae"})
    headers = bearer(r.json()["token"]["access_token"])
    booked = book(quick, headers, ahead(2))
    assert booked.status_code == 201, booked.text
    ride_id, after = booked.json()["ride_id"], {"after": booked.json()["position"]}

    url = f"/rides/{ride_id}/events?max_s=20"
    with quick.stream("GET", url, headers=headers, params=after) as s:
        assert s.status_code == 200, s.read()
        kinds = [line.removeprefix("event: ") for line in s.iter_lines()
                 if line.startswith("event: ")]  # fmt: skip

    assert [k for k in kinds if k.startswith("Ride.")] == [
        "Ride.Scheduled", "Ride.DispatchDue", "Ride.DispatchStarted", "Ride.Overdue",
        "Ride.Expired",
    ]  # fmt: skip
