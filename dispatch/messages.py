"""Internal message types that cross the transport (pings travel in bulk, so no pydantic)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple
from uuid import UUID

from dispatch.domain.ids import shard_of
from schemas.commands import AcceptOffer, CommandEnvelope, GoOffline, GoOnline

MAX_PING_AHEAD_S = 60.0  # a ping timed further ahead of the receiver's clock is refused


class Ping(NamedTuple):
    """A driver's position at a time (seconds since the epoch)."""

    driver_id: UUID
    lat: float
    lng: float
    at: float


@dataclass(frozen=True, slots=True)
class Poison:
    """A record that could not be decoded or validated, with the reason and where it was."""

    source: str
    position: str
    reason: str
    raw: bytes


# The commands that follow their driver to the shard that owns it (after a hand-off): they
# may be addressed to another shard than their target id's.
FOLLOW_THE_DRIVER = (GoOnline, GoOffline, AcceptOffer)


def destination(envelope: CommandEnvelope) -> int:
    """The shard a command goes to: the one it is addressed to, else its target's home."""
    return envelope.shard if envelope.shard is not None else shard_of(envelope.target_id)
