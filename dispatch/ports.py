"""The ports: the transport the worker loop is written against, and the checkpoint store
(defined beside the checkpoints it reads, ``dispatch.checkpoints.CheckpointStore``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dispatch.checkpoints import CheckpointStore
from dispatch.messages import Inbound, Ping, Poison
from schemas.commands import CommandEnvelope, Outcome

__all__ = ["CheckpointStore", "CommandBus", "Outbox", "Transport"]


class Outbox(Protocol):
    """Where a shard worker puts what it produced besides events."""

    def publish_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Deliver outcomes to their waiters (the API) and to the outcome log."""
        ...

    def dead_letter(self, poison: Sequence[Poison]) -> None:
        """Keep records that could not be processed, with the reason."""
        ...


class CommandBus(Protocol):
    """What a client (the API, the simulator) needs: send, and wait for the outcome."""

    def send_command(self, envelope: CommandEnvelope) -> None:
        """Queue a command for the shard of its target aggregate."""
        ...

    def send_pings(self, pings: Sequence[Ping]) -> None:
        """Queue pings for the shards of their drivers."""
        ...

    def wait_outcome(
        self, command_id: str, timeout_s: float, fingerprint: str | None = None
    ) -> Outcome | None:
        """The outcome of a command (of the one with ``fingerprint``, when two share an
        id), waiting up to ``timeout_s``; None on timeout."""
        ...


class Transport(CommandBus, Outbox, Protocol):
    """The embedded transport: a command bus for clients, and for each shard's worker a
    poll of its inbound records plus an outbox."""

    def poll(self, shard: int, max_records: int, timeout_s: float) -> Inbound:
        """Take up to ``max_records`` commands and pings for ``shard``, waiting at most
        ``timeout_s`` for the first one."""
        ...
