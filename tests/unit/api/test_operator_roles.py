"""Operator roles over HTTP: every operator (a viewer too) reads rides, drivers, the
heatmap and streams; a dispatcher or an admin also cancels a ride, and the event names
them; a viewer's write is a 403 with the reason and changes nothing; riders and drivers do
not see which operator acted."""

from __future__ import annotations

from typing import Any

import pytest
from api_world import DROPOFF, PICKUP, World, bearer

from dispatch.api.auth import issue_operator_tokens
from dispatch.domain.operators import operator_id

OPERATORS = ("operator", "dispatcher", "admin")  # "operator" is the world's viewer
READS = [
    "/rides/{ride}",
    "/drivers/{driver_a}",
    "/drivers/nearby?lat=37.77&lng=-122.42",
    "/heatmap?resolution=6",
    "/rides/{ride}/events?max_s=0.2",
    "/drivers/{driver_a}/offers?max_s=0.2",
]


@pytest.mark.parametrize("who", OPERATORS)
@pytest.mark.parametrize("path", READS)
def test_every_operator_role_reads(world: World, who: str, path: str) -> None:
    r = world.client.get(path.format(**world.ids), headers=world.tokens[who])
    assert r.status_code == 200, r.text


def _ride_of_rider_s(world: World) -> str:
    r = world.client.post(
        "/rides", headers=world.tokens["rider_s"], json={"pickup": PICKUP, "dropoff": DROPOFF}
    )
    assert r.status_code == 201, r.text
    ride_id: str = r.json()["ride_id"]
    return ride_id


def _cancel(world: World, ride_id: str, headers: dict[str, str], body: Any = None) -> Any:
    body = {"reason": "rider called in"} if body is None else body
    return world.client.post(f"/rides/{ride_id}/operator-cancel", headers=headers, json=body)


