"""Shared rides over HTTP, on an embedded deployment that pools: two riders going the same
way share one car; each rider sees their own stops' planned times and the car's position
while it serves them (whichever rider's stop comes next), and not once they are dropped
off."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_api_embedded import WAIT_S, Api, serve

from dispatch.settings import Settings

PICKUP_A = {"lat": 37.7749, "lng": -122.4194}
PICKUP_B = {"lat": 37.7762, "lng": -122.4190}  # some 150 m on, the same way
DROPOFF = {"lat": 37.7900, "lng": -122.4100}
CAR = {"lat": 37.7745, "lng": -122.4196}


@pytest.fixture
def pooling(tmp_path: Path) -> Iterator[Api]:
    yield from serve(Settings(data_dir=tmp_path, shards=1, offer_timeout_s=60.0, pool=True))


def until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + 3 * WAIT_S
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {3 * WAIT_S} s")


def test_two_riders_share_a_car_and_each_sees_their_own_stops_and_the_car(pooling: Api) -> None:
    api, c = pooling, pooling.client
    driver_id, driver = api.register_driver()
    assert c.post(f"/drivers/{driver_id}/online", headers=driver).status_code == 200
    assert c.post(f"/drivers/{driver_id}/location", headers=driver, json=CAR).status_code == 202
    _, rider_a = api.register_rider("Ann")
    _, rider_b = api.register_rider("Bo")
    shared = {"dropoff": DROPOFF, "shared": True}
    a = c.post("/rides", headers=rider_a, json={"pickup": PICKUP_A, **shared}).json()["ride_id"]
    until(lambda: c.get(f"/rides/{a}", headers=rider_a).json().get("offered_to"), "offer of a")
    assert c.post(f"/rides/{a}/accept", headers=driver).status_code == 200
    b = c.post("/rides", headers=rider_b, json={"pickup": PICKUP_B, **shared}).json()["ride_id"]
    seen_b = until(
        lambda: (
            (r := c.get(f"/rides/{b}", headers=rider_b).json()).get("status") == "accepted" and r
        ),
        "b put into the car's plan",
    )
    assert seen_b["driver_id"] == driver_id  # pooled: no offer, the car's plan extended
    seen_a = c.get(f"/rides/{a}", headers=rider_a).json()
    for seen in (seen_a, seen_b):
        assert seen["planned_pickup_at"] is not None and seen["planned_dropoff_at"] is not None
        assert seen["planned_pickup_at"] < seen["planned_dropoff_at"]
    assert seen_a["planned_pickup_at"] < seen_b["planned_pickup_at"]  # a's pickup is next
    # b sees the car although a's stop comes first; a sees it too
    for rider in (rider_a, rider_b):
        where = c.get(f"/drivers/{driver_id}", headers=rider)
        assert where.status_code == 200, where.text
    # the plan served in its order: a aboard, b aboard, then whoever is dropped off first
    for ride in (a, b):
        assert c.post(f"/rides/{ride}/arrived", headers=driver).status_code == 200
        assert c.post(f"/rides/{ride}/start", headers=driver).status_code == 200
    # the same drop-off: the plan's order decides which comes first
    done_rider, other_rider = rider_a, rider_b
    r = c.post(f"/rides/{a}/complete", headers=driver)
    if r.status_code == 409:  # b's drop-off is first in the plan
        done_rider, other_rider = rider_b, rider_a
        r = c.post(f"/rides/{b}/complete", headers=driver)
    assert r.status_code == 200, r.text
    after = {"after": r.json()["position"]}
    assert c.get(f"/drivers/{driver_id}", headers=done_rider, params=after).status_code == 403
    assert c.get(f"/drivers/{driver_id}", headers=other_rider, params=after).status_code == 200
