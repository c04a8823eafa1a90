"""Shared rides at the shard (issue #21, step 3): a shared request records its terms where
pooling is enabled and is refused where it is not; an offer of a shared ride names its plan
and a single ride's does not; a pooled driver takes further shared rides through ExtendPlan;
its riders are picked up and dropped off in plan order through the usual commands; and the
log it leaves passes the log checker."""

from __future__ import annotations

from uuid import UUID

import pydantic
import pytest

from dispatch.domain.pooling import PoolBounds, Stop
from dispatch.invariants import InvariantChecker
from dispatch.log import decode
from dispatch.matching.decisions import ExtendPlan, MakeOffer
from dispatch.shard.application import ShardApplication
from dispatch.shard.policy import Policy
from schemas import commands as c
from tests.unit.conftest import SF, SF_AIRPORT, SHARD, Scenario

DOWNTOWN = {"lat": 37.78, "lng": -122.41}


POOL = PoolBounds()


def scenario(pool: PoolBounds | None = POOL) -> Scenario:
    return Scenario(ShardApplication(SHARD, policy=Policy(pool=pool)))


def shared(s: Scenario, rider: UUID, pickup: dict[str, float] = SF, seats: int = 1) -> UUID:
    ride_id = s.new_id()
    s.given(c.RequestRide(ride_id=ride_id, rider_id=rider, pickup=pickup, dropoff=SF_AIRPORT,
                          shared=True, seats=seats))  # fmt: skip
    return ride_id


def offer(s: Scenario, ride: UUID, driver: UUID, plan: tuple[Stop, ...] | None) -> MakeOffer:
    now = s.now.timestamp()
    times = None if plan is None else tuple(now + 60.0 * (i + 1) for i in range(len(plan)))
    return MakeOffer(ride, driver, 60.0, 400.0, now + 15, plan, times)


def stops(*pairs: tuple[UUID, bool]) -> tuple[Stop, ...]:
    return tuple(Stop(str(r), p) for r, p in pairs)


def test_a_shared_request_records_its_terms_and_is_refused_where_pooling_is_off() -> None:
    s = scenario()
    ride = shared(s, s.rider(), seats=2)
    terms = s.get(ride).terms_of_sharing
    assert (terms.seats, terms.max_wait_s, terms.detour_factor) == (2, 300.0, 1.5)
    assert 3_000 < terms.direct_s < 4_000  # about 17 km at the straight line's pace
    off = scenario(pool=None)
    then = off.when(c.RequestRide(ride_id=off.new_id(), rider_id=off.rider(), pickup=SF,
                                  dropoff=SF_AIRPORT, shared=True))  # fmt: skip
    then.assert_rejected("invalid_command")
    assert "not enabled" in then.outcome.reason  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"seats": 2}, "only a shared ride asks for seats"),
     ({"shared": True, "seats": 3}, "less than or equal to 2"),
     ({"shared": True, "scheduled_for": "2030-01-01T00:00:00Z"}, "not booked ahead")],
)  # fmt: skip
def test_a_request_with_meaningless_sharing_is_refused(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        c.RequestRide(ride_id=UUID(int=1), rider_id=UUID(int=2), pickup=SF, dropoff=SF_AIRPORT,
                      **fields)  # type: ignore[arg-type]  # fmt: skip


def test_a_shared_ride_is_offered_with_its_plan_and_a_single_one_without() -> None:
    s = scenario()
    driver = s.driver()
    ride = shared(s, s.rider())
    assert s.when(offer(s, ride, driver, None)).events == []  # a shared ride needs its plan
    single = s.request(s.rider())
    assert s.when(offer(s, single, driver, stops((single, True), (single, False)))).events == []
    then = s.when(offer(s, ride, driver, stops((ride, True), (ride, False))))
    received = then.event("dispatch.Driver.OfferReceived")
    assert received.plan == [[str(ride), "P"], [str(ride), "D"]] and len(received.times) == 2


def test_a_pooled_driver_serves_its_plan_in_order_and_the_log_passes_the_checker() -> None:
    s = scenario()
    driver = s.driver()
    a, b = shared(s, s.rider()), shared(s, s.rider(), pickup=DOWNTOWN)
    s.given(offer(s, a, driver, stops((a, True), (a, False))))
    s.given(c.AcceptOffer(ride_id=a, driver_id=driver))
    plan = stops((a, True), (b, True), (a, False), (b, False))
    now = s.now.timestamp()
    then = s.when(ExtendPlan(b, driver, plan, tuple(now + 60.0 * i for i in range(1, 5))))
    assert then.topics == ["dispatch.Ride.Pooled", "dispatch.Driver.PlanExtended"]
    out_of_order = s.when(c.MarkArrived(ride_id=b, driver_id=driver))
    assert out_of_order.accepted  # arriving is the ride's; boarding follows the plan
    s.advance(30)
    refused = s.when(c.StartTrip(ride_id=b, driver_id=driver))
    refused.assert_rejected("illegal_transition")
    for ride in (a,):
        s.given(c.MarkArrived(ride_id=ride, driver_id=driver))
    for command in (
        c.StartTrip(ride_id=a, driver_id=driver),
        c.StartTrip(ride_id=b, driver_id=driver),
    ):
        s.advance(60)
        s.given(command)
    s.advance(600)
    first = s.when(c.CompleteTrip(ride_id=a, driver_id=driver))
    assert "dispatch.Driver.PoolRideEnded" in first.topics
    s.advance(60)
    last = s.when(c.CompleteTrip(ride_id=b, driver_id=driver))
    assert "dispatch.Driver.Released" in last.topics
    assert s.get(driver).status == "available" and s.get(driver).trips == 2
    checker = InvariantChecker()
    for n in s.app.recorder.select_notifications(1, 10_000):
        checker.check(decode(n, SHARD))
    checker.finish()
    assert checker.violations == []
    s.app.close()
