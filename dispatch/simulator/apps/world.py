"""What every app of a run shares: the client, the city, the clock and the run's stages."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from dispatch.adapters.http.client import ApiClient
from dispatch.simulator.apps.accounts import Accounts
from dispatch.simulator.apps.config import ApiRunConfig
from dispatch.simulator.city import City
from dispatch.simulator.streams import Streams

# A command whose outcome is unknown after the client's retries (``Reply.unknown``) is asked
# again with the same Idempotency-Key after a pause, in this many rounds in all
# (``ApiClient.call``'s ``rounds``).
UNKNOWN_ROUNDS = 3


@dataclass
class World:
    config: ApiRunConfig
    client: ApiClient
    accounts: Accounts
    city: City
    streams: Streams
    started: float = field(default_factory=time.monotonic)
    # Stages of the end: no more requests; rides not started cancelled (closing); trips in
    # progress ended at once and drivers offline (finishing).
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    finishing: asyncio.Event = field(default_factory=asyncio.Event)
    drivers_did: Counter[str] = field(default_factory=Counter)  # offers, accepts, ...

    def metres_s(self) -> float:
        return self.config.speed_kmh / 3.6


async def sleep_until(at: float, *stops: asyncio.Event) -> bool:
    """Sleep until ``at`` (``time.monotonic()``), or until one of ``stops`` is set: True when
    stopped early."""
    delay = at - time.monotonic()
    if any(s.is_set() for s in stops):
        return True
    if delay <= 0:
        return False
    if not stops:
        await asyncio.sleep(delay)
        return False
    waits = [asyncio.ensure_future(s.wait()) for s in stops]
    try:
        done, _ = await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    return bool(done)
