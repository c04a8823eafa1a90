"""The outcome mailbox both transports keep their waiters' outcomes in: matched by command
id and fingerprint, bounded, waited for with a timeout."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pytest

from dispatch.domain.ids import new_id
from dispatch.outcome_mailbox import OutcomeMailbox
from schemas import commands as c


def envelope(command_id: str = "", fingerprint: str | None = None) -> c.CommandEnvelope:
    return c.CommandEnvelope(
        command_id=command_id or str(uuid.uuid4()),
        fingerprint=fingerprint,
        issued_at=datetime.now(UTC),
        command=c.GoOnline(driver_id=new_id(0)),
    )


def outcome(command_id: str, position: int = 1, fingerprint: str | None = None) -> c.Outcome:
    return c.Outcome(
        command_id=command_id, shard=0, accepted=True, position=position, fingerprint=fingerprint
    )


def test_a_waiter_gets_the_outcome_delivered_while_it_waits() -> None:
    mailbox = OutcomeMailbox(keep=10)
    later = threading.Timer(0.1, mailbox.deliver, args=([outcome("a")],))
    later.start()
    try:
        assert mailbox.wait("a", 5.0) == outcome("a")
    finally:
        later.join()


def test_an_outcome_delivered_before_the_wait_is_kept_for_it_and_after_it() -> None:
    mailbox = OutcomeMailbox(keep=10)
    mailbox.deliver([outcome("a")])
    assert mailbox.wait("a", 0.0) == outcome("a")
    assert mailbox.get("a") == outcome("a"), "a wait does not take the outcome away"


def test_without_an_outcome_the_wait_ends_with_none_after_its_timeout() -> None:
    mailbox = OutcomeMailbox(keep=10)
    mailbox.deliver([outcome("other")])
    started = time.monotonic()
    assert mailbox.wait("a", 0.2) is None
    assert 0.2 <= time.monotonic() - started < 2.0


def test_commands_sharing_an_id_get_the_outcome_of_their_own_fingerprint() -> None:
    mailbox = OutcomeMailbox(keep=10)
    first, second = outcome("k", 3, "print-a"), outcome("k", 4, "print-b")
    mailbox.deliver([first, second])
    assert mailbox.wait("k", 0.0, "print-a") == first
    assert mailbox.wait("k", 0.0, "print-b") == second
    assert mailbox.wait("k", 0.0) is None, "no command without a fingerprint was answered"


def test_only_the_newest_outcomes_up_to_its_size_are_kept() -> None:
    mailbox = OutcomeMailbox(keep=3)
    mailbox.deliver([outcome(str(i)) for i in range(5)])
    assert len(mailbox) == 3
    assert [mailbox.get(str(i)) is not None for i in range(5)] == [False, False, True, True, True]


def test_an_outcome_delivered_again_counts_as_the_newest() -> None:
    """Its waiter may be waiting for it right now: it must not be the next to go."""
    mailbox = OutcomeMailbox(keep=2)
    mailbox.deliver([outcome("a", 1), outcome("b")])
    mailbox.deliver([outcome("a", 2)])
    mailbox.deliver([outcome("c")])
    assert mailbox.get("a") == outcome("a", 2)
    assert mailbox.get("b") is None


def test_a_resent_command_waits_for_its_new_outcome_not_the_one_kept() -> None:
    mailbox = OutcomeMailbox(keep=10)
    command = envelope(fingerprint="print")
    mailbox.deliver([outcome(command.command_id, 3, "print")])
    mailbox.expect(command)
    assert mailbox.wait(command.command_id, 0.1, "print") is None
    mailbox.deliver([outcome(command.command_id, 9, "print")])
    assert mailbox.wait(command.command_id, 0.0, "print") == outcome(command.command_id, 9, "print")


def test_expecting_a_command_leaves_the_outcome_of_another_fingerprint() -> None:
    mailbox = OutcomeMailbox(keep=10)
    mailbox.deliver([outcome("k", 3, "print-a")])
    mailbox.expect(envelope("k", "print-b"))
    assert mailbox.get("k", "print-a") == outcome("k", 3, "print-a")


def test_a_mailbox_keeps_at_least_one_outcome() -> None:
    with pytest.raises(ValueError, match="at least one"):
        OutcomeMailbox(keep=0)
