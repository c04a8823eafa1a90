"""Scheduled demand: which requests are booked ahead, and when (``--scheduled-share``).

The demand stream decides each request's time, as without bookings: that time is the
pickup time. A ``share`` of the requests is booked ahead instead of requested then: the
rider books at the pickup time less a lead time, drawn from a log-normal (median
``LEAD_MEDIAN_S``, 2 h; sigma ``LEAD_SIGMA``, 1.0) truncated to between the engine's least
lead plus ``BOOKING_SLACK_S`` and ``LEAD_CAP_S`` (24 h, or the engine's horizon if
shorter): most bookings a few hours ahead, some the evening before.

A run starts with an empty city at second 0, so a booking whose time falls before that
(most of them, in a run of an hour) is made at the start: those riders booked before the
run began, and their rides come due during it. A request whose pickup is too soon after
the start to be booked with the least lead (the first ~16 minutes with the defaults,
normally inside the warm-up) stays an immediate request.

Every draw is keyed by the request's index (``streams``), one generator per request: the
same seed books the same requests at the same times under any strategy, a request's draw
does not depend on the others, and the rest of the demand is untouched (with share 0
nothing is drawn at all).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from dispatch.simulator.results import Request
from dispatch.simulator.streams import Streams

LEAD_MEDIAN_S = 7_200.0
LEAD_SIGMA = 1.0
LEAD_CAP_S = 86_400.0
# A booking is sent on the first tick at or after its time: this keeps its lead above the
# engine's least lead even so.
BOOKING_SLACK_S = 60.0


@dataclass(frozen=True, slots=True)
class Booking:
    """Request ``index`` booked at ``booked_s`` (seconds since the start) for its pickup
    time ``pickup_s`` (the request's own time)."""

    index: int
    booked_s: float
    pickup_s: float

    @property
    def lead_s(self) -> float:
        return self.pickup_s - self.booked_s


def lead_s(u: float, least_s: float, most_s: float) -> float:
    """The lead time at quantile ``u`` (0 to 1) of the log-normal truncated to
    [``least_s``, ``most_s``] (inverse transform: one uniform draw, no rejection)."""
    if most_s <= least_s:
        return least_s
    normal, mu = NormalDist(), math.log(LEAD_MEDIAN_S)
    low = normal.cdf((math.log(least_s) - mu) / LEAD_SIGMA)
    high = normal.cdf((math.log(most_s) - mu) / LEAD_SIGMA)
    p = min(max(low + u * (high - low), 1e-12), 1 - 1e-12)
    return min(max(math.exp(mu + LEAD_SIGMA * normal.inv_cdf(p)), least_s), most_s)


def plan_bookings(
    requests: Sequence[Request],
    share: float,
    streams: Streams,
    min_lead_s: float,
    max_lead_s: float = LEAD_CAP_S,
    slack_s: float = BOOKING_SLACK_S,
) -> dict[int, Booking]:
    """The requests booked ahead, by index: each with probability ``share`` (its own
    stream), booked its lead before its time or at the start (second 0) if that is
    earlier; one that cannot be booked ``min_lead_s + slack_s`` ahead stays immediate."""
    if share <= 0:
        return {}
    least = min_lead_s + slack_s
    most = min(LEAD_CAP_S, max_lead_s)
    bookings: dict[int, Booking] = {}
    for index, request in enumerate(requests):
        rng = streams.rng("scheduled", index)
        if rng.random() >= share:
            continue
        booked = max(0.0, request.at_s - lead_s(rng.random(), least, most))
        if request.at_s - booked >= least:
            bookings[index] = Booking(index, round(booked, 3), request.at_s)
    return bookings


def bookings_hash(bookings: Sequence[Booking]) -> str:
    """SHA-256 (hex) of the bookings (index, booked and pickup second to the millisecond),
    in index order: two runs booked the same requests at the same times if it agrees."""
    digest = hashlib.sha256()
    for b in sorted(bookings, key=lambda b: b.index):
        digest.update(f"{b.index},{b.booked_s:.3f},{b.pickup_s:.3f}\n".encode())
    return digest.hexdigest()
