"""What one poll brings a shard worker: client commands, pings, dead letters to be, and
the messages and acks of other shards."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from dispatch.messages import Ping, Poison
from dispatch.shard.crossshard.messages import Ack, Envelope
from schemas.commands import CommandEnvelope


@dataclass(slots=True)
class Inbound:
    """What one poll brought for one shard: client commands, pings, and messages and acks
    from other shards."""

    commands: list[CommandEnvelope] = field(default_factory=list)
    pings: list[Ping] = field(default_factory=list)
    poison: list[Poison] = field(default_factory=list)
    messages: list[Envelope] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    # Availability changes of drivers other shards own (driver, event type), read-only: the
    # matcher may ask their owners for them (offers across shards).
    foreign: list[tuple[UUID, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.commands or self.pings or self.poison or self.messages or self.acks
            or self.foreign
        )  # fmt: skip
