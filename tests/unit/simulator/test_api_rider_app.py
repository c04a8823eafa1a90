"""A rider's app against a scripted deployment: the map, the quote, then the request that
carries it, under a key, asked again in rounds while its outcome is unknown; a request
refused, or with no outcome in the end, is not followed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dispatch.adapters.http.client import Reply
from dispatch.adapters.http.sse import ServerEvent
from dispatch.simulator.apps import rider_app
from dispatch.simulator.apps.accounts import Account, Accounts
from dispatch.simulator.apps.config import ApiRunConfig
from dispatch.simulator.apps.rider_app import Riders, RideSeen, request
from dispatch.simulator.apps.world import UNKNOWN_ROUNDS, World
from dispatch.simulator.city import City
from dispatch.simulator.streams import Streams


class Scripted:
    """Stands in for the API client: ``POST /rides`` answers in turn, the rest 200."""

    def __init__(self, rides: list[int]) -> None:
        self.rides = rides
        self.seen: list[tuple[str, str | None, Any]] = []
        self.rounds: dict[str, int] = {}

    async def call(self, method: str, endpoint: str, path: str, **kwargs: Any) -> Reply:
        self.seen.append((endpoint, kwargs.get("key"), kwargs.get("json")))
        self.rounds[endpoint] = kwargs.get("rounds", 1)
        await asyncio.sleep(0)
        if endpoint == "POST /fares/estimate":
            return Reply(200, {"quote": "signed-quote"}, 1)
        if endpoint != "POST /rides":
            return Reply(200, {}, 1)
        status = self.rides.pop(0) if self.rides else 201
        body = {"ride_id": "ride-1", "position": "7"} if status == 201 else {}
        return Reply(status, body, 1)


async def completed_ride(*args: Any, **kwargs: Any) -> AsyncIterator[ServerEvent]:
    """The ride's stream: accepted, then completed, then its last frame."""
    yield ServerEvent("Ride.Accepted", "1", {"data": {}})
    yield ServerEvent("Ride.Completed", "2", {"data": {}})
    yield ServerEvent("end", "", {})


@pytest.fixture(autouse=True)
def scripted_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rider_app, "follow", completed_ride)


def ride_once(client: Scripted) -> RideSeen:
    config = ApiRunConfig("http://127.0.0.1:1", cancel_probability=0.0)
    now = time.time()
    account = Account("rider", "r-1", (37.77, -122.42), "token", now + 900, now, "refresh")
    seen = RideSeen(0, 0.0)

    async def go() -> None:
        world = World(config, client, Accounts(client), City.sized(2.0), Streams(1))  # type: ignore[arg-type]
        await request(world, Riders(world, [account]), seen)

    asyncio.run(go())
    return seen


def test_a_request_carries_its_quote_and_its_ride_is_followed_to_the_end() -> None:
    client = Scripted([])
    seen = ride_once(client)
    endpoints = [endpoint for endpoint, _, _ in client.seen]
    assert endpoints == ["GET /drivers/nearby", "POST /fares/estimate", "POST /rides"]
    assert client.seen[2][2]["quote"] == "signed-quote"
    assert seen.ride_id == "ride-1" and seen.end == "completed" and seen.accepted_s is not None


def test_a_request_is_keyed_and_asked_again_while_its_outcome_is_unknown() -> None:
    client = Scripted([])
    ride_once(client)
    [(_, key, _)] = [call for call in client.seen if call[0] == "POST /rides"]
    assert key and client.rounds["POST /rides"] == UNKNOWN_ROUNDS


def test_a_request_with_no_outcome_in_the_end_is_not_followed() -> None:
    client = Scripted([0])
    seen = ride_once(client)
    assert seen.status == 0 and not seen.ride_id and seen.refused == "no answer"


def test_a_refused_request_is_not_asked_again() -> None:
    client = Scripted([422])
    seen = ride_once(client)
    assert [e for e, _, _ in client.seen].count("POST /rides") == 1
    assert seen.status == 422 and not seen.ride_id
