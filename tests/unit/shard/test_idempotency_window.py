"""Command records answer retries for the idempotency window (24 h here), then leave.

Inside the window a retry gets the first outcome, whichever period its record was written
in; after it, a key that tells its age (a UUIDv7) is refused and one that does not is
handled as a new command, under a new record id, which ``replay verify`` accepts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent
from idempotency_keys import uuid7
from pydantic import ValidationError

from dispatch.domain.command_record import CommandRecord, record_ids
from dispatch.domain.driver import DriverStatus
from dispatch.invariants import InvariantChecker, Violation
from dispatch.log import decode
from dispatch.settings import Settings
from dispatch.shard.application import ShardApplication
from dispatch.shard.policy import Policy
from schemas import commands as c

WINDOW = 86_400.0


def records_of(s: Any, command_id: str, since: int) -> list[Any]:
    """The command records of ``command_id`` written after position ``since``, decoded."""
    events = [decode(n, s.SHARD) for n in s.app.recorder.select_notifications(since + 1, 10**6)]
    return [
        e
        for e in events
        if e.topic == s.COMMAND_RECORD_TOPIC and e.data["command_id"] == command_id
    ]


def verified(records: list[Any]) -> list[Violation]:
    checker = InvariantChecker()
    for event in records:
        checker.check(event)
    return checker.finish()


def test_a_retry_inside_the_window_gets_the_first_outcome_across_a_period_boundary(s):
    midnight = datetime(2026, 1, 6, tzinfo=UTC)  # periods of a 24 h window start at 00:00 UTC
    s.now = midnight - timedelta(seconds=10)
    driver_id = s.driver(online=False)
    envelope = s.envelope(c.GoOnline(driver_id=driver_id))
    first = s.when(envelope).outcome
    before = s.position()

    s.now = midnight + timedelta(seconds=10)
    soon = s.when(envelope).outcome
    s.now = midnight - timedelta(seconds=10) + timedelta(seconds=WINDOW, microseconds=-1)
    last = s.when(envelope).outcome

    for again in (soon, last):
        assert again.duplicate and again.accepted and again.code == first.code
    assert s.position() == before


def test_a_uuid7_keyed_retry_after_the_window_is_refused_as_expired_and_records_nothing(s):
    driver_id = s.driver(online=False)
    envelope = s.envelope(c.GoOnline(driver_id=driver_id), command_id=f"{driver_id}:{uuid7(s.now)}")
    assert s.when(envelope).accepted
    s.given(c.GoOffline(driver_id=driver_id))
    before = s.position()

    s.advance(WINDOW)
    again = s.when(envelope)

    assert not again.accepted and again.code == "idempotency_key_expired"
    assert "86400 s ago" in again.outcome.reason and "86400 s idempotency window" in (
        again.outcome.reason
    )
    assert again.events == [] and s.position() == before
    assert s.get(driver_id).status == DriverStatus.OFFLINE


def test_a_uuid7_key_made_ahead_within_the_skew_is_refused_once_its_record_left_the_window(s):
    # A client clock 50 s fast: the key expires (by its own time) 50 s after the record.
    driver_id = s.driver(online=False)
    key = uuid7(s.now + timedelta(seconds=50))
    envelope = s.envelope(c.GoOnline(driver_id=driver_id), command_id=f"{driver_id}:{key}")
    assert s.when(envelope).accepted
    s.given(c.GoOffline(driver_id=driver_id))

    s.advance(WINDOW)  # the record has left; by the key's own time it has 50 s to go
    again = s.when(envelope)

    assert again.code == "idempotency_key_expired" and again.events == []


def test_a_uuid7_key_dated_beyond_the_skew_ahead_is_refused_and_records_nothing(s):
    driver_id = s.driver(online=False)
    key = uuid7(s.now + timedelta(minutes=5))
    before = s.position()

    then = s.when(s.envelope(c.GoOnline(driver_id=driver_id), command_id=f"{driver_id}:{key}"))

    assert then.code == "idempotency_key_invalid" and "300 s ahead" in then.outcome.reason
    assert then.events == [] and s.position() == before


def test_a_plain_keyed_retry_after_the_window_is_a_new_command_with_a_record_of_its_own(s):
    driver_id = s.driver(online=False)
    command_id = f"{driver_id}:go-online-1"
    envelope = s.envelope(c.GoOnline(driver_id=driver_id), command_id=command_id)
    since = s.position()
    assert s.when(envelope).accepted
    s.given(c.GoOffline(driver_id=driver_id))

    s.advance(WINDOW)
    again = s.when(envelope)
    s.advance(60)
    retry = s.when(envelope)

    assert again.accepted and not again.outcome.duplicate
    assert again.topics == ["dispatch.Driver.WentOnline"]
    assert retry.outcome.duplicate and s.get(driver_id).status == DriverStatus.AVAILABLE
    first, second = records_of(s, command_id, since)
    assert first.aggregate_id != second.aggregate_id and first.version == second.version == 1
    assert verified([first, second]) == []


def test_every_command_record_carries_the_window_it_was_written_with(s):
    driver_id = s.driver(online=False)
    accepted = s.when(s.envelope(c.GoOnline(driver_id=driver_id)))
    rejected = s.when(s.envelope(c.GoOnline(driver_id=driver_id)))

    for then in (accepted, rejected):
        assert then.event(s.COMMAND_RECORD_TOPIC).window_s == WINDOW


def test_a_record_written_before_windows_answers_inside_the_window_and_not_after(s):
    driver_id = s.driver(online=False)
    command_id = f"{driver_id}:from-before"
    legacy = record_ids(s.SHARD, command_id, s.now, WINDOW).legacy
    old = CommandRecord.record(legacy, command_id, "go_online", s.now, accepted=True)
    s.app.events.put(old.collect_events())  # as the previous version wrote it: no window
    envelope = s.envelope(c.GoOnline(driver_id=driver_id), command_id=command_id)

    s.advance(WINDOW - 1)
    inside = s.when(envelope)
    s.advance(1)
    after = s.when(envelope)

    assert inside.outcome.duplicate and inside.events == []
    assert after.accepted and not after.outcome.duplicate
    assert after.event(s.COMMAND_RECORD_TOPIC).originator_id != legacy


def test_a_command_whose_record_id_is_taken_by_another_aggregate_is_refused(s):
    command_id = f"squatted-{s.now.timestamp()}"
    squatted = record_ids(s.SHARD, command_id, s.now, WINDOW).current
    s.given(c.RegisterDriver(driver_id=squatted, name="squatter"))

    then = s.when(s.envelope(c.GoOffline(driver_id=squatted), command_id=command_id))

    assert then.code == "invalid_command" and then.events == []
    assert s.get(squatted).status == DriverStatus.OFFLINE


def test_a_version_2_record_is_upcast_with_no_window(shard_app: ShardApplication) -> None:
    mapper = shard_app.mapper
    at = datetime(2026, 1, 5, tzinfo=UTC)
    record = CommandRecord.record(record_ids(1, "old", at, WINDOW).legacy, "old", "go_online",
                                  at, accepted=True, window_s=WINDOW)  # fmt: skip
    stored = mapper.to_stored_event(record.collect_events()[0])
    state = mapper.transcoder.decode(stored.state)
    del state["window_s"]
    state["class_version"] = 2
    old = StoredEvent(
        stored.originator_id, stored.originator_version, stored.topic,
        mapper.transcoder.encode(state),
    )  # fmt: skip

    event = mapper.to_domain_event(old)

    assert event.window_s is None  # type: ignore[attr-defined]
    assert event.mutate(None).live_at(at + timedelta(hours=1), 7_200.0)  # type: ignore[attr-defined, union-attr]
    assert not event.mutate(None).live_at(at + timedelta(hours=2), 7_200.0)  # type: ignore[attr-defined, union-attr]


def test_the_window_must_be_longer_than_nothing() -> None:
    with pytest.raises(ValidationError):
        Settings(idempotency_window_s=0)
    with pytest.raises(ValueError):
        Policy(idempotency_window_s=0)
    assert Settings().idempotency_window_s == WINDOW
