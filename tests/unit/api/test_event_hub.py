"""The event hub hands log events from the runner's thread to each stream's event loop."""

from __future__ import annotations

import asyncio
import threading

from dispatch.api.events import EventHub
from dispatch.log import LogEvent

RIDE, OTHER = "ride-1", "ride-2"


def ride_event(aggregate_id: str, position: int) -> LogEvent:
    return LogEvent(0, position, aggregate_id, position, "dispatch.Ride.Offered", 0.0, {})


def publish_from_another_thread(hub: EventHub, events: list[LogEvent]) -> None:
    thread = threading.Thread(target=lambda: [hub.publish(e) for e in events])
    thread.start()
    thread.join()


def test_a_subscriber_gets_the_events_of_its_aggregate_in_order() -> None:
    async def scenario() -> list[int]:
        hub = EventHub()
        sub = hub.subscribe("ride", RIDE)
        events = [ride_event(RIDE, 1), ride_event(OTHER, 2), ride_event(RIDE, 3)]
        publish_from_another_thread(hub, events)
        got = [await asyncio.wait_for(sub.queue.get(), 1) for _ in range(2)]
        hub.unsubscribe(sub)
        return [e.position for e in got]

    assert asyncio.run(scenario()) == [1, 3]


def test_after_unsubscribing_nothing_more_is_delivered() -> None:
    async def scenario() -> tuple[int, int]:
        hub = EventHub()
        sub = hub.subscribe("ride", RIDE)
        hub.unsubscribe(sub)
        publish_from_another_thread(hub, [ride_event(RIDE, 1)])
        await asyncio.sleep(0.01)
        return sub.queue.qsize(), hub.count()

    assert asyncio.run(scenario()) == (0, 0)


def test_a_subscriber_that_falls_behind_is_marked_and_gets_no_gap() -> None:
    async def scenario() -> tuple[bool, list[int]]:
        hub = EventHub()
        sub = hub.subscribe("ride", RIDE)
        size = sub.queue.maxsize
        publish_from_another_thread(hub, [ride_event(RIDE, i) for i in range(1, size + 2)])
        await asyncio.sleep(0.05)
        first = sub.queue.get_nowait()
        publish_from_another_thread(hub, [ride_event(RIDE, size + 2)])  # room now, but too late
        await asyncio.sleep(0.05)
        rest = [sub.queue.get_nowait().position for _ in range(sub.queue.qsize())]
        return sub.overflowed, [first.position, *rest]

    overflowed, positions = asyncio.run(scenario())
    assert overflowed
    assert positions == list(range(1, len(positions) + 1)), "what was queued is contiguous"
    assert positions[-1] < 1_002
