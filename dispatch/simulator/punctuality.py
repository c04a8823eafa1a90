"""How punctual the scheduled rides of a run were (docs/SIMULATION.md, "Scheduled rides").

A scheduled ride's rider is at the pickup at the time booked. Its driver is **on time**
when it arrives no later than ``ON_TIME_TOLERANCE_S`` (2 minutes) after that time. The
on-time share is over the rides that reached their time without the rider cancelling
first: those whose driver arrived, and those that ended without one other than by the
rider's cancellation (expired: no driver found), which count as not on time. **Lateness**
is how long after the time the driver arrived, 0 when it came early (p50 and p95 over the
rides whose driver arrived); **early** is how long before the time it arrived, 0 when late
(its mean over the same rides: the time drivers wait at the pickup for their rider).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dispatch.domain.ride import RideStatus
from dispatch.simulator.results import RideRecord
from dispatch.simulator.stats import mean, percentile

ON_TIME_TOLERANCE_S = 120.0


@dataclass(frozen=True, slots=True)
class Punctuality:
    booked: int  # scheduled rides (their time after warm-up)
    dispatched: int  # whose dispatch started (Ride.DispatchStarted)
    served: int  # a driver accepted
    completed: int
    cancelled: int
    expired: int
    overdue: int  # no driver by the time booked (Ride.Overdue)
    due: int  # reached their time without the rider cancelling first: the on-time base
    on_time: int
    on_time_pct: float | None
    late_s_p50: float | None
    late_s_p95: float | None
    early_s_mean: float | None
    dispatch_ahead_s_mean: float | None  # the time booked less the dispatch start, mean


def punctuality(
    rides: Sequence[RideRecord], tolerance_s: float = ON_TIME_TOLERANCE_S
) -> Punctuality:
    """The figures of ``rides`` (their scheduled ones; the others are ignored)."""
    mine = [r for r in rides if r.scheduled_s is not None]
    arrived = [(r.arrived_s - r.scheduled_s) for r in mine if r.arrived_s is not None
               and r.scheduled_s is not None]  # fmt: skip
    gave_up = [
        r for r in mine
        if r.arrived_s is None and r.outcome is not None and r.outcome != RideStatus.CANCELLED
    ]  # fmt: skip
    due = len(arrived) + len(gave_up)
    on_time = sum(late <= tolerance_s for late in arrived)
    ahead = [r.scheduled_s - r.dispatched_s for r in mine
             if r.scheduled_s is not None and r.dispatched_s is not None]  # fmt: skip
    return Punctuality(
        booked=len(mine),
        dispatched=sum(r.dispatched_s is not None for r in mine),
        served=sum(r.accepted_s is not None for r in mine),
        completed=sum(r.outcome == RideStatus.COMPLETED for r in mine),
        cancelled=sum(r.outcome == RideStatus.CANCELLED for r in mine),
        expired=sum(r.outcome == RideStatus.EXPIRED for r in mine),
        overdue=sum(r.overdue for r in mine),
        due=due,
        on_time=on_time,
        on_time_pct=100.0 * on_time / due if due else None,
        late_s_p50=percentile([max(0.0, late) for late in arrived], 50),
        late_s_p95=percentile([max(0.0, late) for late in arrived], 95),
        early_s_mean=mean([max(0.0, -late) for late in arrived]),
        dispatch_ahead_s_mean=mean(ahead),
    )
