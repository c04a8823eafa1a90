"""In-process transport: per-shard queues, outcomes kept for waiters. No broker needed."""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Sequence

from dispatch.domain.ids import shard_of
from dispatch.messages import Inbound, Ping, Poison
from schemas.commands import CommandEnvelope, Outcome, reply_key


class EmbeddedTransport:
    def __init__(self, keep_outcomes: int = 100_000) -> None:
        self._commands: dict[int, deque[CommandEnvelope]] = {}
        self._pings: dict[int, deque[Ping]] = {}
        self._outcomes: OrderedDict[str, Outcome] = OrderedDict()
        self._keep = keep_outcomes
        self._cond = threading.Condition()
        self.dead_letters: list[Poison] = []

    def send_command(self, envelope: CommandEnvelope) -> None:
        with self._cond:
            # A resend waits for its new outcome, not one kept from an earlier attempt.
            self._outcomes.pop(envelope.reply_key, None)
            self._commands.setdefault(shard_of(envelope.target_id), deque()).append(envelope)
            self._cond.notify_all()

    def send_pings(self, pings: Sequence[Ping]) -> None:
        with self._cond:
            for ping in pings:
                self._pings.setdefault(shard_of(ping.driver_id), deque()).append(ping)
            self._cond.notify_all()

    def poll(self, shard: int, max_records: int, timeout_s: float) -> Inbound:
        with self._cond:
            commands = self._commands.setdefault(shard, deque())
            pings = self._pings.setdefault(shard, deque())
            if not commands and not pings and timeout_s > 0:
                self._cond.wait(timeout_s)
            inbound = Inbound()
            while commands and len(inbound.commands) < max_records:
                inbound.commands.append(commands.popleft())
            while pings and len(inbound.pings) < max_records:
                inbound.pings.append(pings.popleft())
            return inbound

    def publish_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        with self._cond:
            for outcome in outcomes:
                self._outcomes[outcome.reply_key] = outcome
                self._outcomes.move_to_end(outcome.reply_key)
            while len(self._outcomes) > self._keep:
                self._outcomes.popitem(last=False)
            self._cond.notify_all()

    def dead_letter(self, poison: Sequence[Poison]) -> None:
        with self._cond:
            self.dead_letters.extend(poison)

    def wait_outcome(
        self, command_id: str, timeout_s: float, fingerprint: str | None = None
    ) -> Outcome | None:
        key = reply_key(command_id, fingerprint)
        with self._cond:
            self._cond.wait_for(lambda: key in self._outcomes, timeout_s)
            return self._outcomes.get(key)
