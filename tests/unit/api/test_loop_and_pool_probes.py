"""The API's probes (``ApiMetrics.probe``): how late the event loop wakes, and how long a
job waits for a thread of the pool that runs sync endpoints; a loop held by blocking work,
or a pool with every thread busy, shows in them. The running app observes both."""

from __future__ import annotations

import asyncio
import time

import anyio.to_thread
from api_world import World

from dispatch.api.metrics import ApiMetrics

LAG = "dispatch_api_event_loop_lag_seconds"
QUEUE = "dispatch_api_threadpool_queue_seconds"


def metrics_of(world: World) -> ApiMetrics:
    return world.client.app.state.ctx.metrics  # type: ignore[no-any-return,attr-defined]


def value(metrics: ApiMetrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


def test_a_loop_held_by_blocking_work_shows_as_lag(world: World) -> None:
    metrics = metrics_of(world)
    before = value(metrics, f"{LAG}_sum")

    async def main() -> None:
        probe = asyncio.create_task(metrics.probe(every_s=0.05))
        await asyncio.sleep(0.01)
        time.sleep(0.3)  # holds the loop: the probe's sleep ends 0.25 s late at least
        await asyncio.sleep(0.2)
        probe.cancel()

    asyncio.run(main())
    assert value(metrics, f"{LAG}_sum") - before >= 0.2


def test_a_pool_with_every_thread_busy_shows_as_queue_time(world: World) -> None:
    metrics = metrics_of(world)
    before = value(metrics, f"{QUEUE}_sum")

    async def main() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 1
        busy = asyncio.create_task(anyio.to_thread.run_sync(time.sleep, 0.4))
        await asyncio.sleep(0.01)  # the one thread is taken
        probe = asyncio.create_task(metrics.probe(every_s=0.01))
        await busy
        await asyncio.sleep(0.1)
        probe.cancel()

    asyncio.run(main())
    assert value(metrics, f"{QUEUE}_sum") - before >= 0.25


def test_the_running_app_observes_both(world: World) -> None:
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        text = world.client.get("/metrics").text
        if f"{LAG}_count 0.0" not in text and f"{QUEUE}_count 0.0" not in text:
            break
        time.sleep(0.2)
    assert f"{LAG}_count" in text and f"{QUEUE}_count" in text
    assert f"{LAG}_count 0.0" not in text and f"{QUEUE}_count 0.0" not in text
