"""Where ride requests come from: a synthetic city's hot spots or a recorded trace.

The demand stream is drawn before the run, from its own generator, and depends on nothing
the engine decides: two strategies run on one seed get byte-identical requests (the report
prints their hash).
"""

from __future__ import annotations

from collections.abc import Callable

from dispatch.simulator.city import City
from dispatch.simulator.results import Request
from dispatch.simulator.streams import Streams

Served = Callable[[tuple[float, float], tuple[float, float]], bool]
REDRAWS = 100  # draws of a trip inside the service areas before one outside is kept


def synthetic_demand(
    city: City,
    per_minute: float,
    minutes: float,
    streams: Streams,
    trip_mean_m: float,
    served: Served | None = None,
) -> list[Request]:
    """Poisson arrivals at ``per_minute``; pickups mostly around hot spots, drop-offs about
    ``trip_mean_m`` away. With ``served`` (the markets' service areas), a trip it refuses is
    drawn again, up to ``REDRAWS`` times (then kept: the engine refuses it, and the run
    counts it among its rejections)."""
    rng = streams.rng("demand")
    end_s, rate_per_s = minutes * 60.0, per_minute / 60.0
    requests: list[Request] = []
    at = rng.expovariate(rate_per_s)
    while at < end_s:
        pickup = city.demand_point(rng)
        dropoff = city.near(rng, *pickup, trip_mean_m)
        for _ in range(REDRAWS if served is not None else 0):
            if served is not None and served(pickup, dropoff):
                break
            pickup = city.demand_point(rng)
            dropoff = city.near(rng, *pickup, trip_mean_m)
        requests.append(Request(round(at, 3), pickup, dropoff))
        at += rng.expovariate(rate_per_s)
    return requests
