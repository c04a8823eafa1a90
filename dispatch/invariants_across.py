"""The checks ``replay verify`` makes over all shards together (issue #14).

A ride lives in its pickup's shard R; when its rider's home shard H is another, H takes the
rider's lock (``Rider.RideRequested``) and sends ``OpenRide``, and R sends ``UnlockRider``
when the ride ends (``dispatch.shard.crossing``), over the shards' links
(``dispatch.shard.links``). Fed every event of every shard (in any order between shards),
``finish`` flags:

- ``ride_without_lock``: a ride opened at R for a rider of H that holds no lock for it;
- ``lock_without_ride``: a rider still locked for a ride that never opened at R, with no
  ``OpenRide`` for it on its way;
- ``lock_not_released``: a rider still locked for a ride that ended at R, with no
  ``UnlockRider`` for it on its way;
- ``lock_released_early``: a rider let go of a ride that is still active at R;
- ``ending_mismatch``: the rider was told another ending than the ride's;
- ``message_applied_unsent`` / ``message_gap``: a shard applied a message its sender never
  sent, or skipped one (each channel is applied once, in order, without gaps);
- ``driver_not_held``: a ride counts on a driver (accepted, not let go) that no shard
  holds for that ride;
- ``driver_in_two_rides``: two rides count on the same driver;
- ``hold_not_released``: an owner holds (or has assigned) a driver for a reservation of a
  ride in another shard that no longer counts on it, with no ``Release`` on its way: a
  driver held for ever;
- ``driver_two_owners``: two shards serve the same driver (neither handed it off);
- ``driver_lost``: every shard that had a driver handed it off, and no ``HandOff`` for it
  is on its way;
- and what ``invariants_commands`` flags of driver commands' records across shards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from dispatch.domain.driver import Driver
from dispatch.domain.ids import shard_of
from dispatch.domain.ride import RIDE_ENDINGS, Ride
from dispatch.domain.rider import Rider
from dispatch.invariants import Violation
from dispatch.invariants_commands import DriverCommandsAcross
from dispatch.log import LogEvent
from dispatch.shard.links import Link

# A ride opened (requested, or booked for later) and its rider's hold on it (a scheduled
# ride is held among the rider's booked ones until its dispatch starts, then as active).
_OPENED = frozenset({Ride.Created.TOPIC, Ride.Booked.TOPIC})
_TAKEN = frozenset({Rider.RideRequested.TOPIC, Rider.RideBooked.TOPIC})
_LINK_OPENED = Link.Created.TOPIC
_SENT, _APPLIED = Link.Sent.TOPIC, Link.Applied.TOPIC
_ACCEPTED, _DRIVER_CANCELLED = Ride.Accepted.TOPIC, Ride.CancelledByDriver.TOPIC
_HOLDING = frozenset({Driver.Assigned.TOPIC})
_HELD, _ASKED = Driver.OfferReceived.TOPIC, Ride.DriverAsked.TOPIC
# A ride lets go of the driver it asked, was offered or was assigned (besides its endings).
_ASK_LET_GO = frozenset({Ride.AskEnded.TOPIC, Ride.OfferDeclined.TOPIC, Ride.OfferExpired.TOPIC})
_FREEING = frozenset({Driver.Released.TOPIC, Driver.OfferClosed.TOPIC})
# A driver's tenure at a shard begins (registered, arrived, returned) or ends (handed off).
_HANDED_OFF = Driver.HandedOff.TOPIC
_TENURE = frozenset({Driver.Created.TOPIC, Driver.Arrived.TOPIC, Driver.Returned.TOPIC,
                     _HANDED_OFF})  # fmt: skip


def _shard(aggregate_id: str) -> int:
    return shard_of(UUID(aggregate_id))


@dataclass
class _Seen:
    where: str
    value: str = ""


@dataclass
class CrossShardChecker:
    violations: list[Violation] = field(default_factory=list)
    locked: dict[str, tuple[str, _Seen]] = field(default_factory=dict)  # ride -> rider, at H
    unlocked: dict[str, _Seen] = field(default_factory=dict)  # ride -> how it ended, at H
    opened: dict[str, tuple[str, _Seen]] = field(default_factory=dict)  # ride -> rider, at R
    ended: dict[str, _Seen] = field(default_factory=dict)  # ride -> its ending, at R
    links: dict[str, tuple[int, int]] = field(default_factory=dict)  # link id -> (shard, peer)
    sent: dict[tuple[int, int], dict[int, tuple[str, str]]] = field(default_factory=dict)
    applied: dict[tuple[int, int], list[tuple[int, str]]] = field(default_factory=dict)
    counts_on: dict[str, tuple[str, _Seen]] = field(default_factory=dict)  # ride -> driver
    # Keyed by driver and shard: a driver handed off has a stream in each shard that
    # served it, read in any order between shards.
    holds: dict[tuple[str, int], str] = field(default_factory=dict)  # -> ride assigned
    # A driver held or assigned for a ride of another shard: -> (ride, resv, where).
    held_for: dict[tuple[str, int], tuple[str, str, _Seen]] = field(default_factory=dict)
    # What a ride counts on across shards (asked, offered, accepted): ride -> (driver, resv).
    wants: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Whether each shard that had a driver serves it now: driver -> {shard: (serves, where)}.
    serving: dict[str, dict[int, tuple[bool, str]]] = field(default_factory=dict)
    commands: DriverCommandsAcross = field(default_factory=DriverCommandsAcross)

    def check(self, e: LogEvent) -> None:
        topic = e.topic
        self.commands.check(e)
        if topic in _TENURE:
            by_shard = self.serving.setdefault(e.aggregate_id, {})
            by_shard[e.shard] = (topic != _HANDED_OFF, e.where)
        if topic in _TAKEN:
            ride = e.data["ride_id"]
            if _shard(ride) != e.shard:
                self.locked[ride] = (e.aggregate_id, _Seen(e.where))
        elif topic == Rider.RideEnded.TOPIC:
            ride = e.data["ride_id"]
            if _shard(ride) != e.shard:
                self.unlocked[ride] = _Seen(e.where, e.data["outcome"])
        elif topic in _OPENED:
            rider = e.data["rider_id"]
            if _shard(rider) != e.shard:
                self.opened[e.aggregate_id] = (rider, _Seen(e.where))
        elif topic == _ASKED:
            self.wants[e.aggregate_id] = (e.data["driver_id"], e.data["resv"])
        elif topic in _ASK_LET_GO:
            self.wants.pop(e.aggregate_id, None)
        elif topic == _ACCEPTED:  # whichever shard serves the driver (hand-offs)
            self.counts_on[e.aggregate_id] = (e.data["driver_id"], _Seen(e.where))
        elif topic == _DRIVER_CANCELLED:
            self.counts_on.pop(e.aggregate_id, None)
            self.wants.pop(e.aggregate_id, None)
        elif topic == _HELD and e.data.get("resv"):
            held = (e.data["ride_id"], e.data["resv"], _Seen(e.where))
            self.held_for[e.aggregate_id, e.shard] = held
        elif topic in _HOLDING:
            self.holds[e.aggregate_id, e.shard] = e.data["ride_id"]
        elif topic in _FREEING:
            self.holds.pop((e.aggregate_id, e.shard), None)
            self.held_for.pop((e.aggregate_id, e.shard), None)
        elif topic in RIDE_ENDINGS:
            self.counts_on.pop(e.aggregate_id, None)
            self.wants.pop(e.aggregate_id, None)
            if e.aggregate_id in self.opened:  # opened earlier in the same shard's log
                self.ended[e.aggregate_id] = _Seen(e.where, RIDE_ENDINGS[topic].value)
        elif topic == _LINK_OPENED:
            self.links[e.aggregate_id] = (e.shard, int(e.data["peer"]))
        elif topic == _SENT:
            channel = (e.shard, int(e.data["peer"]))
            body = e.data["body"]
            self.sent.setdefault(channel, {})[int(e.data["seq"])] = (
                e.data["kind"],
                str(body.get("ride", body.get("driver", ""))),  # a HandOff names its driver
            )
        elif topic == _APPLIED:
            shard, peer = self.links.get(e.aggregate_id, (e.shard, -1))
            self.applied.setdefault((peer, shard), []).append((int(e.data["seq"]), e.where))

    def finish(self) -> list[Violation]:
        in_flight = self._in_flight()
        for ride, (rider, seen) in self.opened.items():
            lock = self.locked.get(ride)
            if lock is None or lock[0] != rider:
                self._flag(
                    seen,
                    ride,
                    "ride_without_lock",
                    f"ride opened for rider {rider}, who holds no lock for it",
                )
        for ride, (rider, seen) in self.locked.items():
            released = self.unlocked.get(ride)
            if ride not in self.opened:
                if released is None and ("OpenRide", ride) not in in_flight:
                    self._flag(
                        seen,
                        rider,
                        "lock_without_ride",
                        f"locked for ride {ride}, which never opened",
                    )
                continue
            ending = self.ended.get(ride)
            if released is None and ending is not None and ("UnlockRider", ride) not in in_flight:
                self._flag(
                    ending,
                    rider,
                    "lock_not_released",
                    f"ride {ride} ended ({ending.value}) but its rider is still locked",
                )
            if released is not None and ending is None:
                self._flag(
                    released,
                    rider,
                    "lock_released_early",
                    f"let go of ride {ride}, which is still active",
                )
            if released is not None and ending is not None and released.value != ending.value:
                self._flag(
                    released,
                    rider,
                    "ending_mismatch",
                    f"told {released.value}, but ride {ride} {ending.value}",
                )
        self._check_channels()
        self._check_drivers()
        self._check_holds(in_flight)
        self._check_owners(in_flight)
        self.violations.extend(self.commands.finish())
        return self.violations

    def _check_owners(self, in_flight: set[tuple[str, str]]) -> None:
        for driver, by_shard in self.serving.items():
            owners = sorted(shard for shard, (serves, _) in by_shard.items() if serves)
            if len(owners) > 1:
                where = by_shard[owners[-1]][1]
                self._flag(_Seen(where), driver, "driver_two_owners",
                           f"shards {owners} all serve driver {driver}")  # fmt: skip
            elif not owners and ("HandOff", driver) not in in_flight:
                where = max((w for _, w in by_shard.values()), default="")
                self._flag(_Seen(where), driver, "driver_lost",
                           f"handed off by shards {sorted(by_shard)}, arrived nowhere")  # fmt: skip

    def _check_holds(self, in_flight: set[tuple[str, str]]) -> None:
        for (driver, _), (ride, resv, seen) in self.held_for.items():
            if self.wants.get(ride) == (driver, resv) or ("Release", ride) in in_flight:
                continue
            self._flag(
                seen,
                driver,
                "hold_not_released",
                f"held for ride {ride} ({resv}), which no longer counts on it",
            )

    def _check_drivers(self) -> None:
        by_driver: dict[str, str] = {}
        holding: dict[str, set[str]] = {}  # driver -> the rides a shard has it assigned for
        for (driver, _), assigned in self.holds.items():
            holding.setdefault(driver, set()).add(assigned)
        for ride, (driver, seen) in self.counts_on.items():
            if ride not in holding.get(driver, ()):
                held = ", ".join(sorted(holding.get(driver, ())))
                self._flag(
                    seen,
                    ride,
                    "driver_not_held",
                    f"counts on driver {driver}, whose owner holds {held or 'no ride'}",
                )
            other = by_driver.setdefault(driver, ride)
            if other != ride:
                self._flag(
                    seen,
                    driver,
                    "driver_in_two_rides",
                    f"rides {other} and {ride} both count on driver {driver}",
                )

    def _in_flight(self) -> set[tuple[str, str]]:
        """(kind, ride) of every message sent and not applied by its receiver."""
        out: set[tuple[str, str]] = set()
        for channel, messages in self.sent.items():
            done = max((seq for seq, _ in self.applied.get(channel, [])), default=0)
            out.update(message for seq, message in messages.items() if seq > done)
        return out

    def _check_channels(self) -> None:
        for (sender, receiver), applied in self.applied.items():
            sent = self.sent.get((sender, receiver), {})
            expected = 1
            for seq, where in applied:
                if seq != expected:
                    self._flag(
                        _Seen(where),
                        f"{sender}>{receiver}",
                        "message_gap",
                        f"applied message {seq} where {expected} was next",
                    )
                if seq not in sent:
                    self._flag(
                        _Seen(where),
                        f"{sender}>{receiver}",
                        "message_applied_unsent",
                        f"applied message {seq}, which shard {sender} never sent",
                    )
                expected = seq + 1

    def _flag(self, seen: _Seen, aggregate_id: str, kind: str, detail: str) -> None:
        self.violations.append(Violation(seen.where, aggregate_id, kind, detail))
