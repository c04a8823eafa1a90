"""The rules of scheduled rides (docs/MARKETPLACE.md, "Scheduled rides"): how far ahead a
ride may be booked, how many a rider may hold, until when it is free to cancel, how long
it is searched for after its time, and how early its dispatch starts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dispatch.domain.errors import ScheduledTimeOutOfRange
from dispatch.domain.ride import Booking

# A ride booked inside the free-cancel cutoff may still be cancelled free this long after
# it was booked (not past its time).
BOOKING_GRACE_S = 300.0


@dataclass(frozen=True, slots=True)
class SchedulingRules:
    """``min_lead_s``: the least time between booking and the time booked; ``horizon_s``:
    the most; ``max_per_rider``: the scheduled rides a rider may hold at once;
    ``free_cancel_s``: cancelling is free until this long before the time (a ride booked
    later than that: for ``BOOKING_GRACE_S`` after booking); ``search_after_s``: how long
    after its time an unserved ride is still searched for before it expires;
    ``margin_s``: how much earlier than its expected pickup a ride's dispatch starts."""

    min_lead_s: float = 900.0
    horizon_s: float = 7 * 86_400.0
    max_per_rider: int = 3
    free_cancel_s: float = 3_600.0
    search_after_s: float = 900.0
    margin_s: float = 300.0

    def __post_init__(self) -> None:
        if not 0 < self.min_lead_s < self.horizon_s:
            raise ValueError(
                f"the least lead time ({self.min_lead_s} s) must be above 0 and below the "
                f"horizon ({self.horizon_s} s)"
            )
        if self.max_per_rider < 1:
            raise ValueError(f"max_per_rider must be at least 1, got {self.max_per_rider}")
        for name in ("free_cancel_s", "search_after_s", "margin_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be at least 0, got {getattr(self, name)}")

    def check(self, scheduled_for: datetime, at: datetime) -> None:
        """``ScheduledTimeOutOfRange`` unless ``scheduled_for`` lies between the least lead
        time and the horizon from ``at`` (the shard's clock)."""
        ahead = (scheduled_for - at).total_seconds()
        if ahead < self.min_lead_s:
            raise ScheduledTimeOutOfRange(
                f"scheduled_for must be at least {_span(self.min_lead_s)} ahead; it is "
                f"{_span(ahead)} {'ahead' if ahead >= 0 else 'past'}"
            )
        if ahead > self.horizon_s:
            raise ScheduledTimeOutOfRange(
                f"scheduled_for must be at most {_span(self.horizon_s)} ahead; it is "
                f"{_span(ahead)} ahead"
            )

    def booking(self, scheduled_for: datetime, at: datetime) -> Booking:
        """The booking of a ride for ``scheduled_for`` made at ``at`` (checked or not)."""
        free_until = scheduled_for - timedelta(seconds=self.free_cancel_s)
        grace = min(at + timedelta(seconds=BOOKING_GRACE_S), scheduled_for)
        return Booking(
            scheduled_for=scheduled_for,
            free_cancel_until=max(free_until, grace),
            expires_at=scheduled_for + timedelta(seconds=self.search_after_s),
        )


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds >= 86_400:
        return f"{seconds / 86_400:.4g} days"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.4g} hours"
    if seconds >= 60:
        return f"{seconds / 60:.4g} minutes"
    return f"{seconds:.4g} s"
