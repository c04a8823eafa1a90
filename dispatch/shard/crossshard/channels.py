"""A shard's end of its channels to other shards: the transactional outbox and the inbox.

Every ordered pair of shards is a channel numbered from 1 by its sender. The **outbox**
numbers each message as the state change that caused it is made (so both are committed in
one transaction), keeps it until the receiver acknowledges it, and lists what to send
again after a restore or when a resend timer fires. The **inbox** applies each channel's
messages once and in the sender's order: a number below the next expected one is a
duplicate (dropped, acknowledged again), one above it arrives early and waits in memory
for the gap to fill (the sender resends what went missing). What a receiver has applied
is one number per sender, so the dedup state stays bounded whatever the history.

Captured state (``capture``) is plain data; messages waiting in the inbox for a gap and
acks not yet sent are not captured: after a restore the senders resend and the duplicates
are acknowledged again.
"""

from __future__ import annotations

from typing import Any

from dispatch.shard.crossshard.messages import Ack, Body, Envelope


class Outbox:
    def __init__(self, shard: int) -> None:
        self.shard = shard
        self.next_seq: dict[int, int] = {}  # by receiver
        self.unacked: dict[int, list[Envelope]] = {}  # by receiver, in sequence order
        self.fresh: list[Envelope] = []  # made since the last ``take_fresh``

    def send(self, receiver: int, body: Body) -> Envelope:
        seq = self.next_seq.get(receiver, 1)
        self.next_seq[receiver] = seq + 1
        envelope = Envelope(self.shard, receiver, seq, body)
        self.unacked.setdefault(receiver, []).append(envelope)
        self.fresh.append(envelope)
        return envelope

    def take_fresh(self) -> list[Envelope]:
        """The messages made since the last call: what a batch publishes when it commits."""
        fresh, self.fresh = self.fresh, []
        return fresh

    def acknowledge(self, ack: Ack) -> None:
        """Drop the messages to ``ack.sender`` numbered up to ``ack.upto``."""
        if ack.receiver != self.shard:
            raise ValueError(f"ack for shard {ack.receiver} delivered to shard {self.shard}")
        kept = [e for e in self.unacked.get(ack.sender, []) if e.seq > ack.upto]
        if kept:
            self.unacked[ack.sender] = kept
        else:
            self.unacked.pop(ack.sender, None)

    def pending(self) -> list[Envelope]:
        """Every message not yet acknowledged (fresh ones too), by receiver and number."""
        return [e for receiver in sorted(self.unacked) for e in self.unacked[receiver]]

    def resend(self) -> list[Envelope]:
        """The published messages not yet acknowledged: what to send again."""
        fresh = {e.id for e in self.fresh}
        return [e for e in self.pending() if e.id not in fresh]

    def capture(self) -> list[dict[str, Any]]:
        receivers = sorted(set(self.next_seq) | set(self.unacked))
        return [
            {
                "to": receiver,
                "next": self.next_seq.get(receiver, 1),
                "unacked": [e.to_data() for e in self.unacked.get(receiver, [])],
            }
            for receiver in receivers
        ]

    @classmethod
    def restore(cls, shard: int, data: list[dict[str, Any]]) -> Outbox:
        outbox = cls(shard)
        for row in data:
            receiver = int(row["to"])
            outbox.next_seq[receiver] = int(row["next"])
            if row["unacked"]:
                outbox.unacked[receiver] = [Envelope.from_data(e) for e in row["unacked"]]
        return outbox


class Inbox:
    def __init__(self, shard: int) -> None:
        self.shard = shard
        self.expected: dict[int, int] = {}  # the next number to apply, by sender
        self._early: dict[int, dict[int, Envelope]] = {}  # by sender, then number
        self._to_ack: set[int] = set()

    def accept(self, envelope: Envelope) -> list[Envelope]:
        """The messages to apply now, in order: none for a duplicate or an early one; the
        message and those that waited for it when it fills a gap."""
        if envelope.receiver != self.shard:
            raise ValueError(f"message {envelope.id} delivered to shard {self.shard}")
        sender = envelope.sender
        self._to_ack.add(sender)
        expected = self.expected.get(sender, 1)
        if envelope.seq < expected:
            return []  # a duplicate: applied before
        if envelope.seq > expected:
            self._early.setdefault(sender, {})[envelope.seq] = envelope
            return []
        due, expected = [envelope], expected + 1
        early = self._early.get(sender, {})
        while expected in early:
            due.append(early.pop(expected))
            expected += 1
        self.expected[sender] = expected
        return due

    def waiting(self) -> int:
        """How many early messages wait for a gap in their channel to fill."""
        return sum(len(early) for early in self._early.values())

    def take_acks(self) -> list[Ack]:
        """One ack per sender heard from since the last call: send them with the commit of
        the batch that applied the messages, never before."""
        acks = [Ack(self.shard, s, self.expected.get(s, 1) - 1) for s in sorted(self._to_ack)]
        self._to_ack.clear()
        return acks

    def capture(self) -> list[list[int]]:
        return [[sender, nxt] for sender, nxt in sorted(self.expected.items())]

    @classmethod
    def restore(cls, shard: int, data: list[list[int]]) -> Inbox:
        inbox = cls(shard)
        inbox.expected = {int(sender): int(nxt) for sender, nxt in data}
        return inbox
