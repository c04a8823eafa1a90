"""A repeated command id gets the first outcome back and records nothing new."""

from __future__ import annotations

from dispatch.domain.command_record import record_ids
from dispatch.domain.driver import Driver, DriverStatus
from dispatch.shard.application import ShardApplication
from dispatch.shard.policy import Policy
from schemas import commands as c


def _same_answer(duplicate: c.Outcome, first: c.Outcome) -> None:
    assert duplicate.duplicate and not first.duplicate
    assert (duplicate.command_id, duplicate.shard, duplicate.accepted) == (
        first.command_id,
        first.shard,
        first.accepted,
    )
    assert (duplicate.code, duplicate.reason) == (first.code, first.reason)


def test_accepted_command_repeated_in_the_same_batch_is_answered_once_and_recorded_once(s):
    driver_id = s.driver(online=False)
    envelope = s.envelope(c.GoOnline(driver_id=driver_id))
    before = s.position()

    assert s.app.handle(envelope, s.now)
    assert s.app.handle(envelope, s.now) == []
    (first, duplicate), recordings = s.app.commit()

    assert first.accepted and first.position is not None
    _same_answer(duplicate, first)
    # WentOnline, its note on the driver (its record travels with it) and the record, once
    assert len(recordings) == 3
    assert s.recorded_since(before) == 3
    assert s.get(driver_id).version == 3


def test_accepted_command_repeated_in_a_later_batch_returns_the_first_outcome(s):
    driver_id = s.driver(online=False)
    envelope = s.envelope(c.GoOnline(driver_id=driver_id))
    first = s.when(envelope).outcome
    before = s.position()

    again = s.when(envelope)

    _same_answer(again.outcome, first)
    assert again.events == [] and again.returned == []
    assert s.position() == before


def test_repeat_of_an_accepted_command_is_not_reapplied_after_the_state_moved_on(s):
    driver_id = s.driver(online=False)
    go_online = s.envelope(c.GoOnline(driver_id=driver_id))
    s.given(go_online, c.GoOffline(driver_id=driver_id))
    before = s.position()

    again = s.when(go_online)

    assert again.outcome.accepted and again.outcome.duplicate
    assert s.position() == before
    assert s.get(driver_id).status == DriverStatus.OFFLINE


def test_rejected_command_repeated_in_the_same_batch_is_rejected_once_and_recorded_once(s):
    driver_id = s.driver()  # already online: going online again is refused
    envelope = s.envelope(c.GoOnline(driver_id=driver_id))
    before = s.position()

    s.app.handle(envelope, s.now)
    s.app.handle(envelope, s.now)
    (first, duplicate), recordings = s.app.commit()

    assert not first.accepted and first.code == "illegal_transition"
    _same_answer(duplicate, first)
    topics = [type(r.domain_event).TOPIC for r in recordings]
    assert topics == [Driver.CommandNoted.TOPIC, s.COMMAND_RECORD_TOPIC]  # the refusal's
    assert s.recorded_since(before) == 2


def test_repeat_of_a_rejected_command_stays_rejected_even_once_it_would_succeed(s):
    driver_id = s.driver()
    go_online = s.envelope(c.GoOnline(driver_id=driver_id))
    first = s.when(go_online).outcome
    s.given(c.GoOffline(driver_id=driver_id))
    before = s.position()

    again = s.when(go_online)

    _same_answer(again.outcome, first)
    assert not again.outcome.accepted
    assert s.position() == before
    assert s.get(driver_id).status == DriverStatus.OFFLINE


def test_repeat_of_a_misrouted_command_returns_the_misrouted_outcome(s):
    envelope = s.envelope(c.GoOnline(driver_id=s.new_id(s.OTHER_SHARD)))
    first = s.when(envelope).outcome
    before = s.position()

    again = s.when(envelope)

    assert first.code == "misrouted"
    _same_answer(again.outcome, first)
    assert s.position() == before


def test_command_id_is_the_key_a_different_command_under_the_same_id_is_not_applied(s):
    driver_id = s.driver(online=False)
    first = s.when(s.envelope(c.GoOnline(driver_id=driver_id), command_id="k-1")).outcome
    before = s.position()

    again = s.when(s.envelope(c.GoOffline(driver_id=driver_id), command_id="k-1"))

    _same_answer(again.outcome, first)
    assert s.position() == before
    assert s.get(driver_id).status == DriverStatus.AVAILABLE


def test_only_duplicates_in_a_batch_record_nothing_at_all(s):
    driver_id = s.driver(online=False)
    envelopes = [
        s.envelope(c.GoOnline(driver_id=driver_id)),
        s.envelope(c.GoOnline(driver_id=driver_id)),
    ]
    s.when(envelopes[0])
    s.when(envelopes[1])
    before = s.position()

    for envelope in envelopes:
        s.app.handle(envelope, s.now)
    outcomes, recordings = s.app.commit()

    assert recordings == []
    assert [o.duplicate for o in outcomes] == [True, True]
    assert [o.accepted for o in outcomes] == [True, False]
    assert s.position() == before


def test_repeat_after_a_restart_on_sqlite_returns_the_first_outcome(tmp_path, s):
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "s1.db")}
    first_app = ShardApplication(s.SHARD, env=env, policy=Policy(max_wait_s=s.MAX_WAIT_S))
    s.app = first_app
    driver_id = s.driver(online=False)
    accepted = s.envelope(c.GoOnline(driver_id=driver_id))
    rejected = s.envelope(c.GoOffline(driver_id=s.new_id()))
    first_ok = s.when(accepted).outcome
    first_ko = s.when(rejected).outcome
    before = s.position()
    first_app.close()

    s.app = ShardApplication(s.SHARD, env=env, policy=Policy(max_wait_s=s.MAX_WAIT_S))
    assert s.position() == before
    for envelope in (accepted, rejected):
        s.app.handle(envelope, s.now)
    (ok_again, ko_again), recordings = s.app.commit()

    _same_answer(ok_again, first_ok)
    _same_answer(ko_again, first_ko)
    assert ok_again.accepted and not ko_again.accepted and ko_again.code == "not_found"
    assert recordings == []
    assert s.position() == before
    assert s.get(driver_id).status == DriverStatus.AVAILABLE
    assert s.get(driver_id).version == 3  # registered, online, its GoOnline noted


def test_command_whose_record_id_is_taken_by_another_aggregate_does_not_sink_the_batch(s):
    # A command's record goes to record_ids(shard, command_id, now, window).current;
    # aggregate ids are chosen by the sender. When an aggregate already sits at a command's
    # record id, handle() does not see a record there (wrong type), applies the command and
    # adds a second version-1 aggregate under that id: the whole batch then fails to commit,
    # and does so again on every retry (a poison command).
    squatted = record_ids(s.SHARD, "victim", s.now, s.app.policy.idempotency_window_s).current
    s.given(c.RegisterDriver(driver_id=squatted, name="squatter"))
    rider_id = s.new_id()
    innocent = s.envelope(c.RegisterRider(rider_id=rider_id, name="Ray"))
    victim = s.envelope(c.GoOnline(driver_id=squatted), command_id="victim")

    s.app.handle(innocent, s.now)
    s.app.handle(victim, s.now)
    outcomes, _ = s.app.commit()

    assert outcomes[0].accepted and not outcomes[0].duplicate
    assert s.working(rider_id) is not None
    assert outcomes[1].command_id == "victim"
