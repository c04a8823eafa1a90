"""In-process transport: per-shard queues, outcomes kept for waiters. No broker needed."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from uuid import UUID

from dispatch import logs
from dispatch.domain.driver import Driver
from dispatch.domain.ids import shard_of
from dispatch.messages import Ping, Poison, destination
from dispatch.outcome_mailbox import OutcomeMailbox
from dispatch.shard.crossshard.messages import Ack, Envelope
from dispatch.shard.inbound import ForeignDriver, Inbound
from schemas.commands import CommandEnvelope, Outcome

HANDED_OFF = Driver.HandedOff.TOPIC


class EmbeddedTransport:
    """A command bus (``dispatch.ports.CommandBus``) for clients; for the engine, each
    shard's inbound records and where its outcomes and dead letters go."""

    def __init__(self, keep_outcomes: int = 100_000) -> None:
        # each with its sender's W3C traceparent, if it was traced
        self._commands: dict[int, deque[tuple[CommandEnvelope, str | None]]] = {}
        self._pings: dict[int, deque[Ping]] = {}
        self._messages: dict[int, deque[Envelope | Ack]] = {}  # between shards, by receiver
        self._foreign: dict[int, deque[ForeignDriver]] = {}  # other shards' drivers
        # With several shards: where a ping is also delivered besides its driver's owner
        # (read-only there), so a ride near a border can be offered a driver across it.
        self.nearby: Callable[[float, float], Iterable[int]] | None = None
        # Drivers served away from their home shard (handed off): pings go there too.
        self.served_at: dict[UUID, int] = {}
        self._cond = threading.Condition()
        self._mailbox = OutcomeMailbox(keep_outcomes)
        self.dead_letters: list[Poison] = []

    def send_command(self, envelope: CommandEnvelope) -> None:
        """Queue the command with the trace context of the sender's span, if it has one
        (``dispatch.logs.traceparent``), as a record's headers carry it on Kafka."""
        self._mailbox.expect(envelope)
        parent = logs.traceparent()
        with self._cond:
            self._commands.setdefault(destination(envelope), deque()).append((envelope, parent))
            self._cond.notify_all()

    def send_pings(self, pings: Sequence[Ping]) -> None:
        with self._cond:
            nearby, served_at = self.nearby, self.served_at
            for ping in pings:
                owner = shard_of(ping.driver_id)
                self._pings.setdefault(owner, deque()).append(ping)
                to = {served_at.get(ping.driver_id, owner)}
                if nearby is not None:
                    to.update(nearby(ping.lat, ping.lng))
                to.discard(owner)
                for shard in to:
                    self._pings.setdefault(shard, deque()).append(ping)
            self._cond.notify_all()

    def send_foreign(self, items: Sequence[ForeignDriver], to: Iterable[int]) -> None:
        """Drivers' availability, as the shard that serves them says, for the shards ``to``
        (a driver served away from home has its pings sent there from now on)."""
        if not items:
            return
        with self._cond:
            for item in items:
                if item.leads_to == (HANDED_OFF,):
                    continue
                if item.owner == shard_of(item.driver_id):
                    self.served_at.pop(item.driver_id, None)
                else:
                    self.served_at[item.driver_id] = item.owner
            for shard in to:
                self._foreign.setdefault(shard, deque()).extend(items)
            self._cond.notify_all()

    def send_between_shards(self, messages: Sequence[Envelope], acks: Sequence[Ack]) -> None:
        """A committed batch's messages and acks to other shards (kept in order per
        receiver; lost only with the process, when the senders' restore resends them)."""
        with self._cond:
            for message in messages:
                self._messages.setdefault(message.receiver, deque()).append(message)
            for ack in acks:
                self._messages.setdefault(ack.receiver, deque()).append(ack)
            if messages or acks:
                self._cond.notify_all()

    def poll(self, shard: int, max_records: int, timeout_s: float) -> Inbound:
        """Take up to ``max_records`` commands and pings for ``shard`` (and the messages
        from other shards), waiting at most ``timeout_s`` for the first one."""
        with self._cond:
            commands = self._commands.setdefault(shard, deque())
            pings = self._pings.setdefault(shard, deque())
            between = self._messages.setdefault(shard, deque())
            foreign = self._foreign.setdefault(shard, deque())
            if not commands and not pings and not between and not foreign and timeout_s > 0:
                self._cond.wait(timeout_s)
            inbound = Inbound()
            inbound.foreign.extend(foreign)
            foreign.clear()
            while between and len(inbound.messages) + len(inbound.acks) < max_records:
                item = between.popleft()
                if isinstance(item, Ack):
                    inbound.acks.append(item)
                else:
                    inbound.messages.append(item)
            while commands and len(inbound.commands) < max_records:
                envelope, parent = commands.popleft()
                inbound.commands.append(envelope)
                if parent is not None:
                    inbound.traces[envelope.reply_key] = parent
            while pings and len(inbound.pings) < max_records:
                inbound.pings.append(pings.popleft())
            return inbound

    def publish_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        self._mailbox.deliver(outcomes)

    def dead_letter(self, poison: Sequence[Poison]) -> None:
        with self._cond:
            self.dead_letters.extend(poison)

    def wait_outcome(
        self, command_id: str, timeout_s: float, fingerprint: str | None = None
    ) -> Outcome | None:
        return self._mailbox.wait(command_id, timeout_s, fingerprint)
