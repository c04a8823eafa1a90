"""The log checker's part for scheduled rides (docs/MARKETPLACE.md, "Scheduled rides"):
every due scheduled ride was dispatched or explicitly expired.

A booked ride still waiting (neither found due nor ended) a minute past its time, by the
shard's clock (its log's last event), was never dispatched: ``scheduled_not_dispatched``.
One still scheduled (waiting, held or asking for its rider's lock) once its search window
closed was never expired: ``scheduled_not_expired``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dispatch.domain.ride import RIDE_ENDINGS, Ride
from dispatch.log import LogEvent, parse_time

# How long past its time a booked ride may still wait for its first due check (the matcher
# checks every few seconds; with no margin the check falls a little after the time).
DUE_SLACK_S = 60.0
_BOOKED, _DUE, _STARTED = Ride.Booked.TOPIC, Ride.DispatchDue.TOPIC, Ride.DispatchStarted.TOPIC
TOPICS = frozenset({_BOOKED, _DUE, _STARTED, *RIDE_ENDINGS})


@dataclass
class _Waiting:
    where: str
    scheduled_for: float
    expires_at: float
    due: bool = False


@dataclass
class ScheduledChecks:
    waiting: dict[str, _Waiting] = field(default_factory=dict)

    def check(self, e: LogEvent) -> None:
        if e.topic == _BOOKED:
            self.waiting[e.aggregate_id] = _Waiting(
                e.where, parse_time(e.data["scheduled_for"]), parse_time(e.data["expires_at"])
            )
        elif e.topic == _DUE:
            if (w := self.waiting.get(e.aggregate_id)) is not None:
                w.due = True
        else:  # started, or ended: no longer waiting for its dispatch
            self.waiting.pop(e.aggregate_id, None)

    def finish(self, last_time: float) -> list[tuple[str, str, str, str]]:
        """``(where, ride, kind, detail)`` of each booked ride left waiting past its due."""
        out = []
        for ride_id, w in self.waiting.items():
            if last_time > w.expires_at:
                out.append((w.where, ride_id, "scheduled_not_expired",
                            f"scheduled for {w.scheduled_for:.0f} (epoch s), its search "
                            f"ended at {w.expires_at:.0f}, but it was neither dispatched "
                            "nor expired"))  # fmt: skip
            elif not w.due and last_time > w.scheduled_for + DUE_SLACK_S:
                out.append((w.where, ride_id, "scheduled_not_dispatched",
                            f"scheduled for {w.scheduled_for:.0f} (epoch s) and never found "
                            f"due by {last_time:.0f}"))  # fmt: skip
        return out
