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
from dispatch.simulator.apps.profile import arrivals, joining
from dispatch.simulator.apps.report import ApiReport, build_report
from dispatch.simulator.apps.rider_app import Riders, RideSeen, request
from dispatch.simulator.apps.stats import Endpoints, LoopMonitor
from dispatch.simulator.apps.world import World, sleep_until
from dispatch.simulator.city import City
from dispatch.simulator.streams import Streams

logger = logging.getLogger(__name__)
SIGN_IN_AT_ONCE = 32  # registrations and first calls in flight while the city signs in
CLOSE_S = 30.0  # for each stage of the cleanup
FEED_AHEAD_S = 1.0  # a request's task is made this long before its planned time
SIGN_IN_S = 600.0  # for the whole city to register (or sign in) and go online
Progress = Callable[[str, float], None]


class Stopped(Exception):
    """The run was stopped by a second SIGTERM, with no report (its apps were stopped and,
    with cleanup, its drivers asked to go offline)."""


async def run_against(config: ApiRunConfig, progress: Progress | None = None) -> ApiReport:
    """Run ``config`` against its deployment; the report of what the apps saw. A SIGTERM
    ends the run early: the stages of the end run as after the run's minutes (riders
    cancel, trips end, drivers go offline; unless no cleanup) and the report says
    ``stopped_early``. A second SIGTERM stops at once: ``Stopped``."""
    recorder = Endpoints()
    client = ApiClient(config.url, recorder, config.connections, rng=random.Random(config.seed))
    loop, main = asyncio.get_running_loop(), asyncio.current_task()
    stop = asyncio.Event()

    def on_sigterm() -> None:
        if stop.is_set() and main is not None:
            main.cancel()
        stop.set()

    handled = True
    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
        handled = False
    try:
        return await _run(config, client, recorder, progress or (lambda _stage, _s: None), stop)
    except asyncio.CancelledError:
        if stop.is_set():
            raise Stopped("stopped by a second SIGTERM") from None
        raise
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGTERM)
        await client.close()


async def _run(
    config: ApiRunConfig,
    client: ApiClient,
    recorder: Endpoints,
    progress: Progress,
    stop: asyncio.Event,
) -> ApiReport:
    city = City.sized(config.city_km, centre=config.centre)
    world = World(config, client, Accounts(client), city, Streams(config.seed))
    monitor = LoopMonitor()
    tasks: list[asyncio.Task[Any]] = [asyncio.ensure_future(monitor.run())]
    known = saved.load(config.credentials) if config.credentials is not None else []
    drivers: list[DriverApp] = []
    riders = Riders(world, [a for a in known if a.role == "rider"])
    try:
        await _unless_stopped(sign_in_city(world, known, drivers), stop)
        signed_in_s = time.monotonic() - world.started
        world.started = time.monotonic()  # the run's clock starts when the city is online
        monitor.restart()
        recorder.start(world.started, config.warmup_s, config.minutes * 60.0)
        lives = []
        for app in drivers:
            if app.online:
                tasks += [asyncio.ensure_future(app.listen()), asyncio.ensure_future(app.pings())]
                lives.append(asyncio.ensure_future(app.life()))
            else:  # a driver who goes online later in the profile's rise
                lives.append(asyncio.ensure_future(_join_later(world, app, tasks)))
        times = arrivals(config.profile, config.demand, config.minutes,
                         world.streams.rng("arrivals"))  # fmt: skip
        rides = [RideSeen(i, at) for i, at in enumerate(times)]
        requests: list[asyncio.Task[None]] = []
        feeder = asyncio.ensure_future(_feed(world, riders, rides, requests, tasks))
        tasks += [*lives, feeder]
        await _stage(progress, "running", config.minutes * 60.0, world.started, stop)
        await _until([feeder], CLOSE_S, progress, "running", stop)
        await _until(requests, config.drain_s, progress, "draining", stop)
        if stop.is_set():  # the close that follows is no steady state
            recorder.steady_until = min(recorder.steady_until, time.monotonic())
        if config.cleanup:
            world.closing.set()  # riders cancel the rides not started
            await _until_true(lambda: _all_past_start(rides, requests), CLOSE_S)
            world.finishing.set()  # trips end at once
            await _until(lives, CLOSE_S, progress, "ending trips")
            await _until(requests, CLOSE_S, progress, "ending rides")
        await _close(world, tasks, drivers)  # the report counts the calls of the close
        report = build_report(world, rides, drivers, riders, recorder, monitor, signed_in_s)
        report.doc["stopped_early"] = stop.is_set()
        report.doc["stopped_at_s"] = (
            round(recorder.steady_until - world.started, 2) if stop.is_set() else None
        )
        return report
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


async def _join_later(world: World, app: DriverApp, tasks: list[asyncio.Task[Any]]) -> None:
    """Online at the driver's time in the profile (``profile.joining``), then its app's
    life; never, once the run closes first."""
    if await sleep_until(world.started + app.joins_at_s, world.closing):
        return
    if not await app.go_online():
        world.drivers_did["joining refused"] += 1
        return
    world.drivers_did["joined later"] += 1
    app.joined_at_s = time.monotonic() - world.started
    tasks += [asyncio.ensure_future(app.listen()), asyncio.ensure_future(app.pings())]
    await app.life()


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


