"""A city that cannot sign in stops at the first refusal: the registrations still under way
are cancelled, and nothing is left running. Under a rising profile only the drivers of its
start sign in online; the others go online at their time, unless the run closed first."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dispatch.adapters.http.client import Reply
from dispatch.simulator.apps.accounts import AccountError, Accounts
from dispatch.simulator.apps.config import ApiRunConfig
from dispatch.simulator.apps.driver_app import DriverApp
from dispatch.simulator.apps.run import _join_later, sign_in_city
from dispatch.simulator.apps.world import World
from dispatch.simulator.city import City
from dispatch.simulator.streams import Streams


class SlowRegistrations:
    """The third registration is refused at once; the others take 2 s each."""

    def __init__(self) -> None:
        self.started = self.finished = 0

    async def call(self, method: str, endpoint: str, path: str, **kwargs: Any) -> Reply:
        self.started += 1
        if self.started == 3:
            return Reply(400, {"error": "invalid", "reason": "home outside the market"}, 1)
        await asyncio.sleep(2.0)
        self.finished += 1
        soon = (datetime.now(UTC) + timedelta(seconds=900)).isoformat()
        issued = {"access_token": "a", "refresh_token": "r", "expires_at": soon}
        return Reply(201, {"driver_id": f"d-{self.started}", "token": issued}, 1)


def test_a_refused_registration_cancels_the_others_and_says_why() -> None:
    client = SlowRegistrations()
    config = ApiRunConfig("http://127.0.0.1:1", drivers=10)
    drivers: list[DriverApp] = []

    async def sign_in() -> float:
        world = World(config, client, Accounts(client), City.sized(2.0), Streams(1))  # type: ignore[arg-type]
        began = time.monotonic()
        with pytest.raises(AccountError, match="home outside the market"):
            await sign_in_city(world, [], drivers)
        failed_after = time.monotonic() - began
        await asyncio.sleep(2.5)  # long enough for a registration left running to finish
        return failed_after

    assert asyncio.run(sign_in()) < 1.0
    assert client.finished == 0 and drivers == []


class RefusedOnline:
    """Registrations go through, the first made ending last; the fourth driver to go
    online is refused, the others take 0.2 s; every offline call is counted."""

    def __init__(self) -> None:
        self.registered = self.onlines = 0
        self.online: list[str] = []
        self.offline: list[str] = []

    async def call(self, method: str, endpoint: str, path: str, **kwargs: Any) -> Reply:
        if endpoint == "POST /drivers":
            self.registered += 1
            number = self.registered
            await asyncio.sleep(0.002 * (40 - number))  # the first made ends last
            soon = (datetime.now(UTC) + timedelta(seconds=900)).isoformat()
            issued = {"access_token": "a", "refresh_token": "r", "expires_at": soon}
            return Reply(201, {"driver_id": f"d-{number}", "token": issued}, 1)
        driver = path.split("/")[2]
        if endpoint.endswith("/offline"):
            self.offline.append(driver)
            return Reply(200, {}, 1)
        self.onlines += 1
        if self.onlines == 4:
            return Reply(403, {"error": "forbidden", "reason": "driver suspended"}, 1)
        await asyncio.sleep(0.2 if self.onlines > 4 else 0.0)
        self.online.append(driver)
        return Reply(200, {}, 1)


def test_drivers_online_when_the_sign_in_fails_go_offline_and_the_rest_stop() -> None:
    client = RefusedOnline()
    config = ApiRunConfig("http://127.0.0.1:1", drivers=40)
    drivers: list[DriverApp] = []

    async def sign_in() -> None:
        world = World(config, client, Accounts(client), City.sized(2.0), Streams(1))  # type: ignore[arg-type]
        with pytest.raises(AccountError, match="could not go online"):
            await sign_in_city(world, [], drivers)
        await asyncio.sleep(0.5)  # a going-online left running would land by now

    asyncio.run(sign_in())
    assert client.registered == 40 and len(client.online) == 3
    assert sorted(client.offline) == sorted(client.online)
    assert [app.index for app in drivers] == list(range(40))
    # Numbered by place in the city (the order registrations were made), not by finish.
    assert all(app.account.id == f"d-{app.index + 1}" for app in drivers)


class UnreadableRegistration:
    """A registration answered 201 without the token the app needs."""

    async def call(self, method: str, endpoint: str, path: str, **kwargs: Any) -> Reply:
        return Reply(201, {"driver_id": "d-1"}, 1)


def test_a_reply_the_sign_in_cannot_read_ends_it_with_the_reason_not_a_traceback() -> None:
    client = UnreadableRegistration()
    config = ApiRunConfig("http://127.0.0.1:1", drivers=3)

    async def sign_in() -> None:
        world = World(config, client, Accounts(client), City.sized(2.0), Streams(1))  # type: ignore[arg-type]
        await sign_in_city(world, [], [])

    with pytest.raises(AccountError, match="signing in failed: KeyError"):
        asyncio.run(sign_in())


class Onlines:
    """Every registration and going online answered at once; who went online, in order."""

    def __init__(self) -> None:
        self.registered = 0
        self.online: list[str] = []

    async def call(self, method: str, endpoint: str, path: str, **kwargs: Any) -> Reply:
        if endpoint == "POST /drivers":
            self.registered += 1
            soon = (datetime.now(UTC) + timedelta(seconds=900)).isoformat()
            issued = {"access_token": "a", "refresh_token": "r", "expires_at": soon}
            return Reply(201, {"driver_id": f"d-{self.registered}", "token": issued}, 1)
        self.online.append(path.split("/")[2])
        return Reply(200, {}, 1)


def test_under_a_ramp_only_the_drivers_of_the_start_sign_in_online_the_rest_join_later() -> None:
    client = Onlines()
    config = ApiRunConfig("http://127.0.0.1:1", drivers=20, profile="ramp", minutes=0.1)
    drivers: list[DriverApp] = []

    async def run() -> tuple[list[str], list[str], int]:
        world = World(config, client, Accounts(client), City.sized(2.0), Streams(1))  # type: ignore[arg-type]
        await sign_in_city(world, [], drivers)
        at_sign_in = list(client.online)
        world.started = time.monotonic()
        later = [app for app in drivers if not app.online]
        tasks: list[asyncio.Task[Any]] = []
        world.closing.set()  # these never join: the run closed first
        await asyncio.gather(*[_join_later(world, app, tasks) for app in later[2:]])
        world.closing.clear()
        joiners = [asyncio.ensure_future(_join_later(world, app, tasks)) for app in later[:2]]
        await asyncio.sleep(max(app.joins_at_s for app in later[:2]) + 0.1)
        world.closing.set()
        world.finishing.set()
        for task in [*joiners, *tasks]:  # their apps' lives and streams, as a close does
            task.cancel()
        await asyncio.gather(*joiners, *tasks, return_exceptions=True)
        return at_sign_in, list(client.online), world.drivers_did["joined later"]

    at_sign_in, online, joined = asyncio.run(run())
    assert client.registered == 20 and at_sign_in == ["d-1", "d-2"]  # a tenth: two of 20
    assert online == ["d-1", "d-2", "d-3", "d-4"] and joined == 2
    assert [app.joins_at_s for app in drivers][:4] == [0.0, 0.0, 0.167, 0.333]
    joined_at = [app.joined_at_s for app in drivers]
    assert all(
        at is not None and at >= app.joins_at_s
        for at, app in zip(joined_at[2:4], drivers[2:4], strict=True)
    )
    assert joined_at[4:] == [None] * 16  # never online: no second of theirs is counted
