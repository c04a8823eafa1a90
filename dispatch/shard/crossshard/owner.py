"""The owner side: the drivers whose availability this shard owns, and the one place that
moves a driver between free, held and assigned.

A driver at its owner O is ``offline``, ``free``, ``held`` (for one reservation, until an
expiry on O's clock), or ``assigned`` (to one ride); ``gone`` is a driver O handed off
(with where it went). Every move out of ``free`` is a compare-and-set on this one record,
made by the shard's single writer, so two rides can never both hold or get the driver.
Only a ``free`` driver is handed off; a held or assigned driver stays until released.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from dispatch.domain.errors import IllegalTransition, NotFound
from dispatch.shard.crossshard.messages import (
    Accept,
    Confirmed,
    Expired,
    Granted,
    HandOff,
    Moved,
    Refused,
    Release,
    Reserve,
    Send,
)

OFFLINE, FREE, HELD, ASSIGNED, GONE = "offline", "free", "held", "assigned", "gone"
OWNED = frozenset({OFFLINE, FREE, HELD, ASSIGNED})
CLAIMED = frozenset({HELD, ASSIGNED})  # the driver is a ride's, under ``resv``


class DriverMoved(IllegalTransition):
    """The command names a driver this shard does not own (any more)."""

    code = "moved"

    def __init__(self, reason: str, owner: int | None) -> None:
        super().__init__(reason)
        self.owner = owner


@dataclass(slots=True)
class DriverState:
    status: str
    epoch: int = 0  # hand-offs so far
    resv: str | None = None  # held or assigned under this reservation
    ride: str | None = None
    ride_shard: int | None = None  # where the ride lives: answers go there
    expires_at: float | None = None  # a hold's end, on this shard's clock
    moved_to: int | None = None  # gone: the shard it was handed to


class Owners:
    def __init__(self, shard: int, send: Send, hold_s: float) -> None:
        self.shard, self.send, self.hold_s = shard, send, hold_s
        self.drivers: dict[str, DriverState] = {}

    # -- commands (the driver's own, and the shard's hand-off decision) --------------------
    def register(self, driver: str) -> None:
        if driver in self.drivers:
            raise IllegalTransition(f"driver {driver} is already known to shard {self.shard}")
        self.drivers[driver] = DriverState(OFFLINE)

    def owned(self, driver: str) -> DriverState:
        state = self.drivers.get(driver)
        if state is None:
            raise NotFound(f"driver {driver} is not known to shard {self.shard}")
        if state.status == GONE:
            raise DriverMoved(f"driver {driver} moved to shard {state.moved_to}", state.moved_to)
        return state

    def go_online(self, driver: str) -> None:
        state = self.owned(driver)
        if state.status != OFFLINE:
            raise IllegalTransition(f"driver {driver} is {state.status}, not offline")
        state.status = FREE

    def go_offline(self, driver: str) -> None:
        state = self.owned(driver)
        if state.status != FREE:
            raise IllegalTransition(f"driver {driver} is {state.status}, not free")
        state.status = OFFLINE

    def hand_off(self, driver: str, to: int) -> None:
        """Give a free driver's availability to shard ``to`` (its new region's)."""
        state = self.owned(driver)
        if to == self.shard:
            raise IllegalTransition(f"driver {driver} is already owned by shard {to}")
        if state.status != FREE:
            raise IllegalTransition(f"driver {driver} is {state.status}: only a free one moves")
        state.status, state.moved_to, state.epoch = GONE, to, state.epoch + 1
        self.send(to, HandOff(driver, state.epoch))

    def expire(self, now: float) -> None:
        """End every hold whose expiry has come on this shard's clock."""
        for driver, state in sorted(self.drivers.items()):
            if state.status == HELD and state.expires_at is not None and now >= state.expires_at:
                self._end_hold(driver, state)

    # -- messages ---------------------------------------------------------------------------
    def on_reserve(self, sender: int, msg: Reserve, now: float) -> None:
        state = self.drivers.get(msg.driver)
        if state is None or state.status == GONE:
            moved_to = state.moved_to if state is not None else None
            self.send(sender, Moved(msg.resv, msg.ride, msg.driver, moved_to))
        elif state.status == FREE:  # the compare-and-set: free -> held
            state.status, state.resv, state.ride = HELD, msg.resv, msg.ride
            state.ride_shard, state.expires_at = sender, now + self.hold_s
            self.send(sender, Granted(msg.resv, msg.ride, msg.driver, state.expires_at))
        elif state.status == HELD and state.resv == msg.resv:  # asked again: same answer
            assert state.expires_at is not None
            self.send(sender, Granted(msg.resv, msg.ride, msg.driver, state.expires_at))
        else:
            self.send(sender, Refused(msg.resv, msg.ride, msg.driver, state.status))

    def on_accept(self, sender: int, msg: Accept, now: float) -> None:
        state = self.drivers.get(msg.driver)
        if state is None or state.resv != msg.resv or state.status not in CLAIMED:
            self.send(sender, Refused(msg.resv, msg.ride, msg.driver, "not_held"))
        elif state.status == ASSIGNED:  # accepted again: same answer
            self.send(sender, Confirmed(msg.resv, msg.ride, msg.driver))
        elif state.expires_at is not None and now >= state.expires_at:
            self._end_hold(msg.driver, state)  # too late by this shard's clock
        else:  # the commit point: held -> assigned
            state.status, state.expires_at = ASSIGNED, None
            self.send(sender, Confirmed(msg.resv, msg.ride, msg.driver))

    def on_release(self, sender: int, msg: Release) -> None:
        state = self.drivers.get(msg.driver)
        if state is not None and state.status in CLAIMED and state.resv == msg.resv:
            self._free(state)

    def on_hand_off(self, sender: int, msg: HandOff) -> None:
        state = self.drivers.get(msg.driver)
        if state is not None and state.epoch >= msg.epoch:
            return  # an older hand-off than one this shard already saw
        self.drivers[msg.driver] = DriverState(FREE, epoch=msg.epoch)

    # -- helpers ------------------------------------------------------------------------------
    def _end_hold(self, driver: str, state: DriverState) -> None:
        assert state.resv is not None and state.ride is not None and state.ride_shard is not None
        self.send(state.ride_shard, Expired(state.resv, state.ride, driver))
        self._free(state)

    @staticmethod
    def _free(state: DriverState) -> None:
        state.status = FREE
        state.resv = state.ride = state.ride_shard = state.expires_at = None

    def capture(self) -> list[dict[str, Any]]:
        return [{"driver": d, **asdict(s)} for d, s in sorted(self.drivers.items())]

    def restore(self, data: list[dict[str, Any]]) -> None:
        self.drivers = {
            row["driver"]: DriverState(**{k: v for k, v in row.items() if k != "driver"})
            for row in data
        }
