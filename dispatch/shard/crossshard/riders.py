"""The rider lock at the rider's home shard H: a rider's "one active ride" across shards.

H first: a ride request is handled at H, which takes the lock in the request's own
transaction (a rider whose lock another ride holds is refused at once, as in one shard)
and, when the ride's shard R is another, sends it ``OpenRide`` in that same transaction.
The lock is freed only by its ride's ``UnlockRider``, which R sends when the ride ends (or
when it cannot open it); a ride in H itself frees it in its own transaction. Freeing it
for a ride that does not hold it changes nothing.
"""

from __future__ import annotations

from dispatch.domain.errors import AlreadyExists, IllegalTransition
from dispatch.shard.crossshard.messages import OpenRide, Send, UnlockRider


class RiderLocks:
    def __init__(self, shard: int, send: Send) -> None:
        self.shard, self.send = shard, send
        self.locks: dict[str, str] = {}  # rider -> the ride holding its lock

    def request(self, order: OpenRide, ride_shard: int) -> None:
        """Take the rider's lock for ``order.ride`` (refused at once if the rider has a
        ride), and ask the ride's shard to open it when that is another shard (when it is
        this one, the caller opens it in the same transaction)."""
        active = self.locks.get(order.rider)
        if active == order.ride:
            raise AlreadyExists(f"ride {order.ride} was already requested")
        if active is not None:
            raise IllegalTransition(f"rider {order.rider} already has an active ride {active}")
        self.locks[order.rider] = order.ride
        if ride_shard != self.shard:
            self.send(ride_shard, order)

    def unlock(self, rider: str, ride: str) -> None:
        if self.locks.get(rider) == ride:
            del self.locks[rider]

    def on_unlock(self, sender: int, msg: UnlockRider) -> None:
        self.unlock(msg.rider, msg.ride)

    def capture(self) -> list[list[str]]:
        return [[rider, ride] for rider, ride in sorted(self.locks.items())]

    def restore(self, data: list[list[str]]) -> None:
        self.locks = {rider: ride for rider, ride in data}
