"""The rider lock at the rider's home shard H: a rider's "one active ride" across shards.

A ride in another shard starts by asking H for the lock (``LockRider``) and ends by letting
go of it (``UnlockRider``, sent after the ``LockRider`` on the same channel, so a ride
cancelled before its lock came back still frees it). A ride in H itself takes and frees the
lock in its own transaction. Taking the lock again for the ride that holds it succeeds, and
freeing it for a ride that does not hold it changes nothing.
"""

from __future__ import annotations

from dispatch.shard.crossshard.messages import LockRider, RiderBusy, RiderLocked, Send, UnlockRider


class RiderLocks:
    def __init__(self, shard: int, send: Send) -> None:
        self.shard, self.send = shard, send
        self.locks: dict[str, str] = {}  # rider -> the ride holding its lock

    def lock(self, rider: str, ride: str) -> str | None:
        """Take the rider's lock for ``ride``; the ride holding it instead, if another."""
        active = self.locks.setdefault(rider, ride)
        return None if active == ride else active

    def unlock(self, rider: str, ride: str) -> None:
        if self.locks.get(rider) == ride:
            del self.locks[rider]

    def on_lock(self, sender: int, msg: LockRider) -> None:
        active = self.lock(msg.rider, msg.ride)
        if active is None:
            self.send(sender, RiderLocked(msg.rider, msg.ride))
        else:
            self.send(sender, RiderBusy(msg.rider, msg.ride, active))

    def on_unlock(self, sender: int, msg: UnlockRider) -> None:
        self.unlock(msg.rider, msg.ride)

    def capture(self) -> list[list[str]]:
        return [[rider, ride] for rider, ride in sorted(self.locks.items())]

    def restore(self, data: list[list[str]]) -> None:
        self.locks = {rider: ride for rider, ride in data}
