"""A command id reused for another request is refused; a retry of the same request is not.

The command record keeps the fingerprint its command came with, so the answer does not
depend on any memory outside the log: it holds across batches, restarts and processes.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.persistence import StoredEvent

from dispatch.domain.command_record import CommandRecord
from dispatch.domain.driver import DriverStatus
from dispatch.shard.application import ShardApplication
from schemas import commands as c


def keyed(s, command: c._Command, fingerprint: str | None, command_id: str = "k-1"):  # type: ignore[no-untyped-def]
    """``command_id`` made unique to the test run (the Kafka adapter's topics are shared)."""
    return c.CommandEnvelope(
        command_id=f"{command_id}-{s._run}", fingerprint=fingerprint, issued_at=s.now,
        command=command,
    )  # fmt: skip


def test_a_retry_with_the_recorded_fingerprint_gets_the_first_outcome(s):
    driver_id = s.driver(online=False)
    first = s.when(keyed(s, c.GoOnline(driver_id=driver_id), "print-a")).outcome
    before = s.position()

    again = s.when(keyed(s, c.GoOnline(driver_id=driver_id), "print-a"))

    assert again.outcome.accepted and again.outcome.duplicate
    assert again.outcome.code == first.code == "ok"
    assert s.position() == before


def test_the_same_command_id_with_another_fingerprint_is_refused_and_records_nothing(s):
    driver_id = s.driver(online=False)
    s.when(keyed(s, c.GoOnline(driver_id=driver_id), "online-print"))
    before = s.position()

    again = s.when(keyed(s, c.GoOffline(driver_id=driver_id), "offline-print"))

    assert not again.outcome.accepted
    assert again.outcome.code == "idempotency_key_reused"
    assert again.events == [] and s.position() == before
    assert s.get(driver_id).status == DriverStatus.AVAILABLE, "the driver stays online"


def test_a_reused_id_is_refused_in_the_batch_that_first_recorded_it(s):
    driver_id = s.driver(online=False)
    first = keyed(s, c.GoOnline(driver_id=driver_id), "one")
    second = keyed(s, c.GoOffline(driver_id=driver_id), "two")

    s.app.handle(first, s.now)
    s.app.handle(second, s.now)
    (a, b), _ = s.app.commit()

    assert a.accepted and not a.duplicate
    assert (b.accepted, b.code) == (False, "idempotency_key_reused")


def test_a_rejected_command_keeps_its_fingerprint_too(s):
    rider_id = s.rider()
    ride_id = s.request(rider_id)
    cancel = c.CancelRide(ride_id=ride_id, rider_id=rider_id)
    s.given(cancel)
    first = s.when(keyed(s, cancel, "cancel-print", "cancel-again")).outcome
    assert first.code == "illegal_transition"

    retry = s.when(keyed(s, cancel, "cancel-print", "cancel-again")).outcome
    other = s.when(keyed(s, cancel, "another-print", "cancel-again")).outcome

    assert (retry.code, retry.duplicate) == ("illegal_transition", True)
    assert other.code == "idempotency_key_reused"


def test_a_command_without_a_fingerprint_is_answered_by_its_id_alone(s):
    driver_id = s.driver(online=False)
    first = s.when(keyed(s, c.GoOnline(driver_id=driver_id), "print-a")).outcome

    again = s.when(keyed(s, c.GoOffline(driver_id=driver_id), None)).outcome

    assert again.duplicate and (again.accepted, again.code) == (first.accepted, first.code)


def test_a_version_1_record_is_upcast_with_no_fingerprint(shard_app: ShardApplication) -> None:
    mapper = shard_app.mapper
    record = CommandRecord.record(
        UUID(int=7), "old", "go_online", _at(), accepted=True, fingerprint="x"
    )
    stored = mapper.to_stored_event(record.collect_events()[0])
    state = mapper.transcoder.decode(stored.state)
    del state["fingerprint"]
    state["class_version"] = 1
    old = StoredEvent(
        stored.originator_id, stored.originator_version, stored.topic,
        mapper.transcoder.encode(state),
    )  # fmt: skip

    event = mapper.to_domain_event(old)

    assert event.fingerprint == ""  # type: ignore[attr-defined]
    assert not event.mutate(None).answers("any-print")  # type: ignore[attr-defined, union-attr]
    assert event.mutate(None).answers(None)  # type: ignore[attr-defined, union-attr]


def _at():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime(2026, 1, 5, tzinfo=UTC)
