"""The ride side: rides whose pickup is in this shard, and their reservations.

A ride is opened here once its rider's home shard H has taken the rider's lock for it: on
H's ``OpenRide`` (a ride already known here, even ended, is not opened again), or in the
request's own transaction when H is this shard. When a ride ends (completed, cancelled,
expired, or refused: not opened at all) it sends ``UnlockRider`` to H, or frees the lock
itself when H is this shard.

A ride asks one driver's owner at a time for a reservation; it records the answers it is
told and is the gate for the driver's accept (only its current reservation's driver may
accept, and the accept goes on to the owner, which commits or refuses it). Whenever a
ride lets go of a reservation it sends ``Release`` on the same channel as its ``Reserve``
and ``Accept``, so the owner applies it after them; a late answer about a reservation that
is no longer the ride's current one is therefore ignored. Times are this shard's clock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from dispatch.domain.errors import AlreadyExists, Forbidden, IllegalTransition, NotFound
from dispatch.shard.crossshard import messages as m
from dispatch.shard.crossshard.riders import RiderLocks

SEARCHING, ASKED, OFFERED = "searching", "asked", "offered"
ACCEPTED, ASSIGNED, ON_TRIP, ENDED = "accepted", "assigned", "on_trip", "ended"
ACTIVE = frozenset({SEARCHING, ASKED, OFFERED, ACCEPTED, ASSIGNED, ON_TRIP})  # holds the lock
RESERVING = frozenset({ASKED, OFFERED, ACCEPTED})  # a reservation asked, not yet confirmed
HAS_RESERVATION = RESERVING | {ASSIGNED, ON_TRIP}
UNCONFIRMED = frozenset({SEARCHING, *RESERVING})  # no driver confirmed yet
# A ride waiting for the owner's verdict on its driver's accept does not expire on its own
# clock: the owner is the commit point, and its verdict always comes (the hold expires).
EXPIRABLE = frozenset({SEARCHING, ASKED, OFFERED})


@dataclass(slots=True)
class RideState:
    rider: str
    home: int  # the rider's home shard: its lock is there
    status: str
    expires_at: float  # the max wait, on this shard's clock
    attempts: int = 0
    resv: str | None = None  # the current reservation
    driver: str | None = None
    owner: int | None = None  # the shard asked (the driver's owner when it granted)
    granted: bool = False
    hold_expires_at: float | None = None  # as the owner told it (the owner's clock)
    excluded: list[str] = field(default_factory=list)
    ended: str | None = None


class Rides:
    def __init__(self, shard: int, send: m.Send, riders: RiderLocks, max_wait_s: float) -> None:
        self.shard, self.send, self.riders, self.max_wait_s = shard, send, riders, max_wait_s
        self.rides: dict[str, RideState] = {}

    # -- commands ---------------------------------------------------------------------------
    def open(self, ride: str, rider: str, home: int, now: float) -> None:
        """Open a ride whose rider's lock ``home`` has taken for it: it searches at once,
        until its max wait on this shard's clock."""
        if ride in self.rides:
            raise AlreadyExists(f"ride {ride} already exists")
        self.rides[ride] = RideState(rider, home, SEARCHING, now + self.max_wait_s)

    def ask(self, ride: str, driver: str, owner: int) -> str:
        """Ask ``owner`` (where the location stream last saw the driver) for a reservation."""
        state = self.get(ride)
        if state.status != SEARCHING:
            raise IllegalTransition(f"ride {ride} is {state.status}, not searching")
        if driver in state.excluded:
            raise IllegalTransition(f"driver {driver} is excluded from ride {ride}")
        state.attempts += 1
        resv = f"{ride}/{state.attempts}"
        state.status, state.resv, state.driver, state.owner = ASKED, resv, driver, owner
        state.granted, state.hold_expires_at = False, None
        self.send(owner, m.Reserve(resv, ride, driver))
        return resv

    def accept(self, ride: str, driver: str) -> None:
        """The driver's accept: forwarded to the owner, which decides."""
        state = self._driven_by(ride, driver)
        if state.status == ACCEPTED:
            return  # a repeat: the owner's answer is on its way
        self._require(state, RESERVING)
        state.status = ACCEPTED
        assert state.owner is not None and state.resv is not None
        self.send(state.owner, m.Accept(state.resv, ride, driver))

    def decline(self, ride: str, driver: str) -> None:
        state = self._driven_by(ride, driver)
        self._require(state, {ASKED, OFFERED})
        self._let_go(ride, state, "declined", exclude=True)

    def withdraw(self, ride: str) -> None:
        """The ride stops waiting for its owner's answer or its driver (its own timeout)."""
        state = self.get(ride)
        self._require(state, {ASKED, OFFERED})
        self._let_go(ride, state, "withdrawn", exclude=False)

    def driver_cancel(self, ride: str, driver: str) -> None:
        state = self._driven_by(ride, driver)
        self._require(state, {ASSIGNED})
        self._let_go(ride, state, "cancelled_by_driver", exclude=True)

    def start_trip(self, ride: str, driver: str) -> None:
        state = self._driven_by(ride, driver)
        self._require(state, {ASSIGNED})
        state.status = ON_TRIP

    def complete(self, ride: str, driver: str) -> None:
        state = self._driven_by(ride, driver)
        self._require(state, {ON_TRIP})
        self._end(ride, state, "completed")

    def rider_cancel(self, ride: str, rider: str) -> None:
        state = self.get(ride)
        if state.rider != rider:
            raise Forbidden(f"ride {ride} belongs to another rider")
        self._require(state, UNCONFIRMED | {ASSIGNED})
        self._end(ride, state, "cancelled")

    def expire(self, now: float) -> None:
        for ride, state in sorted(self.rides.items()):
            if state.status in EXPIRABLE and now >= state.expires_at:
                self._end(ride, state, "expired")

    # -- messages: the rider's home shard ---------------------------------------------------------
    def on_open(self, sender: int, msg: m.OpenRide, now: float) -> None:
        """H took the rider's lock for the ride: open it (once: a ride this shard has, or
        had, is not opened again)."""
        if msg.ride not in self.rides:
            self.open(msg.ride, msg.rider, sender, now)

    def refuse_open(self, sender: int, msg: m.OpenRide, now: float) -> None:
        """This shard cannot open the ride: it ends at once (refused) and H's lock is freed."""
        if msg.ride in self.rides:
            return
        self.rides[msg.ride] = RideState(msg.rider, sender, ENDED, now, ended="refused")
        self.send(sender, m.UnlockRider(msg.rider, msg.ride, "refused"))

    # -- messages: the owner's answers -------------------------------------------------------
    def on_granted(self, sender: int, msg: m.Granted) -> None:
        state = self._current(sender, msg.ride, msg.resv, msg.driver)
        if state is not None:
            state.granted, state.hold_expires_at = True, msg.expires_at
            if state.status == ASKED:
                state.status = OFFERED

    def on_confirmed(self, sender: int, msg: m.Confirmed) -> None:
        state = self._current(sender, msg.ride, msg.resv, msg.driver)
        if state is not None:
            state.status, state.granted, state.hold_expires_at = ASSIGNED, True, None

    def on_refused(self, sender: int, msg: m.Refused) -> None:
        self._dropped(sender, msg, exclude=True)

    def on_expired(self, sender: int, msg: m.Expired) -> None:
        self._dropped(sender, msg, exclude=True)

    def on_moved(self, sender: int, msg: m.Moved) -> None:
        self._dropped(sender, msg, exclude=False)

    # -- helpers ------------------------------------------------------------------------------
    def get(self, ride: str) -> RideState:
        state = self.rides.get(ride)
        if state is None:
            raise NotFound(f"ride {ride} is not in shard {self.shard}")
        return state

    def _driven_by(self, ride: str, driver: str) -> RideState:
        state = self.get(ride)
        if state.driver != driver or state.status not in HAS_RESERVATION:
            raise Forbidden(f"ride {ride} is not offered to or assigned to driver {driver}")
        return state

    @staticmethod
    def _require(state: RideState, allowed: frozenset[str] | set[str]) -> None:
        if state.status not in allowed:
            raise IllegalTransition(f"the ride is {state.status}")

    def _current(self, sender: int, ride: str, resv: str, driver: str) -> RideState | None:
        """The ride, when ``resv`` for ``driver``, asked of ``sender``, is its current
        reservation and not yet confirmed. Checking the driver and the owner too means a
        late answer can never pass for the current one, even if a reservation id came
        round again (say, a counter restored from an older state)."""
        state = self.rides.get(ride)
        if (
            state is None
            or state.resv != resv
            or state.driver != driver
            or state.owner != sender
            or state.status not in RESERVING
        ):
            return None  # late: the ride let go of it, and said so to the owner
        return state

    def _dropped(self, sender: int, msg: m.Refused | m.Expired | m.Moved, exclude: bool) -> None:
        """The owner holds no reservation ``msg.resv`` (refused, expired, moved): search
        again."""
        state = self._current(sender, msg.ride, msg.resv, msg.driver)
        if state is not None:
            self._back_to_search(state, exclude)

    def _let_go(self, ride: str, state: RideState, reason: str, exclude: bool) -> None:
        self._release(ride, state, reason)
        self._back_to_search(state, exclude)

    def _release(self, ride: str, state: RideState, reason: str) -> None:
        if state.status in HAS_RESERVATION:
            assert state.owner is not None and state.resv is not None and state.driver
            self.send(state.owner, m.Release(state.resv, ride, state.driver, reason))

    @staticmethod
    def _back_to_search(state: RideState, exclude: bool) -> None:
        if exclude and state.driver is not None and state.driver not in state.excluded:
            state.excluded.append(state.driver)
        state.status, state.resv, state.driver, state.owner = SEARCHING, None, None, None
        state.granted, state.hold_expires_at = False, None

    def _end(self, ride: str, state: RideState, why: str) -> None:
        self._release(ride, state, why)
        if state.home == self.shard:
            self.riders.unlock(state.rider, ride)
        else:
            self.send(state.home, m.UnlockRider(state.rider, ride, why))
        state.status, state.ended, state.resv, state.owner = ENDED, why, None, None
        state.granted, state.hold_expires_at = False, None

    def capture(self) -> list[dict[str, Any]]:
        return [{"ride": r, **asdict(s)} for r, s in sorted(self.rides.items())]

    def restore(self, data: list[dict[str, Any]]) -> None:
        self.rides = {
            row["ride"]: RideState(**{k: v for k, v in row.items() if k != "ride"}) for row in data
        }