def _ride(world: World, ride_id: str, who: str, after: str | None = None) -> Any:
    params = {"after": after} if after else {}
    r = world.client.get(f"/rides/{ride_id}", headers=world.tokens[who], params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_viewer_cannot_cancel_a_ride_and_is_told_why(world: World) -> None:
    ride_id = _ride_of_rider_s(world)
    r = _cancel(world, ride_id, world.tokens["operator"])
    assert r.status_code == 403
    assert r.json()["reason"] == (
        "this needs an operator of role dispatcher or admin; operator vic is a viewer"
    )
    # An admin's cancel, sent after, finds the ride still open (a cancel of the viewer's,
    # applied however late, would be before it in the ride's shard); read after it, the
    # ride was cancelled once, by the admin (the finish also frees rider_s).
    admin = _cancel(world, ride_id, world.tokens["admin"])
    assert admin.status_code == 200, admin.text
    view = _ride(world, ride_id, "admin", admin.json()["position"])
    cancels = [e for e in view["timeline"] if e["event"].startswith("Ride.Cancelled")]
    assert [(e["event"], e["data"]["operator_name"]) for e in cancels] == [
        ("Ride.CancelledByOperator", "ada")
    ]


def test_a_dispatcher_cancels_a_ride_and_the_event_names_them(world: World) -> None:
    ride_id = _ride_of_rider_s(world)

    r = _cancel(world, ride_id, world.tokens["dispatcher"])

    assert r.status_code == 200, r.text
    view = _ride(world, ride_id, "admin", r.json()["position"])
    assert view["status"] == "cancelled"
    last = view["timeline"][-1]
    assert last["event"] == "Ride.CancelledByOperator"
    assert last["data"] == {
        "operator_id": str(operator_id("dana")),
        "operator_name": "dana",
        "operator_role": "dispatcher",
        "reason": "rider called in",
    }
    riders = _ride(world, ride_id, "rider_s")["timeline"][-1]
    assert riders["data"] == {"reason": "rider called in"}  # not who the operator was
    stream = f"/rides/{ride_id}/events?max_s=0.2"
    rider_stream = world.client.get(stream, headers=world.tokens["rider_s"]).text
    admin_stream = world.client.get(stream, headers=world.tokens["admin"]).text
    assert "CancelledByOperator" in rider_stream and "dana" not in rider_stream
    assert '"operator_name":"dana"' in admin_stream


def test_the_driver_of_a_ride_an_operator_cancelled_is_not_told_who(world: World) -> None:
    ride_id, driver = world.ids["ride"], world.tokens["driver_a"]  # offered to driver_a
    accepted = world.client.post(f"/rides/{ride_id}/accept", headers=driver)
    assert accepted.status_code == 200, accepted.text

    r = _cancel(world, ride_id, world.tokens["dispatcher"])

    assert r.status_code == 200, r.text
    position = r.json()["position"]
    for who in ("driver_a", "rider_r"):
        last = _ride(world, ride_id, who, position)["timeline"][-1]
        assert (last["event"], last["data"]) == (
            "Ride.CancelledByOperator",
            {"reason": "rider called in"},
        ), who
        stream = world.client.get(
            f"/rides/{ride_id}/events?max_s=0.2", headers=world.tokens[who]
        ).text
        assert "Ride.CancelledByOperator" in stream and "rider called in" in stream, who
        assert "dana" not in stream and "operator_" not in stream, who
    for who in OPERATORS:
        seen = _ride(world, ride_id, who, position)["timeline"][-1]["data"]
        assert (seen["operator_name"], seen["operator_role"]) == ("dana", "dispatcher"), who


def test_an_admin_cancels_a_ride_too(world: World) -> None:
    ride_id = _ride_of_rider_s(world)
    r = _cancel(world, ride_id, world.tokens["admin"])
    assert r.status_code == 200, r.text
    names = _ride(world, ride_id, "operator", r.json()["position"])["timeline"][-1]["data"]
    assert (names["operator_name"], names["operator_role"]) == ("ada", "admin")


def test_a_refreshed_operator_token_is_the_same_operator_with_the_same_role(
    world: World,
) -> None:
    pair = issue_operator_tokens(world.auth, "erin", "dispatcher")
    r = world.client.post("/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert r.status_code == 200, r.text
    ride_id = _ride_of_rider_s(world)
    cancelled = _cancel(world, ride_id, bearer(r.json()["access_token"]))
    assert cancelled.status_code == 200, cancelled.text
    data = _ride(world, ride_id, "admin", cancelled.json()["position"])["timeline"][-1]["data"]
    assert (data["operator_name"], data["operator_role"]) == ("erin", "dispatcher")


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({}, 422, "invalid_request"),
        ({"reason": ""}, 422, "invalid_request"),
        ({"reason": "x" * 501}, 422, "invalid_request"),
        ({"reason": "ok", "operator_name": "mallory"}, 422, "invalid_request"),
    ],
)
def test_an_operator_cancel_without_a_fitting_reason_is_refused(
    world: World, body: Any, status: int, error: str
) -> None:
    r = _cancel(world, world.ids["ride"], world.tokens["dispatcher"], body)
    assert r.status_code == status, r.text
    assert r.json()["error"] == error


def test_an_operator_cancelling_a_ride_nobody_has_gets_404(world: World) -> None:
    r = _cancel(world, "00000000-0000-4000-8000-000000000000", world.tokens["dispatcher"])
    assert r.status_code == 404, r.text


def test_the_api_docs_warn_that_the_cancel_reason_is_shown_to_rider_and_driver(
    world: World,
) -> None:
    spec = world.client.get("/openapi.json").json()
    endpoint = spec["paths"]["/rides/{ride_id}/operator-cancel"]["post"]
    assert "The reason is shown to the ride's rider and driver" in endpoint["description"]
    reason = spec["components"]["schemas"]["OperatorCancelRide"]["properties"]["reason"]
    assert reason["description"].startswith("Shown to the ride's rider and driver")
