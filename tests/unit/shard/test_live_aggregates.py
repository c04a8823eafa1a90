"""The shard's live aggregates: users always, rides until they end and a window after,
command records for the window."""

from __future__ import annotations

from uuid import uuid4

import pytest

from dispatch.domain.command_record import CommandRecord
from dispatch.domain.driver import Driver
from dispatch.domain.ride import Ride
from dispatch.domain.rider import Rider
from dispatch.shard.live import ENDED, RECORD, RIDE, USER, LiveAggregates


def test_users_stay_live_and_ended_rides_and_records_leave_after_the_window() -> None:
    live = LiveAggregates(retention_s=60)  # and a skew margin of 15 s (a quarter of it)
    driver, rider, ride, done, record = (uuid4() for _ in range(5))
    live.observe(Driver.Created.TOPIC, driver, 0)
    live.observe(Rider.Created.TOPIC, rider, 0)
    live.observe(Ride.Created.TOPIC, ride, 1)
    live.observe(Ride.Created.TOPIC, done, 1)
    live.observe(Ride.Completed.TOPIC, done, 10)
    live.observe(CommandRecord.Created.TOPIC, record, 30)
    kinds = {a: k for a, k, _ in live.rows()}
    assert kinds == {driver: USER, rider: USER, ride: RIDE, done: ENDED, record: RECORD}
    assert live.evict(84) == 0  # the ride ended 74 s ago: within the window and margin
    assert live.evict(85) == 1  # 75 s: gone
    assert {a for a, _, _ in live.rows()} == {driver, rider, ride, record}
    assert live.evict(10_000) == 1
    assert {a for a, _, _ in live.rows()} == {driver, rider, ride}


def test_live_rows_load_back_into_the_same_set_and_keep_their_times() -> None:
    live = LiveAggregates(retention_s=60)
    ids = [uuid4() for _ in range(4)]
    live.observe(Driver.Created.TOPIC, ids[0], 0)
    live.observe(Ride.Created.TOPIC, ids[1], 0)
    live.observe(Ride.Expired.TOPIC, ids[2], 5)
    live.observe(CommandRecord.Created.TOPIC, ids[3], 7)
    again = LiveAggregates(retention_s=60)
    again.load(reversed(live.rows()))  # any order: the window is kept by time
    assert sorted(again.rows()) == sorted(live.rows())
    assert again.evict(80) == 1 and {a for a, _, _ in again.rows()} == set(ids) - {ids[2]}


def test_a_row_of_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        LiveAggregates(60).load([(uuid4(), "x", 0.0)])
