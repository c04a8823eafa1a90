"""Two requests that share a command id but not a fingerprint each get their own outcome
(the first was accepted, the other refused as a reused key): a waiter is never handed the
outcome of another request."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from dispatch.adapters.embedded.transport import EmbeddedTransport
from schemas import commands as c


def envelope(fingerprint: str | None) -> c.CommandEnvelope:
    command = c.GoOnline(driver_id=UUID(int=1))
    return c.CommandEnvelope(
        command_id="k-1", fingerprint=fingerprint, issued_at=datetime.now(UTC), command=command
    )


def test_each_fingerprint_waits_for_its_own_outcome() -> None:
    bus = EmbeddedTransport()
    first, second = envelope("print-a"), envelope("print-b")
    bus.send_command(first)
    bus.send_command(second)
    accepted = c.Outcome(command_id="k-1", shard=0, accepted=True, fingerprint="print-a")
    refused = c.Outcome(
        command_id="k-1", shard=0, accepted=False, code="idempotency_key_reused",
        duplicate=True, fingerprint="print-b",
    )  # fmt: skip

    bus.publish_outcomes([accepted, refused])

    assert bus.wait_outcome("k-1", 0, "print-a") == accepted
    assert bus.wait_outcome("k-1", 0, "print-b") == refused
    assert bus.wait_outcome("k-1", 0) is None, "no unfingerprinted command was answered"
