"""Keyed random streams, so that two strategies run on one seed see the same world.

One generator shared by everything would drift apart as soon as two strategies make
different decisions (a driver offered a ride under one strategy draws a response the other
strategy's run spends on something else). Here every random choice draws from a generator
keyed by what it is about: the demand stream by the seed alone; a rider's cancellation by
the request; a driver's answer by the driver and the ride offered; a trip's speed by the
ride and the leg. The same request or offer gets the same draw under any strategy.
"""

from __future__ import annotations

import hashlib
import random


class Streams:
    def __init__(self, seed: int) -> None:
        self.seed = seed

    def rng(self, stream: str, *key: object) -> random.Random:
        """A generator for ``stream`` and ``key``: the same three give the same draws."""
        name = "\x1f".join([str(self.seed), stream, *map(str, key)])
        digest = hashlib.blake2b(name.encode(), digest_size=16).digest()
        return random.Random(int.from_bytes(digest, "big"))
