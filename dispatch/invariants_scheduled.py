"""The log checker's part for scheduled rides (docs/MARKETPLACE.md, "Scheduled rides"):
every due scheduled ride was dispatched or explicitly expired.

A booked ride still waiting (neither found due nor ended) a minute past its time, by the
shard's clock (its log's last event), was never dispatched: ``scheduled_not_dispatched``.
One still scheduled (waiting, held or asking for its rider's lock) once its search window
closed was never expired: ``scheduled_not_expired``. One with no driver (none offered or
assigned) a minute past its time, or a minute after it lost its driver past its time, whose
rider was never told (``Ride.Overdue``): ``scheduled_not_told_overdue``, flagged when a
driver comes or the ride ends after that minute (it was left untold meanwhile), or at the
log's end. A driver asked on another shard (``DriverAsked``) counts as a driver offered,
as the matcher counts it, until the ask ends (``AskEnded``). A rider told before the
ride's time (``scheduled_told_overdue_early``) or twice (``scheduled_told_overdue_twice``)
was told wrongly: the matcher tells once, at the time or after.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dispatch.domain.ride import RIDE_ENDINGS, Ride
from dispatch.log import LogEvent, parse_time

# How long past its time a booked ride may still wait for its first due check (the matcher
# checks every few seconds; with no margin the check falls a little after the time).
DUE_SLACK_S = 60.0
_BOOKED, _DUE, _STARTED = Ride.Booked.TOPIC, Ride.DispatchDue.TOPIC, Ride.DispatchStarted.TOPIC
_OVERDUE = Ride.Overdue.TOPIC
# A driver offered or assigned the ride / the ride back without one.
_DRIVER = frozenset({Ride.Offered.TOPIC, Ride.Accepted.TOPIC, Ride.DriverAsked.TOPIC})
_NO_DRIVER = frozenset(
    {Ride.OfferDeclined.TOPIC, Ride.OfferExpired.TOPIC, Ride.CancelledByDriver.TOPIC,
     Ride.AskEnded.TOPIC}
)  # fmt: skip
TOPICS = frozenset({_BOOKED, _DUE, _STARTED, _OVERDUE, *_DRIVER, *_NO_DRIVER, *RIDE_ENDINGS})


@dataclass
class _Waiting:
    where: str
    scheduled_for: float
    expires_at: float
    due: bool = False


@dataclass
class _Untold:
    """A booked ride whose rider was not told overdue yet."""

    where: str
    scheduled_for: float
    driverless_since: float | None  # None: a driver is offered or assigned

    def left_untold_by(self, at: float) -> bool:
        """Whether, by ``at``, it had been driverless a minute past its time, untold."""
        if self.driverless_since is None:
            return False
        return at > max(self.scheduled_for, self.driverless_since) + DUE_SLACK_S

    def violation(self, ride_id: str, until: float) -> tuple[str, str, str, str]:
        assert self.driverless_since is not None
        since = max(self.scheduled_for, self.driverless_since)
        return (self.where, ride_id, "scheduled_not_told_overdue",
                f"scheduled for {self.scheduled_for:.0f} (epoch s), with no driver from "
                f"{since:.0f} to {until:.0f}, and its rider never told (Ride.Overdue)")  # fmt: skip


@dataclass
class ScheduledChecks:
    waiting: dict[str, _Waiting] = field(default_factory=dict)
    untold: dict[str, _Untold] = field(default_factory=dict)
    # rides found left untold before the log's end (a driver came, or the ride ended, late)
    flagged: list[tuple[str, str, str, str]] = field(default_factory=list)
    told: set[str] = field(default_factory=set)  # rides whose rider was told overdue

    def check(self, e: LogEvent) -> None:
        if e.topic in _DRIVER or e.topic in _NO_DRIVER or e.topic == _OVERDUE:
            self._told(e)
        elif e.topic == _BOOKED:
            at = parse_time(e.data["scheduled_for"])
            self.waiting[e.aggregate_id] = _Waiting(e.where, at, parse_time(e.data["expires_at"]))
            self.untold[e.aggregate_id] = _Untold(e.where, at, e.at)
        elif e.topic == _DUE:
            if (w := self.waiting.get(e.aggregate_id)) is not None:
                w.due = True
        elif e.topic == _STARTED:  # no longer waiting for its dispatch
            self.waiting.pop(e.aggregate_id, None)
        else:  # ended
            self.waiting.pop(e.aggregate_id, None)
            self.told.discard(e.aggregate_id)
            untold = self.untold.pop(e.aggregate_id, None)
            if untold is not None and untold.left_untold_by(e.at):
                self.flagged.append(untold.violation(e.aggregate_id, e.at))

    def _told(self, e: LogEvent) -> None:
        """A driver came or went, or the rider was told overdue."""
        untold = self.untold.get(e.aggregate_id)
        if untold is None:
            if e.topic == _OVERDUE and e.aggregate_id in self.told:
                self.flagged.append((e.where, e.aggregate_id, "scheduled_told_overdue_twice",
                                     "its rider was told overdue before"))  # fmt: skip
            return
        if e.topic == _OVERDUE:
            del self.untold[e.aggregate_id]
            self.told.add(e.aggregate_id)
            if e.at < untold.scheduled_for - 1e-6:
                self.flagged.append((e.where, e.aggregate_id, "scheduled_told_overdue_early",
                                     f"told at {e.at:.0f} (epoch s), before its time "
                                     f"{untold.scheduled_for:.0f}"))  # fmt: skip
        elif e.topic in _DRIVER:
            if untold.left_untold_by(e.at):  # a driver came, but after a minute untold
                self.flagged.append(untold.violation(e.aggregate_id, e.at))
                del self.untold[e.aggregate_id]  # (reported once)
            else:
                untold.driverless_since = None
        elif untold.driverless_since is None:  # the driver went: driverless from now
            untold.where, untold.driverless_since = e.where, e.at

    def finish(self, last_time: float) -> list[tuple[str, str, str, str]]:
        """``(where, ride, kind, detail)`` of each booked ride left waiting past its due, or
        left driverless past its time untold."""
        out = list(self.flagged)
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
        for ride_id, u in self.untold.items():
            if u.left_untold_by(last_time):
                out.append(u.violation(ride_id, last_time))
        self.waiting.clear()  # (each reported once)
        self.untold.clear()
        self.flagged.clear()
        self.told.clear()
        return out
