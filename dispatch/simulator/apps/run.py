"""A run against a deployment: the population signs in, goes online and follows its
streams; requests arrive on the profile's schedule for the run's minutes; the rides in
flight get ``drain_s`` to end; then (unless told not to) the run cleans up: rides not
started are cancelled by their riders, trips in progress end, drivers go offline. It stops
by itself: every stage has a bound, and whatever is still running after the last is
cancelled."""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from dispatch.adapters.http.client import ApiClient
from dispatch.simulator.apps import accounts as saved
from dispatch.simulator.apps.accounts import Account, AccountError, Accounts
from dispatch.simulator.apps.config import ApiRunConfig
from dispatch.simulator.apps.driver_app import DriverApp
from dispatch.simulator.apps.profile import arrivals
from dispatch.simulator.apps.report import ApiReport, build_report
from dispatch.simulator.apps.rider_app import Riders, RideSeen, request
from dispatch.simulator.apps.stats import Endpoints, LoopMonitor
from dispatch.simulator.apps.world import World
from dispatch.simulator.city import City
from dispatch.simulator.streams import Streams

logger = logging.getLogger(__name__)
SIGN_IN_AT_ONCE = 32  # registrations and first calls in flight while the city signs in
CLOSE_S = 30.0  # for each stage of the cleanup
SIGN_IN_S = 600.0  # for the whole city to register (or sign in) and go online
Progress = Callable[[str, float], None]


class Stopped(Exception):
    """The run was stopped by SIGTERM (it cleaned up first, unless told not to)."""


async def run_against(config: ApiRunConfig, progress: Progress | None = None) -> ApiReport:
    """Run ``config`` against its deployment; the report of what the apps saw. SIGTERM
    stops it as SIGINT does: every app stops, drivers go offline (with cleanup), and
    ``Stopped`` is raised."""
    recorder = Endpoints()
    client = ApiClient(config.url, recorder, config.connections, rng=random.Random(config.seed))
    loop, main = asyncio.get_running_loop(), asyncio.current_task()
    signalled: list[int] = []

    def stop() -> None:
        signalled.append(signal.SIGTERM)
        if main is not None:
            main.cancel()

    handled = True
    try:
        loop.add_signal_handler(signal.SIGTERM, stop)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
        handled = False
    try:
        return await _run(config, client, recorder, progress or (lambda _stage, _s: None))
    except asyncio.CancelledError:
        if signalled:
            raise Stopped("stopped by SIGTERM") from None
        raise
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGTERM)
        await client.close()


async def _run(
    config: ApiRunConfig, client: ApiClient, recorder: Endpoints, progress: Progress
) -> ApiReport:
    city = City.sized(config.city_km, centre=config.centre)
    world = World(config, client, Accounts(client), city, Streams(config.seed))
    monitor = LoopMonitor()
    tasks: list[asyncio.Task[Any]] = [asyncio.ensure_future(monitor.run())]
    known = saved.load(config.credentials) if config.credentials is not None else []
    drivers: list[DriverApp] = []
    riders = Riders(world, [a for a in known if a.role == "rider"])
    try:
        await _sign_in(world, known, drivers)
        signed_in_s = time.monotonic() - world.started
        world.started = time.monotonic()  # the run's clock starts when the city is online
        monitor.restart()
        recorder.start(world.started, config.warmup_s, config.minutes * 60.0)
        for app in drivers:
            tasks += [asyncio.ensure_future(app.listen()), asyncio.ensure_future(app.pings())]
        lives = [asyncio.ensure_future(app.life()) for app in drivers]
        times = arrivals(config.profile, config.demand, config.minutes,
                         world.streams.rng("arrivals"))  # fmt: skip
        rides = [RideSeen(i, at) for i, at in enumerate(times)]
        requests = [asyncio.ensure_future(request(world, riders, seen)) for seen in rides]
        tasks += lives + requests
        await _stage(progress, "running", config.minutes * 60.0, world.started)
        await _until(requests, config.drain_s, progress, "draining")
        if config.cleanup:
            world.closing.set()  # riders cancel the rides not started
            await _until_true(lambda: all(_past_start(r) for r in rides), CLOSE_S)
            world.finishing.set()  # trips end at once
            await _until(lives, CLOSE_S, progress, "ending trips")
            await _until(requests, CLOSE_S, progress, "ending rides")
        await _close(world, tasks, drivers)  # the report counts the calls of the close
        return build_report(world, rides, drivers, riders, recorder, monitor, signed_in_s)
    finally:
        if tasks:  # not closed yet: the run failed or was cancelled on the way
            await _close(world, tasks, drivers)
        if config.credentials is not None:  # the saved ones this run did not use too
            used = [d.account for d in drivers] + riders.all
            ids = {a.id for a in used}
            try:
                saved.save(config.credentials, used + [a for a in known if a.id not in ids])
            except OSError as error:
                logger.warning(
                    "the credentials were not saved to %s: %s", config.credentials, error
                )


