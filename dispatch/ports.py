"""The ports the core defines for its adapters, besides the log source
(``dispatch.log.LogSource``) and eventsourcing's recorders:

- ``CommandBus``: what a client (the API, the simulator) needs to send commands and pings
  and wait for outcomes; the embedded and Kafka transports implement it;
- ``CheckpointStore``: where a shard's worker keeps and finds its checkpoints, defined
  beside the checkpoints it reads (``dispatch.checkpoints``) and listed here;
- ``TokenCodec``: what signs and verifies bearer tokens, defined beside the claims it
  carries (``dispatch.tokens``) and listed here;
- ``Tracer``: what starts the spans of a command's trace (``adapters.otel``), in the API
  and in the shard workers; None where commands are not traced.

How a shard's batch is polled and where its outcomes go is the batch owner's business in
each adapter (``adapters.embedded.engine``, ``adapters.kafka.batch``), not a port.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from dispatch.checkpoints import CheckpointStore
from dispatch.messages import Ping
from dispatch.tokens import TokenCodec
from schemas.commands import CommandEnvelope, Outcome

__all__ = ["CheckpointStore", "CommandBus", "TokenCodec", "Tracer"]


class NotDelivered(Exception):
    """The log did not acknowledge a command in time: it may be there or not. A client must
    not be told it was accepted (not even "pending"); a retry with the same command id
    settles it (the shard applies a command id once)."""


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
        id), waiting up to ``timeout_s``; None on timeout, once the command is in the log.
        ``NotDelivered`` if the log has not acknowledged the command by then."""
        ...


class Tracer(Protocol):
    """Starts the spans of commands' traces."""

    def span(
        self, name: str, parent: str | None = None, **attributes: str | int
    ) -> AbstractContextManager[str]:
        """A span named ``name``, the child of the W3C traceparent ``parent`` (else of the
        current span, else the root of a new trace), current inside the block, with its
        trace and span ids and traceparent bound in the log context (``dispatch.logs``);
        the block is given its traceparent, to carry on."""
        ...

    def close(self) -> None:
        """Export the spans still buffered, and stop."""
        ...