async def _unless_stopped(sign_in: Awaitable[None], stop: asyncio.Event) -> None:
    """The sign-in, unless a SIGTERM comes first: then it is cancelled (the run's close
    takes the drivers online so far offline) and ``Stopped`` raised."""
    signing = asyncio.ensure_future(sign_in)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({signing, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not signing.done():
            signing.cancel()
        await asyncio.gather(signing, stopped, return_exceptions=True)
    if signing.cancelled():
        raise Stopped("stopped by SIGTERM while the city signed in")
    signing.result()  # its AccountError, if it failed


async def _feed(
    world: World,
    riders: Riders,
    rides: list[RideSeen],
    requests: list[asyncio.Task[None]],
    tasks: list[asyncio.Task[Any]],
) -> None:
    """Each request's task, made ``FEED_AHEAD_S`` before its time (not all at the start: a
    long run of a busy city plans millions), into ``requests`` and ``tasks``."""
    for seen in rides:
        if await sleep_until(world.started + seen.planned_s - FEED_AHEAD_S, world.closing):
            return  # the run closed first: the rest are never sent
        task = asyncio.ensure_future(request(world, riders, seen))
        requests.append(task)
        tasks.append(task)


async def sign_in_city(world: World, known: list[Account], drivers: list[DriverApp]) -> None:
    """Into ``drivers``: the drivers (saved ones first, then new ones) signed in, and those
    the profile has online from the start online (the others' ``joins_at_s`` set: they go
    online later, ``_join_later``), within ``SIGN_IN_S``; an ``AccountError`` (those online
    so far go offline) if not."""
    config = world.config
    gate = asyncio.Semaphore(SIGN_IN_AT_ONCE)
    saved_drivers = [a for a in known if a.role == "driver"][: config.drivers]
    rng = world.streams.rng("homes")
    homes = [world.city.demand_point(rng) for _ in range(config.drivers - len(saved_drivers))]
    drivers += [DriverApp(world, a, i) for i, a in enumerate(saved_drivers)]

    async def new_driver(i: int, home: tuple[float, float]) -> None:
        async with gate:
            account = await world.accounts.register("driver", f"Driver {i + 1}", home)
        # By its place in the city, not by when its registration ended: a driver's random
        # streams follow its index, so a seed gives the same city run after run.
        drivers.append(DriverApp(world, account, len(saved_drivers) + i))

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
            drivers.sort(key=lambda app: app.index)
            times = joining(config.profile, len(drivers), config.minutes)
            for app, at in zip(drivers, times, strict=True):
                app.joins_at_s = at
            async with asyncio.TaskGroup() as group:
                for app in [d for d in drivers if d.joins_at_s == 0.0]:
                    group.create_task(online(app))
        except ExceptionGroup as failed:
            raise _account_error(failed) from None

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


def _account_error(group: BaseExceptionGroup[Any]) -> AccountError:
    """The first ``AccountError`` of a task group's failures, or the first failure told as
    one (a reply the sign-in could not read), so the city's sign-in ends the same way."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        error = pending.pop(0)
        if isinstance(error, BaseExceptionGroup):
            pending[:0] = list(error.exceptions)
        else:
            leaves.append(error)
    for error in leaves:
        if isinstance(error, AccountError):
            return error
    return AccountError(f"signing in failed: {leaves[0]!r}")


async def _stage(
    progress: Progress, name: str, seconds: float, since: float, stop: asyncio.Event
) -> None:
    end = since + seconds
    while (left := end - time.monotonic()) > 0 and not stop.is_set():
        await sleep_until(time.monotonic() + min(1.0, left), stop)
        progress(name, time.monotonic() - since)


async def _until(
    tasks: list[asyncio.Task[Any]],
    bound_s: float,
    progress: Progress,
    name: str,
    stop: asyncio.Event | None = None,
) -> None:
    """Until every task is done, ``bound_s`` passed, or ``stop`` is set."""
    pending = [t for t in tasks if not t.done()]
    started = time.monotonic()
    while pending and time.monotonic() - started < bound_s:
        if stop is not None and stop.is_set():
            return
        await asyncio.wait(pending, timeout=1.0)
        pending = [t for t in pending if not t.done()]
        progress(name, time.monotonic() - started)


def _all_past_start(rides: list[RideSeen], requests: list[asyncio.Task[None]]) -> bool:
    """Every request made is past its start or done; those never made (a SIGTERM stopped
    the feed first) are never sent."""
    made = rides[: len(requests)]
    return all(t.done() or _past_start(r) for r, t in zip(made, requests, strict=True))


def _past_start(ride: RideSeen) -> bool:
    """The ride ended, or its trip started, or it was never made."""
    return bool(ride.end) or ride.started_s is not None or (ride.status != -1 and not ride.ride_id)


async def _until_true(done: Callable[[], bool], bound_s: float) -> None:
    end = time.monotonic() + bound_s
    while not done() and time.monotonic() < end:
        await asyncio.sleep(0.2)


async def _bounded(calls: list[Awaitable[Any]], bound_s: float) -> None:
    """The calls side by side for at most ``bound_s``; those still running are cancelled
    (none outlives the stage, nor records a call after the report), also when the stage
    itself is cancelled."""
    tasks = [asyncio.ensure_future(c) for c in calls]
    try:
        if tasks:
            await asyncio.wait(tasks, timeout=bound_s)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
