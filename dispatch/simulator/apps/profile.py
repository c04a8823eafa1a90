"""The shape of the load over a run: the request rate as a share of the asked-for rate.

- ``flat``: the rate all along;
- ``ramp``: from a tenth of it up to all of it over the first half, then all of it;
- ``rush``: a rush hour, a raised cosine from a quiet start up to a peak in the middle
  thirty times the start and back: 0.06 to 1.94 times the rate, its mean over the run
  the rate itself (as many requests in all as ``flat``).

Arrival times are a Poisson process of that rate (drawn by thinning), from the seed alone.
The drivers follow the rising part of the shape (``joining``): under ``ramp`` and ``rush``
they go online as the load rises, as many online at each moment as the rate's share of its
peak, and stay online.
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


def joining(profile: str, drivers: int, minutes: float) -> list[float]:
    """Seconds from the start at which each driver (by index) goes online: all at once
    (``flat``); else the first at once and each next one when the rate's share of its peak,
    rising over the first half of the run, reaches its place among the drivers (``ramp``: a
    tenth at once, all by the middle; ``rush``: about one in thirty at once, all at the
    peak). Nobody goes offline before the end."""
    span = minutes * 60.0
    out = []
    for k in range(drivers):
        wanted = (k + 1) / drivers
        if k == 0 or profile == "flat" or _online(profile, 0.0) >= wanted:
            out.append(0.0)
            continue
        low, high = 0.0, 0.5  # the share of the peak rises over the first half
        for _ in range(40):
            mid = (low + high) / 2.0
            low, high = (mid, high) if _online(profile, mid) < wanted else (low, mid)
        out.append(round(high * span, 3))
    return out


def _online(profile: str, fraction: float) -> float:
    """The share of the drivers online at ``fraction`` of the run (its rising part)."""
    return min(1.0, share(profile, min(fraction, 0.5)) / PEAK[profile])
