"""The shape of the load over a run: the request rate as a share of the asked-for rate.

- ``flat``: the rate all along;
- ``ramp``: from a tenth of it up to all of it over the first half, then all of it;
- ``rush``: a rush hour, a raised cosine from a quiet start up to a peak in the middle
  thirty times the start and back: 0.06 to 1.94 times the rate, its mean over the run
  the rate itself (as many requests in all as ``flat``).

Arrival times are a Poisson process of that rate (drawn by thinning), from the seed alone.
"""

from __future__ import annotations

import math
import random

RUSH_PEAK, FLOOR = 3.0, 0.1


def share(profile: str, fraction: float) -> float:
    """The rate at ``fraction`` (0 to 1) of the run, as a share of the asked-for rate."""
    f = min(1.0, max(0.0, fraction))
    if profile == "flat":
        return 1.0
    if profile == "ramp":
        return FLOOR + (1.0 - FLOOR) * min(1.0, 2.0 * f)
    if profile == "rush":
        raised = (1.0 - math.cos(2.0 * math.pi * f)) / 2.0
        return (FLOOR + (RUSH_PEAK - FLOOR) * raised) / _RUSH_MEAN
    raise ValueError(f"unknown profile {profile!r}")


_RUSH_MEAN = FLOOR + (RUSH_PEAK - FLOOR) / 2.0  # the raised cosine's mean: divided out
PEAK = {"flat": 1.0, "ramp": 1.0, "rush": RUSH_PEAK / _RUSH_MEAN}


def arrivals(profile: str, per_minute: float, minutes: float, rng: random.Random) -> list[float]:
    """Seconds from the start at which requests arrive: a Poisson process whose rate follows
    ``profile`` (thinning a process at the peak rate)."""
    span = minutes * 60.0
    peak = per_minute / 60.0 * PEAK[profile]
    times: list[float] = []
    if peak <= 0:
        return times
    at = rng.expovariate(peak)
    while at < span:
        if rng.random() * PEAK[profile] <= share(profile, at / span):
            times.append(at)
        at += rng.expovariate(peak)
    return times
