"""What one poll brings a shard worker: client commands, pings, dead letters to be, and
the messages and acks of other shards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple
from uuid import UUID

from dispatch.domain.products import Vehicle
from dispatch.messages import Ping, Poison
from dispatch.shard.crossshard.messages import Ack, Envelope
from schemas.commands import CommandEnvelope


class ForeignDriver(NamedTuple):
    """A driver's availability now at the shard that serves it (``owner``), in tenure
    ``epoch`` (hand-offs so far), as the event types that lead to it; a driver the owner
    handed off says so (``Driver.HandedOff``) with the tenure that ended."""

    driver_id: UUID
    owner: int
    epoch: int
    leads_to: tuple[str, ...]
    # Its vehicle, so that other shards offer it the products it serves (None: a record
    # written before vehicles, read as the default vehicle).
    vehicle: Vehicle | None = None


@dataclass(slots=True)
class Inbound:
    """What one poll brought for one shard: client commands, pings, and messages and acks
    from other shards."""

    commands: list[CommandEnvelope] = field(default_factory=list)
    pings: list[Ping] = field(default_factory=list)
    poison: list[Poison] = field(default_factory=list)
    messages: list[Envelope] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    # Other shards' drivers, as the shards that serve them said, read-only: the matcher
    # may ask their owners for them (offers across shards).
    foreign: list[ForeignDriver] = field(default_factory=list)
    # The one-time keys of the sealed commands polled (``dispatch.sealed_commands``),
    # decided or dead-lettered by this batch: deleted in its transaction.
    spent_keys: list[UUID] = field(default_factory=list)
    # The W3C traceparent a command came with (in its record's headers), by its reply key
    # (``CommandEnvelope.reply_key``): its trace goes on in the worker (``dispatch.logs``).
    traces: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.commands or self.pings or self.poison or self.messages or self.acks
            or self.foreign
        )  # fmt: skip
