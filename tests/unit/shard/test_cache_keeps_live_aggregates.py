"""The repository cache keeps what commands read again (drivers, riders, unended rides), not
what is written once (command records, ended rides): a long run's cache was mostly these."""

from __future__ import annotations

from typing import Any

from dispatch.domain.command_record import CommandRecord
from dispatch.shard.worker import snapshot_of
from schemas import commands as c


def cached(s: Any) -> dict[Any, Any]:
    cache = s.app.repository.cache
    assert cache is not None
    return {k: v for k, v in cache.cache.items()}


def test_records_and_ended_rides_leave_the_cache_but_are_still_read_from_the_store(s: Any) -> None:
    rider, driver = s.rider(), s.driver()
    live_ride = s.accepted(rider, driver)
    other_rider = s.rider()
    ended = s.request(other_rider)
    s.given(c.CancelRide(ride_id=ended, rider_id=other_rider))
    in_cache = cached(s)
    assert {rider, driver, live_ride, other_rider} <= in_cache.keys()
    assert ended not in in_cache
    assert not any(isinstance(a, CommandRecord) for a in in_cache.values())
    assert s.get(ended).status == "cancelled"  # from the store
    retry = s.envelope(c.GoOffline(driver_id=s.driver()))
    s.app.handle(retry, s.now)
    (first,), _ = s.app.commit()
    assert first.accepted
    s.app.handle(retry, s.now)  # its record is read from the store
    (again,), _ = s.app.commit()
    assert again.duplicate and again.accepted


def test_a_checkpoint_s_snapshots_do_not_bring_records_or_ended_rides_back_into_the_cache(
    s: Any,
) -> None:
    rider = s.rider()
    ended = s.request(rider)
    s.given(c.CancelRide(ride_id=ended, rider_id=rider))
    record_ids = [
        n.originator_id
        for n in s.app.recorder.select_notifications(1, 1_000)
        if n.topic == CommandRecord.Created.TOPIC
    ]
    assert record_ids
    for aggregate_id in [ended, *record_ids]:
        assert snapshot_of(s.app, aggregate_id) is not None
    in_cache = cached(s)
    assert ended not in in_cache and not set(record_ids) & in_cache.keys()