async def _close(world: World, tasks: list[asyncio.Task[Any]], drivers: list[DriverApp]) -> None:
    """Stop every app's tasks; then, with cleanup, take the drivers still online offline."""
    world.closing.set()
    world.finishing.set()
    for app in drivers:  # open-loop batches still waiting for their answer
        tasks += app.pending
        app.pending.clear()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    tasks.clear()
    if world.config.cleanup:
        await _bounded([app.go_offline() for app in drivers if app.online], CLOSE_S)


async def _sign_in(world: World, known: list[Account], drivers: list[DriverApp]) -> None:
    """Into ``drivers``: the drivers (saved ones first, then new ones) signed in and online,
    within ``SIGN_IN_S``; an ``AccountError`` (those online so far go offline) if not."""
    config = world.config
    gate = asyncio.Semaphore(SIGN_IN_AT_ONCE)
    saved_drivers = [a for a in known if a.role == "driver"][: config.drivers]
    rng = world.streams.rng("homes")
    homes = [world.city.demand_point(rng) for _ in range(config.drivers - len(saved_drivers))]
    drivers += [DriverApp(world, a, i) for i, a in enumerate(saved_drivers)]

    async def new_driver(i: int, home: tuple[float, float]) -> None:
        async with gate:
            account = await world.accounts.register("driver", f"Driver {i + 1}", home)
        drivers.append(DriverApp(world, account, len(drivers)))

    async def online(app: DriverApp) -> None:
        async with gate:
            await world.accounts.token(app.account, strict=True)
            if not await app.go_online():
                raise AccountError(f"driver {app.account.id} could not go online")

    async def everyone() -> None:
        """Registrations, then going online; the first failure stops the others (a task
        group cancels them), so a city that cannot sign in leaves nothing running."""
        try:
            async with asyncio.TaskGroup() as group:
                for i, home in enumerate(homes):
                    group.create_task(new_driver(i, home))
            async with asyncio.TaskGroup() as group:
                for app in list(drivers):
                    group.create_task(online(app))
        except* AccountError as failed:
            raise failed.exceptions[0] from None

    try:
        await asyncio.wait_for(everyone(), SIGN_IN_S)
    except (AccountError, TimeoutError) as error:
        await _bounded([app.go_offline() for app in drivers if app.online], CLOSE_S)
        what = str(error) or f"not done within {SIGN_IN_S:g} s"
        raise AccountError(
            f"the city could not sign in ({len(drivers)} of {config.drivers} drivers "
            f"registered): {what}. A deployment's registrations a minute per address "
            "(DISPATCH_RATE_LIMIT_REGISTRATIONS_PER_MIN, and as many token refreshes) bound "
            "how fast a city signs up or in: for a load test, start it with 0"
        ) from None


async def _stage(progress: Progress, name: str, seconds: float, since: float) -> None:
    end = since + seconds
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(min(1.0, left))
        progress(name, time.monotonic() - since)


async def _until(
    tasks: list[asyncio.Task[Any]], bound_s: float, progress: Progress, name: str
) -> None:
    """Until every task is done or ``bound_s`` passed."""
    pending = [t for t in tasks if not t.done()]
    started = time.monotonic()
    while pending and time.monotonic() - started < bound_s:
        await asyncio.wait(pending, timeout=1.0)
        pending = [t for t in pending if not t.done()]
        progress(name, time.monotonic() - started)


def _past_start(ride: RideSeen) -> bool:
    """The ride ended, or its trip started, or it was never made."""
    return bool(ride.end) or ride.started_s is not None or (ride.status != -1 and not ride.ride_id)


async def _until_true(done: Callable[[], bool], bound_s: float) -> None:
    end = time.monotonic() + bound_s
    while not done() and time.monotonic() < end:
        await asyncio.sleep(0.2)


async def _bounded(calls: list[Awaitable[Any]], bound_s: float) -> None:
    if calls:
        await asyncio.wait([asyncio.ensure_future(c) for c in calls], timeout=bound_s)
