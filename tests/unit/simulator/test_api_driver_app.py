"""A driver's app against a scripted deployment: the ride it accepts is driven to its end,
an offer is answered once, a ride cancelled on the way is left, and every command goes
under a key of its own, asked again in rounds while its outcome is unknown (the rounds
themselves: tests/unit/adapters/test_http_app_client.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from dispatch.adapters.http.client import Reply
from dispatch.simulator.apps.accounts import Account, Accounts
from dispatch.simulator.apps.config import ApiRunConfig
from dispatch.simulator.apps.driver_app import DriverApp
from dispatch.simulator.apps.world import UNKNOWN_ROUNDS, World
from dispatch.simulator.city import City
from dispatch.simulator.streams import Streams

HOME = (37.77, -122.42)
OFFER = {"ride_id": "ride-1", "pickup": {"lat": HOME[0], "lng": HOME[1]},
         "dropoff": {"lat": HOME[0] + 0.0005, "lng": HOME[1]}}  # fmt: skip


class Scripted:
    """Stands in for the API client: each command's answers in turn (200 once the script
    is spent), and every call's endpoint and Idempotency-Key."""

    def __init__(self, script: dict[str, list[int]]) -> None:
        self.script = script
        self.seen: list[tuple[str, str | None]] = []
        self.rounds: list[int] = []

    async def call(self, method: str, endpoint: str, path: str, **kwargs: Any) -> Reply:
        self.seen.append((endpoint, kwargs.get("key")))
        self.rounds.append(kwargs.get("rounds", 1))
        await asyncio.sleep(0)
        answers = self.script.get(endpoint, [])
        status = answers.pop(0) if answers else 200
        body = {"status": "pending"} if status == 202 else {}
        return Reply(status, body, 1)

    def verbs(self) -> list[str]:
        return [endpoint.rsplit("/", 1)[1] for endpoint, _ in self.seen]


def driver(client: Scripted, accept: float = 1.0) -> DriverApp:
    config = ApiRunConfig("http://127.0.0.1:1", speed_kmh=300.0, boarding_s=0.0,
                          response_delay_s=(0.0, 0.0), accept_probability=accept)  # fmt: skip
    now = time.time()
    account = Account("driver", "d-1", HOME, "token", now + 900, now, "refresh")
    world = World(config, client, Accounts(client), City.sized(2.0), Streams(1))  # type: ignore[arg-type]
    return DriverApp(world, account, 0)


def test_an_accepted_ride_is_driven_to_its_end() -> None:
    client = Scripted({})
    app = driver(client)
    asyncio.run(app.answer(OFFER))
    assert client.verbs() == ["accept", "arrived", "start", "complete"]
    assert app.ride is None and not app.on_trip
    assert len({key for _, key in client.seen}) == 4  # a key of its own for each command


def test_every_command_may_be_asked_again_while_its_outcome_is_unknown() -> None:
    client = Scripted({})
    asyncio.run(driver(client).answer(OFFER))
    assert client.rounds == [UNKNOWN_ROUNDS] * 4


def test_an_accept_with_no_outcome_in_the_end_is_not_served() -> None:
    client = Scripted({"POST /rides/{id}/accept": [503]})
    app = driver(client)
    asyncio.run(app.answer(OFFER))
    assert client.verbs() == ["accept"] and app.ride is None


def test_a_refused_accept_is_not_asked_again() -> None:
    client = Scripted({"POST /rides/{id}/accept": [409]})
    app = driver(client)
    asyncio.run(app.answer(OFFER))
    assert client.verbs() == ["accept"] and app.ride is None


def test_an_offer_is_answered_once_and_a_declined_one_is_not_served() -> None:
    client = Scripted({})
    app = driver(client, accept=0.0)

    async def twice() -> None:
        await app.answer(OFFER)
        await app.answer(dict(OFFER))  # a reconnection's snapshot repeats the offer

    asyncio.run(twice())
    assert client.verbs() == ["decline"]


def test_a_ride_cancelled_on_the_way_is_left_where_the_car_is() -> None:
    client = Scripted({})
    app = driver(client)
    far = OFFER | {"pickup": {"lat": HOME[0] + 0.02, "lng": HOME[1]}}  # ~27 s at 300 km/h

    async def cancelled_on_the_way() -> None:
        serving = asyncio.ensure_future(app.answer(far))
        await asyncio.sleep(0.05)
        app.heard("Driver.Released", {"data": {"ride_id": "ride-1", "reason": "cancelled"}})
        await asyncio.wait_for(serving, 2.0)

    asyncio.run(cancelled_on_the_way())
    assert client.verbs() == ["accept"] and app.ride is None
