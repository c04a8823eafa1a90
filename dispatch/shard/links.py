"""A shard's channel to one other shard, as an aggregate of its log (issue #14).

``Link(shard -> peer)`` holds both ends of the pair seen from ``shard``: the outbox (the
next number to send to ``peer``, and every message sent and not yet acknowledged) and the
inbox (the next number ``peer``'s messages must carry to be applied). A message is sent by
recording ``Sent`` in the same unit of work as the state change that causes it, so both are
saved in the batch's one transaction (SQLite, or Kafka); the batch's owner publishes it once
the batch is durable. A received message is applied with ``Applied`` recorded beside its
effects. An ack from the peer records ``Acknowledged``. Being events of the shard's log, the
channels are in its checkpoints and its tail like every other aggregate, and a restore
brings back exactly the last committed batch's channels (docs/ARCHITECTURE.md,
"Cross-shard matching").
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from dispatch.domain.ids import derived_id, shard_of
from dispatch.shard.crossshard.messages import KINDS, Body, Envelope
from dispatch.shard.unit_of_work import UnitOfWork

LINK_NAMESPACE = UUID("4d1f7a2e-0b6c-4e9a-8c3d-5f2a1e7b9c04")


def link_id(shard: int, peer: int) -> UUID:
    """The id of ``shard``'s link to ``peer`` (in ``shard``)."""
    return derived_id(shard, LINK_NAMESPACE, f"link:{peer}")


class Link(Aggregate):
    TOPIC = "dispatch.Link"

    class Event(Aggregate.Event):
        pass

    class Created(Aggregate.Created):
        TOPIC = "dispatch.Link.Opened"
        class_version = 1
        peer: int

    class Sent(Event):
        TOPIC = "dispatch.Link.Sent"
        class_version = 1
        peer: int
        seq: int
        kind: str
        body: dict[str, Any]

        def apply(self, link: Link) -> None:
            link.out_next = self.seq + 1
            link.unacked.append([self.seq, self.kind, self.body])

    class Applied(Event):
        TOPIC = "dispatch.Link.Applied"
        class_version = 1
        seq: int

        def apply(self, link: Link) -> None:
            link.in_next = self.seq + 1

    class Acknowledged(Event):
        TOPIC = "dispatch.Link.Acknowledged"
        class_version = 1
        upto: int

        def apply(self, link: Link) -> None:
            link.unacked = [m for m in link.unacked if m[0] > self.upto]

    def __init__(self, peer: int) -> None:
        self.peer = peer
        self.out_next = 1
        # [seq, kind, body] in order (lists, so a snapshot's JSON keeps them as they are)
        self.unacked: list[list[Any]] = []
        self.in_next = 1

    @classmethod
    def open(cls, shard: int, peer: int, at: datetime) -> Link:
        return cls._create(cls.Created, id=link_id(shard, peer), timestamp=at, peer=peer)

    @property
    def shard(self) -> int:
        return shard_of(self.id)

    def send(self, body: Body, at: datetime) -> None:
        kind = type(body).__name__
        seq = self.out_next
        self.trigger_event(self.Sent, timestamp=at, peer=self.peer, seq=seq, kind=kind,
                           body=asdict(body))  # fmt: skip

    def applied(self, seq: int, at: datetime) -> None:
        if seq != self.in_next:
            raise ValueError(f"link {self.shard}<-{self.peer}: applying {seq}, not {self.in_next}")
        self.trigger_event(self.Applied, timestamp=at, seq=seq)

    def acknowledged(self, upto: int, at: datetime) -> bool:
        """Drop the messages the peer has applied up to ``upto``; False if none were left."""
        if not self.unacked or self.unacked[0][0] > upto:
            return False
        self.trigger_event(self.Acknowledged, timestamp=at, upto=upto)
        return True

    def pending(self) -> list[Envelope]:
        """The messages sent and not yet acknowledged, in order: what to send again."""
        return [Envelope(self.shard, self.peer, seq, KINDS[kind](**body))
                for seq, kind, body in self.unacked]  # fmt: skip


def envelope_of(event: Link.Sent) -> Envelope:
    """The message a ``Sent`` event recorded."""
    return Envelope(shard_of(event.originator_id), event.peer, event.seq,
                    KINDS[event.kind](**event.body))  # fmt: skip


def link_of(uow: UnitOfWork, shard: int, peer: int, at: datetime) -> Link:
    """``shard``'s link to ``peer`` in the batch, opened on first use."""
    link = uow.find(Link, link_id(shard, peer))
    if link is None:
        link = Link.open(shard, peer, at)
        uow.add(link)
    return link


def send(uow: UnitOfWork, sender: int, receiver: int, body: Body, at: datetime) -> None:
    """Send ``body`` from ``sender`` to ``receiver`` with the unit of work's state change
    (undone with it if the command is rolled back)."""
    if sender == receiver:
        raise ValueError(f"shard {sender} sends itself {type(body).__name__}: apply it in place")
    link_of(uow, sender, receiver, at).send(body, at)
