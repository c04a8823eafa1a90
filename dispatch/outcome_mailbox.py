"""Where a command bus keeps outcomes for the clients that wait for them.

An outcome is matched to its waiter by the command's id and fingerprint
(``schemas.commands.reply_key``): two requests that share an id but not a fingerprint
each get their own answer. Only the ``keep`` most recently delivered outcomes are kept;
an outcome delivered again counts as new. Pure Python: both transports (in-process and
Kafka) fill one from their own delivery path.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from schemas.commands import CommandEnvelope, Outcome, reply_key


class OutcomeMailbox:
    def __init__(self, keep: int) -> None:
        if keep < 1:
            raise ValueError(f"a mailbox keeps at least one outcome, not {keep}")
        self._keep = keep
        self._outcomes: OrderedDict[str, Outcome] = OrderedDict()
        self._arrived = threading.Condition()

    def expect(self, envelope: CommandEnvelope) -> None:
        """``envelope`` is being sent: an outcome kept from an earlier send of it is
        dropped, so a resend waits for its new outcome."""
        with self._arrived:
            self._outcomes.pop(envelope.reply_key, None)

    def deliver(self, outcomes: Iterable[Outcome]) -> None:
        """Keep ``outcomes`` as the newest (one delivered again replaces the kept one and
        moves to the newest end) and wake their waiters; the oldest beyond ``keep`` go."""
        with self._arrived:
            for outcome in outcomes:
                key = outcome.reply_key
                self._outcomes[key] = outcome
                self._outcomes.move_to_end(key)
            while len(self._outcomes) > self._keep:
                self._outcomes.popitem(last=False)
            self._arrived.notify_all()

    def wait(
        self, command_id: str, timeout_s: float, fingerprint: str | None = None
    ) -> Outcome | None:
        """The outcome of the command (of the one with ``fingerprint``, when two share an
        id), waiting up to ``timeout_s`` for it; None on timeout. It stays kept."""
        key = reply_key(command_id, fingerprint)
        with self._arrived:
            self._arrived.wait_for(lambda: key in self._outcomes, timeout_s)
            return self._outcomes.get(key)

    def get(self, command_id: str, fingerprint: str | None = None) -> Outcome | None:
        """The kept outcome of the command, or None, without waiting."""
        with self._arrived:
            return self._outcomes.get(reply_key(command_id, fingerprint))

    def __len__(self) -> int:
        with self._arrived:
            return len(self._outcomes)
