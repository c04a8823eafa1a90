"""A command that fails half-way is undone: the aggregates it already changed return to
exactly what they were before it, including changes made earlier in the same batch."""

from __future__ import annotations

from typing import Any

import pytest

from dispatch.domain.driver import Driver, DriverStatus
from dispatch.domain.errors import IllegalTransition
from dispatch.domain.ride import RideStatus
from dispatch.domain.rider import Rider
from dispatch.shard.application import ShardApplication
from dispatch.shard.policy import Policy
from schemas import commands as c

EVERYTHING = 10**9


def _fail(error: Exception):
    def boom(self: Any, *args: Any, **kwargs: Any) -> None:
        raise error

    return boom


@pytest.fixture(params=["popo", "sqlite"])
def s(request, tmp_path, s):
    if request.param == "sqlite":
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(tmp_path / "uow.db"),
        }
        s.app = ShardApplication(s.SHARD, env=env, policy=Policy(max_wait_s=s.MAX_WAIT_S))
    return s


def _stored(s, aggregate_id):
    """The aggregate folded from the committed log alone (no cache)."""
    return s.state_of(s.app.repository.get(aggregate_id, version=EVERYTHING))


def _assert_memory_matches_the_log(s, *ids):
    for aggregate_id in ids:
        assert s.state_of(s.get(aggregate_id)) == _stored(s, aggregate_id)


@pytest.mark.parametrize("error", [IllegalTransition("forced"), RuntimeError("forced")])
def test_cancel_failing_at_the_driver_leaves_the_ride_as_the_batch_had_offered_it(
    s, monkeypatch, error
):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = s.request(rider_id)
    # the batch changes the ride first (the matcher's offer) ...
    assert s.app.decide(s.offer(ride_id, driver_id), s.now)
    ride_before = s.state_of(s.get(ride_id))
    rider_before = s.state_of(s.get(rider_id))
    driver_before = s.state_of(s.get(driver_id))
    assert ride_before["status"] == RideStatus.OFFERED and ride_before["_version"] == 2

    # ... then a cancel changes the ride again and fails at the second aggregate
    monkeypatch.setattr(Driver, "close_offer", _fail(error))
    returned = s.app.handle(s.envelope(c.CancelRide(ride_id=ride_id, rider_id=rider_id)), s.now)

    assert returned == []
    assert s.state_of(s.get(ride_id)) == ride_before
    assert s.state_of(s.get(rider_id)) == rider_before
    assert s.state_of(s.get(driver_id)) == driver_before

    monkeypatch.undo()
    (outcome,), recordings = s.app.commit()
    expected_code = (
        "illegal_transition" if isinstance(error, IllegalTransition) else "internal_error"
    )
    assert (outcome.accepted, outcome.code) == (False, expected_code)
    assert [type(r.domain_event).TOPIC for r in recordings] == [
        "dispatch.Ride.Offered",
        "dispatch.Driver.OfferReceived",
        s.COMMAND_RECORD_TOPIC,
    ]
    assert s.state_of(s.get(ride_id)) == ride_before
    _assert_memory_matches_the_log(s, ride_id, rider_id, driver_id)


def test_failure_half_way_through_completion_rolls_back_ride_and_driver_started_in_the_batch(
    s, monkeypatch
):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = s.arrived(rider_id, driver_id)
    start = s.envelope(c.StartTrip(ride_id=ride_id, driver_id=driver_id))
    assert s.app.handle(start, s.now)
    before = {i: s.state_of(s.get(i)) for i in (ride_id, driver_id, rider_id)}

    monkeypatch.setattr(Rider, "end_ride", _fail(IllegalTransition("forced")))
    complete = s.envelope(c.CompleteTrip(ride_id=ride_id, driver_id=driver_id))
    assert s.app.handle(complete, s.now) == []

    assert {i: s.state_of(s.get(i)) for i in before} == before
    assert s.get(ride_id).status == RideStatus.IN_PROGRESS
    assert s.get(driver_id).status == DriverStatus.ON_TRIP
    assert s.get(driver_id).trips == 0

    monkeypatch.undo()
    outcomes, _ = s.app.commit()
    assert [(o.accepted, o.code) for o in outcomes] == [(True, "ok"), (False, "illegal_transition")]
    _assert_memory_matches_the_log(s, ride_id, driver_id, rider_id)
    # the rolled-back command can be retried under a new id and succeeds
    assert s.when(c.CompleteTrip(ride_id=ride_id, driver_id=driver_id)).accepted
    assert s.get(driver_id).trips == 1


def test_failure_after_touching_a_ride_created_in_the_same_batch_keeps_the_ride_as_created(
    s, monkeypatch
):
    rider_id = s.rider()
    ride_id = s.new_id()
    assert s.app.handle(s.envelope(s.request_ride(ride_id, rider_id)), s.now)
    ride_before = s.state_of(s.get(ride_id))
    rider_before = s.state_of(s.get(rider_id))
    assert ride_before["_version"] == 1

    monkeypatch.setattr(Rider, "end_ride", _fail(IllegalTransition("forced")))
    cancel = s.envelope(c.CancelRide(ride_id=ride_id, rider_id=rider_id))
    assert s.app.handle(cancel, s.now) == []

    assert s.state_of(s.get(ride_id)) == ride_before
    assert s.state_of(s.get(rider_id)) == rider_before

    monkeypatch.undo()
    outcomes, _ = s.app.commit()
    assert [o.accepted for o in outcomes] == [True, False]
    assert s.get(ride_id).status == RideStatus.REQUESTED
    _assert_memory_matches_the_log(s, ride_id, rider_id)


def test_failure_of_a_command_creating_an_aggregate_leaves_no_trace_of_it(s, monkeypatch):
    rider_id = s.rider()
    ride_id = s.new_id()
    rider_before = s.state_of(s.get(rider_id))

    monkeypatch.setattr(Rider, "request_ride", _fail(IllegalTransition("forced")))
    assert s.app.handle(s.envelope(s.request_ride(ride_id, rider_id)), s.now) == []

    assert s.working(ride_id) is None
    assert s.state_of(s.get(rider_id)) == rider_before
    monkeypatch.undo()
    s.app.commit()
    assert s.working(ride_id) is None
    # the id was never taken: the same ride id can be requested now
    assert s.when(s.request_ride(ride_id, rider_id)).accepted
    _assert_memory_matches_the_log(s, ride_id, rider_id)


def test_commands_after_a_rolled_back_one_in_the_same_batch_see_the_restored_state(s, monkeypatch):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = s.request(rider_id)
    assert s.app.decide(s.offer(ride_id, driver_id), s.now)

    monkeypatch.setattr(Driver, "close_offer", _fail(IllegalTransition("forced")))
    cancel = s.envelope(c.CancelRide(ride_id=ride_id, rider_id=rider_id))
    assert s.app.handle(cancel, s.now) == []
    monkeypatch.undo()
    accept = s.envelope(c.AcceptOffer(ride_id=ride_id, driver_id=driver_id))
    assert s.app.handle(accept, s.now)

    outcomes, _ = s.app.commit()
    assert [o.accepted for o in outcomes] == [False, True]
    assert s.get(ride_id).status == RideStatus.ACCEPTED
    assert s.get(driver_id).status == DriverStatus.EN_ROUTE
    assert s.get(rider_id).active_ride == ride_id
    _assert_memory_matches_the_log(s, ride_id, rider_id, driver_id)
    # The driver: registered, online and its command noted, offered, assigned and noted.
    assert [v for v in (s.get(ride_id).version, s.get(driver_id).version)] == [3, 6]
