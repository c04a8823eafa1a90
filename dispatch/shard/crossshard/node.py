"""One shard's part in cross-shard matching: its owner side, its ride side, its rider
locks and its channels, all changed by the shard's single writer.

Every call is one decision of that writer: the state it changes and the messages it
numbers into the outbox belong to the batch being built, and are committed together.
Once a batch is durable its owner publishes ``take_outgoing()``: the new messages and the
acks for what the batch applied (never before the commit: an ack promises the receiver
will not need the message again). After a restore, ``outbox.resend()`` is what to send
again. ``capture`` is plain data (JSON-ready) and ``restore`` its inverse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dispatch.domain.errors import AlreadyExists
from dispatch.shard.crossshard.channels import Inbox, Outbox
from dispatch.shard.crossshard.messages import (
    Accept,
    Ack,
    Confirmed,
    Envelope,
    Expired,
    Granted,
    HandOff,
    Moved,
    OpenRide,
    Refused,
    Release,
    Reserve,
    UnlockRider,
)
from dispatch.shard.crossshard.owner import Owners
from dispatch.shard.crossshard.riders import RiderLocks
from dispatch.shard.crossshard.rides import Rides

FORMAT = 2  # 2: the rider lock is taken at H first (OpenRide), no "locking" rides

# Whether this shard can open a ride H asks it to (None: yes; else the reason it cannot).
OpenCheck = Callable[[OpenRide], str | None]


@dataclass(frozen=True, slots=True)
class ProtocolConfig:
    hold_s: float = 15.0  # how long an owner holds a driver for a reservation (its clock)
    max_wait_s: float = 300.0  # how long a ride waits for a driver (the ride shard's clock)


class ShardNode:
    def __init__(self, shard: int, config: ProtocolConfig | None = None) -> None:
        self.shard = shard
        self.config = config or ProtocolConfig()
        self.outbox = Outbox(shard)
        self.inbox = Inbox(shard)
        send = self.outbox.send
        self.owners = Owners(shard, send, self.config.hold_s)
        self.riders = RiderLocks(shard, send)
        self.rides = Rides(shard, send, self.riders, self.config.max_wait_s)

    def request(
        self,
        ride: str,
        rider: str,
        ride_shard: int,
        pickup: tuple[float, float],
        dropoff: tuple[float, float],
        now: float,
    ) -> None:
        """A ride request, at the rider's home shard (this one): take the rider's lock (a
        busy rider is refused at once) and open the ride, here in the same transaction when
        ``ride_shard`` is this shard, else by ``OpenRide`` to it."""
        if ride_shard == self.shard and ride in self.rides.rides:
            raise AlreadyExists(f"ride {ride} already exists")
        order = OpenRide(ride, rider, *pickup, *dropoff, requested_at=now)
        self.riders.request(order, ride_shard)
        if ride_shard == self.shard:
            self.rides.open(ride, rider, self.shard, now)

    def receive(self, envelope: Envelope, now: float, can_open: OpenCheck | None = None) -> int:
        """Apply a message from another shard (or this one) once, in its channel's order;
        returns how many messages it let through (0: a duplicate, or early). ``can_open``
        says whether an ``OpenRide`` can be opened here (by default, yes)."""
        due = self.inbox.accept(envelope)
        for message in due:
            self._apply(message, now, can_open)
        return len(due)

    def acknowledged(self, ack: Ack) -> None:
        self.outbox.acknowledge(ack)

    def tick(self, now: float) -> None:
        """Decisions due on this shard's clock: holds that ran out, rides that waited too
        long."""
        self.owners.expire(now)
        self.rides.expire(now)

    def take_outgoing(self) -> tuple[list[Envelope], list[Ack]]:
        """What to publish once the batch is committed: its new messages and its acks."""
        return self.outbox.take_fresh(), self.inbox.take_acks()

    def _apply(self, envelope: Envelope, now: float, can_open: OpenCheck | None) -> None:
        sender, body = envelope.sender, envelope.body
        match body:
            case OpenRide():
                if can_open is not None and can_open(body) is not None:
                    self.rides.refuse_open(sender, body, now)
                else:
                    self.rides.on_open(sender, body, now)
            case UnlockRider():
                self.riders.on_unlock(sender, body)
            case Reserve():
                self.owners.on_reserve(sender, body, now)
            case Accept():
                self.owners.on_accept(sender, body, now)
            case Release():
                self.owners.on_release(sender, body)
            case HandOff():
                self.owners.on_hand_off(sender, body)
            case Granted():
                self.rides.on_granted(sender, body)
            case Confirmed():
                self.rides.on_confirmed(sender, body)
            case Refused():
                self.rides.on_refused(sender, body)
            case Expired():
                self.rides.on_expired(sender, body)
            case Moved():
                self.rides.on_moved(sender, body)

    # -- checkpoint ---------------------------------------------------------------------------
    def capture(self) -> dict[str, Any]:
        """The shard's protocol state as plain data: drivers it owns (and forwarding
        pointers), rides and their reservations, rider locks, unacknowledged messages and
        the next number per channel, and what it has applied per sender."""
        return {
            "format": FORMAT,
            "shard": self.shard,
            "drivers": self.owners.capture(),
            "rides": self.rides.capture(),
            "locks": self.riders.capture(),
            "outbox": self.outbox.capture(),
            "inbox": self.inbox.capture(),
        }

    @classmethod
    def restore(cls, data: dict[str, Any], config: ProtocolConfig | None = None) -> ShardNode:
        if data.get("format") != FORMAT:
            raise ValueError(f"cross-shard state format {data.get('format')!r}, not {FORMAT}")
        node = cls(int(data["shard"]), config)
        node.owners.restore(data["drivers"])
        node.rides.restore(data["rides"])
        node.riders.restore(data["locks"])
        node.outbox = Outbox.restore(node.shard, data["outbox"])
        node.inbox = Inbox.restore(node.shard, data["inbox"])
        send = node.outbox.send
        node.owners.send = node.riders.send = node.rides.send = send
        return node
